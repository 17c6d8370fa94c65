"""``musiclime train-classifier``: train a fusion head on frozen-encoder embeddings.

    musiclime train-classifier model=hf_fusion dataset.manifest=my.csv dataset.split=null \\
        --out heads/my-head
    musiclime explain song.wav --lyrics song.txt model=hf_fusion model.head=heads/my-head

1. Every labelled song of the dataset (the manifest's ``label`` column) is decoded at the
   encoders' rate, and its whole mix and whole lyrics are embedded by the model's
   ``encode_audio`` / ``encode_lyrics`` (long audio: window means, see
   :mod:`musiclime.models.hf`). Embeddings are cached in ``<out>/embeddings/`` under a key of
   the encoders' identity and the song's files, so retraining with other head settings
   re-encodes nothing.
2. Train/val split: the manifest's own ``train`` and ``val`` rows when it has both, else a
   split stratified by label with ``--val-fraction`` (seeded by ``--seed``).
3. :func:`musiclime.models.head.train_head`; ``config.json``, ``head.pt`` and ``metrics.json``
   (accuracies, the validation confusion matrix, the chance level, the encoders' identity) are
   written to ``--out`` and the run is logged to MLflow (experiment ``musiclime-train``) when
   tracking is enabled. A tracking failure is a warning: the head is already written.

Any classifier with ``encode_audio`` and ``encode_lyrics`` can be trained on (``model=demo``
trains a new head on the demo classifier's own features: a check that this code learns).
Only ``hf_fusion`` loads the result (``model.head=DIR``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, MusicLimeError
from .io.fileio import write_json, write_npz
from .models.head import TrainSettings, save_head, train_head
from .models.identity import file_digest, short_hash

log = logging.getLogger(__name__)

TRAIN_EXPERIMENT = "musiclime-train"
TRAIN_DESCRIPTION = (
    "Heads trained by `musiclime train-classifier` on frozen-encoder embeddings: one run per "
    "head, with its settings, train/val accuracy, the chance level and the head's config.json "
    "and metrics.json (validation confusion matrix, encoders' identity).")


def split_indices(labels: list[str], splits: list[str | None], val_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, val, how): the manifest's train/val rows if it has both, else stratified."""
    if "train" in splits and "val" in splits:
        tr = np.array([i for i, s in enumerate(splits) if s == "train"])
        va = np.array([i for i, s in enumerate(splits) if s == "val"])
        return tr, va, "manifest"
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for name in sorted(set(labels)):
        idx = np.array([i for i, lab in enumerate(labels) if lab == name])
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(val_fraction * len(idx))) if len(idx) > 1 else 0
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return np.array(sorted(train), dtype=int), np.array(sorted(val), dtype=int), "stratified"


def _encoder_identity(model, model_cfg: dict) -> dict:
    if hasattr(model, "encoder_identity"):
        return model.encoder_identity()
    from .models.identity import classifier_identity

    return classifier_identity(model_cfg, model)


