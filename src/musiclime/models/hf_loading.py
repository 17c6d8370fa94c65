"""Finding and identifying Hugging Face weights for :mod:`musiclime.models.hf`.

A model is a hub id or a local folder (``save_pretrained``). Nothing is downloaded unless asked
(``download=True``): a hub id that is not in the local Hugging Face cache gives
:class:`~musiclime.errors.ModelWeightsMissing` with the command that downloads it. What
identifies the loaded weights in the prediction cache key (:mod:`musiclime.models.identity`)
is set here too: the blob names of a cache snapshot, or the files of any other folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError, ModelWeightsMissing

DEFAULT_AUDIO_ENCODER = "MIT/ast-finetuned-audioset-10-10-0.4593"
DEFAULT_TEXT_ENCODER = "FacebookAI/roberta-large"


def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _quiet_transformers() -> None:
    """No per-load progress bars (a sweep loads the model in every predict job)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def resolve_pretrained(name_or_path: str, what: str, download: bool = False) -> Path:
    """A local folder for a hub id or a folder; raises :class:`ModelWeightsMissing` when the
    id is not in the local cache (and ``download`` is off)."""
    _quiet_transformers()
    if not name_or_path:
        raise ConfigError(f"{what}: no model given (a Hugging Face hub id or a local folder)")
    p = Path(str(name_or_path)).expanduser()
    if p.is_dir():
        return p.resolve()
    if p.is_absolute() or str(name_or_path).startswith((".", "~")) or str(
            name_or_path).count("/") > 1:
        raise ModelWeightsMissing(f"{what}: folder {p} does not exist (a folder written by "
                                  "save_pretrained, or a hub id such as "
                                  f"{DEFAULT_AUDIO_ENCODER})")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path), local_files_only=not download))
    except Exception as exc:  # LocalEntryNotFoundError, offline errors, unknown repo ids
        if download:
            raise ModelWeightsMissing(f"{what}: could not download {name_or_path!r} from the "
                                      f"Hugging Face hub ({type(exc).__name__}: {exc})") from exc
        raise ModelWeightsMissing(
            f"{what} {name_or_path!r} is not in the local Hugging Face cache "
            f"({hf_cache_dir()}). Download it where there is internet with `hf download "
            f"{name_or_path}` (or `huggingface-cli download {name_or_path}`) and copy that cache "
            "here (or set HF_HOME to it), pass a local folder written by save_pretrained, or "
            "set model.download=true to let musiclime fetch it") from exc


def snapshot_digests(path: Path) -> dict[str, str] | None:
    """``{file: blob name}`` for a Hugging Face cache snapshot (``.../snapshots/<commit>/``),
    whose files link to blobs named by their content's sha256 (git sha1 for small files);
    None for any other folder (its files are hashed)."""
    path = Path(path)
    if path.parent.name != "snapshots":
        return None
    out = {}
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        if not f.is_symlink():
            return None
        out[f"{path.parent.parent.name}@{path.name}/{f.relative_to(path)}"] = Path(
            os.readlink(f)).name
    return out


def set_weights(clf, paths: list[Path]) -> None:
    """What identifies the weights in the prediction cache key (musiclime.models.identity)."""
    clf.weights_files, clf.weights_digests = [], {}
    for p in paths:
        digests = snapshot_digests(p)
        if digests is None:
            clf.weights_files.append(Path(p))
        else:
            clf.weights_digests.update(digests)


def label_names(config) -> list[str]:
    n = int(config.num_labels)
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"class_{i}"))) for i in range(n)]



def accepts_pooling_flag(path: Path) -> bool:
    """BERT-family encoders take ``add_pooling_layer`` (RoBERTa's pooler is untrained)."""
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return cfg.get("model_type") in {"roberta", "bert", "xlm-roberta", "camembert"}
