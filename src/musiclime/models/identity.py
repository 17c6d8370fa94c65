"""Identities (cache keys) of the things a stage's output depends on beyond its config.

A stale cache is worse than a slow one: it looks like a new result. So a key covers what the
output is computed *from*, not what it is called:

- **Classifier** (:func:`classifier_identity`): the model config, the content (sha256) of every
  weights file it loads, and a fingerprint of its code.

  - *Weights*: every file named by a path-valued entry of the model config (a directory counts
    with every file in it), plus the files the built classifier lists in an optional
    ``weights_files`` attribute (the demo classifier lists its shipped checkpoint, which its
    config leaves as ``path: null``), plus the ``{file: digest}`` of an optional
    ``weights_digests`` attribute, for files whose content is already named by a digest
    (a Hugging Face cache snapshot links each file to a blob named by its sha256: gigabytes
    need not be re-read at every plan).
  - *Code*: a ``version`` the classifier declares (a class or instance attribute: bump it when
    its code changes), else the sha256 of the source file of the module that defines the
    config's ``_target_``, together with those of the modules it names in an optional
    ``CODE_MODULES`` tuple (:mod:`musiclime.models.hf` names the modules it is split into).
    A bring-your-own classifier whose predictions depend on code in other modules should
    declare ``version`` or ``CODE_MODULES``.
- **Dataset** (:func:`dataset_identity`): the manifest's (or folder's) resolved location. Two
  manifests under one ``dataset.name`` get different keys. A song's own files are its decode
  job's inputs, so Snakemake re-runs that song from decoding on when the manifest points it
  at another file or the file is replaced (newer modification time).

File digests are cached per (path, size, mtime) for the life of the process.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (cached by path, size and modification time)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def short_hash(obj: Any, n: int = 8) -> str:
    """A short, stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _path_values(node: Any) -> list[Path]:
    """Existing files or folders named by string values of a config (recursively)."""
    out: list[Path] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k != "_target_":
                out += _path_values(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            out += _path_values(v)
    elif isinstance(node, str) and ("/" in node or os.sep in node or "." in node):
        try:
            p = Path(node).expanduser()
            if p.exists():
                out.append(p.resolve())
        except (OSError, ValueError):
            pass
    return out


def code_fingerprint(target: str | None, instance: Any = None) -> str:
    """``version:<declared>`` or ``source:<sha256 of the target's module file>`` (of the
    digests of its file and its ``CODE_MODULES``' files, when it names any)."""
    version = getattr(instance, "version", None) if instance is not None else None
    if version is not None and not callable(version):
        return f"version:{version}"
    if not target:
        return "unknown"
    module_name, _, _ = target.rpartition(".")
    while module_name:
        try:
            module = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, _ = module_name.rpartition(".")
    else:
        return f"target:{target}"
    sources = [_source_file(module)]
    # a module split into several declares the others in CODE_MODULES (musiclime.models.hf)
    sources += [_source_file(importlib.import_module(m))
                for m in getattr(module, "CODE_MODULES", ())]
    if not all(sources):
        return f"target:{target}"
    if len(sources) == 1:
        return "source:" + file_digest(sources[0])[:16]
    joined = hashlib.sha256("".join(file_digest(s) for s in sources).encode()).hexdigest()
    return "source:" + joined[:16]


def _source_file(module) -> str | None:
    try:
        source = inspect.getsourcefile(module)
    except TypeError:
        return None
    return source if source and Path(source).is_file() else None


def classifier_identity(model_config: dict, classifier: Any = None) -> dict:
    """What predictions of this classifier depend on (see the module docstring)."""
    files = set(_path_values(model_config))
    for p in getattr(classifier, "weights_files", None) or []:
        files.add(Path(p).resolve())
    weights = {}
    for root in sorted(files):
        for f in _files_under(root):
            weights[str(f)] = file_digest(f)
    for f, digest in (getattr(classifier, "weights_digests", None) or {}).items():
        weights[str(f)] = str(digest)
    config = {k: v for k, v in model_config.items() if k != "name"}
    return {"config": config, "weights": weights,
            "code": code_fingerprint(model_config.get("_target_"), classifier)}


def dataset_identity(manifest: str | os.PathLike) -> str:
    """A short key of a dataset's location (a manifest file or a folder of songs)."""
    return short_hash(str(Path(manifest).expanduser().resolve()), 6)


def strategy_key(spec) -> str:
    """A strategy in a cache key: its name, or for a ``_target_`` node the class name and the
    hash of the whole node (its arguments too), so a sweep over a user's strategy caches
    correctly."""
    from ..core.params import strategy_name

    name = strategy_name(spec)
    if isinstance(name, str):
        return name
    return f"{str(name['_target_']).rpartition('.')[2]}-{short_hash(name, 8)}"


def fit_part(explainer) -> str:
    """The fit key's part of an :class:`~musiclime.core.params.ExplainerConfig`: the fit-stage
    settings (what is fitted on one prediction run), those left at their defaults (estimator,
    target, interactions) out, so the keys of results made before them still hold."""
    from ..io import layout

    extra: dict[str, Any] = {}
    if explainer.estimator != "lime_ridge":  # a fit-stage choice (predicted once)
        extra["est"] = strategy_key(explainer.estimator)
    if explainer.target != "probability":
        extra["tgt"] = explainer.target
    if explainer.interaction.enabled:  # its rows are the prediction run's (the predict key)
        extra["ix"] = (f"{explainer.interactions}-{explainer.interaction_budget}-"
                       f"{explainer.interaction_top_k}")
    return layout.part(n=explainer.num_samples, kw=explainer.kernel_width,
                       ds=explainer.distance_scale, fs=explainer.feature_selection,
                       lab="pred" if explainer.labels is None else explainer.labels,
                       ra=explainer.ridge_alpha, nf=explainer.num_features,
                       lk=explainer.listen_top_k, **extra)