def embed_songs(model, entries, cache_dir: Path, identity: dict, progress: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """Whole-song audio and lyrics embeddings ``[n, Da]``, ``[n, Dt]`` (cached per song)."""
    from tqdm import tqdm

    from .core.lyrics import read_lyrics
    from .io.audio import load_audio

    key = short_hash(identity, 12)
    cache_dir = Path(cache_dir) / key
    cache_dir.mkdir(parents=True, exist_ok=True)
    audio_out, text_out = [], []
    for e in tqdm(entries, desc="embed", unit="song", disable=not progress, leave=False):
        files = [e.audio] + ([e.lyrics] if e.lyrics else [])
        song_key = short_hash([file_digest(f) for f in files] + [model.sample_rate], 12)
        cached = cache_dir / f"{e.song_id}-{song_key}.npz"
        if cached.is_file():
            with np.load(cached) as z:
                audio_out.append(z["audio"])
                text_out.append(z["text"])
            continue
        try:
            wav, _ = load_audio(e.audio, model.sample_rate)
            text = read_lyrics(e.lyrics) if e.lyrics else ""
        except MusicLimeError as exc:
            raise type(exc)(f"song {e.song_id}: {exc}") from exc
        with torch.inference_mode():
            a = model.encode_audio(torch.from_numpy(np.asarray(wav, np.float32))[None])
            t = model.encode_lyrics([text])
        a = a.float().cpu().numpy()[0]
        t = t.float().cpu().numpy()[0]
        write_npz(cached, audio=a, text=t)
        audio_out.append(a)
        text_out.append(t)
    return np.stack(audio_out), np.stack(text_out)


def train_classifier(cfg, out: str | Path, settings: TrainSettings, val_fraction: float = 0.25,
                     progress: bool = True) -> dict:
    """Train and write a head for the model of ``cfg`` on its dataset (see the module doc)."""
    from omegaconf import OmegaConf

    from .config import build_classifier
    from .io.dataset import load_dataset

    out = Path(out)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if "head" in model_cfg and model_cfg.get("head"):
        log.info("ignoring model.head=%s: train-classifier trains a new head", model_cfg["head"])
        cfg = OmegaConf.merge(cfg, {"model": {"head": None}})
    model = build_classifier(cfg)
    if not (hasattr(model, "encode_audio") and hasattr(model, "encode_lyrics")):
        raise ConfigError(f"model={cfg.model.get('name', '?')} has no encode_audio/encode_lyrics "
                          "to train a head on; use model=hf_fusion (or model=demo)")
    entries = load_dataset(cfg.dataset.manifest, cfg.dataset.get("split"),
                           cfg.dataset.get("limit"))
    unlabelled = [e.song_id for e in entries if not e.label]
    if unlabelled:
        raise ConfigError(f"{cfg.dataset.manifest}: songs without a label ({', '.join(unlabelled[:3])}"
                          f"{'...' if len(unlabelled) > 3 else ''}); the manifest needs a "
                          "`label` column for train-classifier")
    class_names = sorted({e.label for e in entries})
    if len(class_names) < 2:
        raise ConfigError(f"{cfg.dataset.manifest}: one label ({class_names}) among "
                          f"{len(entries)} songs; a classifier needs at least two "
                          "(dataset.split=null takes every row)")
    labels = np.array([class_names.index(e.label) for e in entries])
    identity = _encoder_identity(model, model_cfg)
    audio, text = embed_songs(model, entries, out / "embeddings", identity, progress)
    tr, va, how = split_indices([e.label for e in entries], [e.split for e in entries],
                                val_fraction, settings.seed)
    head, metrics = train_head(audio, text, labels, tr, va, class_names, settings,
                               encoders={"model": model_cfg, "identity": identity})
    save_head(head, out)
    metrics.update({"split": how, "val_fraction": val_fraction if how == "stratified" else None,
                    "settings": asdict(settings), "model": model_cfg.get("name"),
                    "dataset": str(cfg.dataset.manifest),
                    "val_songs": [entries[i].song_id for i in va]})
    write_json(out / "metrics.json", metrics)
    if cfg.tracking.get("enabled", True):
        try:
            _log_to_mlflow(cfg, out, metrics, settings)
        except Exception as exc:  # the head is written; tracking is a record of it
            log.warning("MLflow logging of the training run failed: %s", exc, exc_info=True)
            metrics["tracking_error"] = str(exc).splitlines()[0] if str(exc) else repr(exc)
    return metrics


def _log_to_mlflow(cfg, out: Path, metrics: dict, settings: TrainSettings) -> None:
    from mlflow.tracking import MlflowClient

    from .tracking.store import (
        FAST_FAIL_ENV,
        ensure_experiment,
        probe,
        source_tags,
        tracking_uri,
    )

    for k, v in FAST_FAIL_ENV.items():
        os.environ.setdefault(k, v)
    uri = tracking_uri(cfg.tracking, cfg.results_root)
    problem = probe(uri)
    if problem:
        raise MusicLimeError(problem)
    exp_id = ensure_experiment(uri, TRAIN_EXPERIMENT, cfg.results_root)
    client = MlflowClient(uri)
    client.set_experiment_tag(exp_id, "mlflow.note.content", TRAIN_DESCRIPTION)
    tags = {**source_tags(), "mlflow.source.name": "musiclime train-classifier",
            "musiclime.head": str(out.resolve())}
    run = client.create_run(exp_id, run_name=f"head-{cfg.model.get('name', 'model')}-"
                            f"{out.name}", tags=tags)
    rid = run.info.run_id
    params = {**{f"train.{k}": v for k, v in asdict(settings).items()},
              "model.name": cfg.model.get("name"), "dataset.manifest": str(cfg.dataset.manifest),
              "split": metrics["split"], "n_train": metrics["n_train"], "n_val": metrics["n_val"]}
    for k, v in params.items():
        client.log_param(rid, k, str(v))
    for k in ("train_accuracy", "val_accuracy", "val_loss", "chance_accuracy", "best_epoch"):
        if metrics.get(k) is not None:
            client.log_metric(rid, k, float(metrics[k]))
    for name in ("config.json", "metrics.json"):
        client.log_artifact(rid, str(out / name), "head")
    client.set_terminated(rid, "FINISHED")
    metrics["mlflow_run_id"] = rid
