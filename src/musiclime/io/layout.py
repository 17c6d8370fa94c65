"""The results layout: every stage path, built here and nowhere else, and decoded back.

All paths are relative to the results root (Snakemake runs with it as its working directory),
so a results folder can be moved as a whole. A stage's *key* is a folder path whose parts
encode exactly the parameters the stage's output depends on; each stage's key extends the key
of the stage it reads from::

    decode/<data>/sr~R/<song>.npz
    separate/<data>/sep~<name>-<weights>/sr~R/<song>.npz
    segment/<separate key>/sr~R/seg~10+res~keep+unit~line/<song>.npz     (+ <song>.features.json)
    masks/<segment key>/mod~both+seed~0+ex~1+n~N/<song>.npy
    predict/<masks key>/model~<name>-<identity>+bs~0+dd~1/<song>.npz
    fit/<predict key>/<fit part>/<song>/explanation.json (+ heatmap, lyrics chart, WAV)
    fit/<predict key>/batch~<id>/<song>.json                 the fit job's record (its output)
    evaluate/<fit key>/met~<hash>/<song>.json                quality metrics of one explanation
    evaluate/<predict key>/batch~<id>/<song>.json            the evaluate job's record
    aggregate/<fit key>/summary.json (+ global_*.csv, plots/)
    points/<point>/config.yaml, track/<point>.json, logs/<stage>/<key>/<song>.log

``<fit part>`` is ``n~1000+kw~0.25+ds~1+fs~none+lab~pred+ra~1+nf~10+lk~3``. A *fit key* is
``<predict key>/<fit part>``: one configuration's explanations.

The pairs of a part are joined by ``+``, never ``,``: Snakemake hands a cluster job its
wildcards as ``--target-jobs rule:key=VALUE,song=...`` and splits that on every comma
(snakemake#2366), so a comma in a path breaks every remote executor. ``+`` is a plain
character for file systems, shells, URLs' paths, globs and Snakemake's wildcard regexes. A
value may hold ``+`` (``1e+06``, a model name) but never ``~`` (:func:`fmt` replaces it), so
``+`` followed by ``name~`` always starts the next pair. Results folders written by older
versions (``,`` between pairs) are not read: their stages are recomputed.

So a kernel-width sweep shares every folder up to ``predict``, separation runs once per
(song, separator), and points that differ only in ``num_samples`` share one prediction run of
the largest count (``masks/...+n~<largest>``) and fit on its prefixes.

A fit job fits every point of a sweep that shares one prediction run (a *batch*, one point when
``workflow.batch=false``) for one song; its record lists the explanation files it wrote. The
same holds for evaluate jobs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

#: what each ``name~value`` abbreviation in a results path stands for
ABBREVIATIONS: dict[str, str] = {
    "data": "dataset: name-<location hash> (see musiclime.models.identity.dataset_identity)",
    "sr": "sample rate (Hz) of the audio in this folder",
    "sep": "separator: name-<hash of its weights and settings>",
    "seg": "temporal segments per stem (a count, or boundaries in seconds ending in 's')",
    "res": "residual: keep (always on) | feature | drop",
    "unit": "lyrics unit: line | word",
    "mod": "modality: both | audio | lyrical",
    "seed": "mask seed",
    "ex": "exhaustive enumeration of all 2^F masks when 2^F <= num_samples (1/0)",
    "n": "num_samples (masks: the largest count predicted; fit: the prefix fitted, or auto)",
    "smp": "mask sampler (present only when not bernoulli; musiclime.core.samplers)",
    "model": "classifier: name-<hash of its config, weights files and code>",
    "bs": "inference batch size (0 = automatic)",
    "dd": "deduplicate identical masks before predicting (1/0)",
    "amp": "mixed precision (present only when on)",
    "auto": "num_samples=auto: hash of the stopping rule's settings (musiclime.core.adaptive)",
    "kw": "kernel width",
    "est": "estimator (present only when not lime_ridge; musiclime.core.estimators)",
    "tgt": "target of the surrogate (present only when not probability; musiclime.core.targets)",
    "ds": "distance scale",
    "fs": "feature selection",
    "lab": "explained labels (pred = the predicted label)",
    "ra": "ridge alpha of the surrogate",
    "nf": "features listed in top_features",
    "lk": "components in the listenable WAV",
    "met": "metric settings (hash of the metrics config)",
    "batch": "a fit/evaluate job: the points of one prediction run fitted together",
}

#: names that occur twice in one path, and the stages they belong to, in path order
_REPEATED = {"sr": ["separate", "segment"], "n": ["masks", "fit"]}

STAGES = ("decode", "separate", "segment", "masks", "predict", "fit", "evaluate", "aggregate",
          "points", "track", "logs", "plans")


def fmt(v: Any) -> str:
    """A value as it appears in a path part."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "-".join(fmt(x) for x in v)
    if v is None:
        return "none"
    return str(v).replace("/", "-").replace(",", "-").replace(" ", "").replace("~", "-")


#: joins the ``name~value`` pairs of one path part (see the module's docstring)
SEP = "+"
#: where one pair of a part ends and the next begins: the separator before ``name~``
_PAIR_BOUNDARY = re.compile(r"\+(?=[a-z]+~)")


def part(**values: Any) -> str:
    """``name~value`` pairs joined by ``+``, in the given order."""
    return SEP.join(f"{k}~{fmt(v)}" for k, v in values.items())


# --- keys ----------------------------------------------------------------------------------------
def dataset_key(name: str, location: str) -> str:
    return f"data~{fmt(name)}-{location}"


def decode_key(dataset: str, rate: int) -> str:
    return f"{dataset}/sr~{int(rate)}"


def separate_key(dataset: str, separator: str, rate: int) -> str:
    return f"{dataset}/sep~{separator}/sr~{int(rate)}"


def segment_key(separate: str, rate: int, segments: str, residual: str, unit: str) -> str:
    return f"{separate}/sr~{int(rate)}/{part(seg=segments, res=residual, unit=unit)}"


def masks_key(segment: str, modality: str, seed: int, exhaustive: bool, n: int,
              sampler: str = "bernoulli") -> str:
    extra = {"smp": sampler} if sampler != "bernoulli" else {}
    return f"{segment}/{part(mod=modality, seed=seed, ex=exhaustive, n=n, **extra)}"


def predict_key(masks: str, model: str, batch_size: int, deduplicate: bool,
                mixed_precision: bool, auto: str | None = None,
                interactions: str | None = None) -> str:
    """``interactions``: a hash of the interaction estimators whose rows the run also predicts
    (:mod:`musiclime.core.interactions`); None when there are none."""
    extra = {"amp": True} if mixed_precision else {}
    if auto:
        extra["auto"] = auto
    if interactions:
        extra["ix"] = interactions
    return f"{masks}/{part(model=model, bs=batch_size, dd=deduplicate, **extra)}"


def fit_key(predict: str, fit_part: str) -> str:
    return f"{predict}/{fit_part}"


def evaluate_key(fit: str, metrics_hash: str) -> str:
    return f"{fit}/met~{metrics_hash}"


# --- paths (relative to the results root) --------------------------------------------------------
#: Snakemake output patterns: ``{key}`` is a stage key, ``{song}`` a song id, ``{batch}`` a job id
PATTERNS: dict[str, str] = {
    "decode": "decode/{key}/{song}.npz",
    "separate": "separate/{key}/{song}.npz",
    "segment": "segment/{key}/{song}.npz",
    "features": "segment/{key}/{song}.features.json",
    "masks": "masks/{key}/{song}.npy",
    "predict": "predict/{key}/{song}.npz",
    "fit_record": "fit/{key}/batch~{batch}/{song}.json",
    "evaluate_record": "evaluate/{key}/batch~{batch}/{song}.json",
    "summary": "aggregate/{key}/summary.json",
    "plots": "aggregate/{key}/plots",
    "songs_table": "aggregate/{key}/songs.csv",
    "point_config": "points/{point}/config.yaml",
    "track": "track/{point}.json",
}
LOG_PATTERNS: dict[str, str] = {
    "decode": "logs/decode/{key}/{song}.log",
    "separate": "logs/separate/{key}/{song}.log",
    "segment": "logs/segment/{key}/{song}.log",
    "masks": "logs/masks/{key}/{song}.log",
    "predict": "logs/predict/{key}/{song}.log",
    "fit": "logs/fit/{key}/batch~{batch}/{song}.log",
    "evaluate": "logs/evaluate/{key}/batch~{batch}/{song}.log",
    "aggregate": "logs/aggregate/{key}.log",
    "point_config": "logs/points/{point}.log",
    "track": "logs/track/{point}.log",
}


def path(kind: str, **wildcards: str) -> str:
    """One output path: ``path("predict", key=..., song=...)``."""
    return PATTERNS[kind].format(**wildcards)


def log_path(kind: str, **wildcards: str) -> str:
    return LOG_PATTERNS[kind].format(**wildcards)


def explanation_dir(fit: str, song: str) -> str:
    return f"fit/{fit}/{song}"


def explanation(fit: str, song: str) -> str:
    return f"{explanation_dir(fit, song)}/explanation.json"


def metrics(evaluate: str, song: str) -> str:
    return f"evaluate/{evaluate}/{song}.json"


def aggregate_dir(fit: str) -> str:
    return f"aggregate/{fit}"


# --- decoding a path back into its parameters ----------------------------------------------------
def describe(p: str | os.PathLike, results_root: str | os.PathLike | None = None) -> dict:
    """What a results path holds: ``{"stage", "song" (if any), "params": {name: value}}``.

    ``params`` maps each ``name~value`` abbreviation to its value, with a later part of the
    same name (``sr`` of the segment after ``sr`` of the separator, ``n`` of the fit after ``n``
    of the masks) qualified by the stage it belongs to: ``separate.sr`` and ``segment.sr``,
    ``masks.n`` and ``fit.n``.
    """
    path_ = Path(p)
    if results_root is not None:
        try:
            path_ = path_.resolve().relative_to(Path(results_root).resolve())
        except ValueError:
            pass
    parts = list(path_.parts)
    stage = next((x for x in parts if x in STAGES), None)
    if stage is None:
        raise ValueError(f"{p} is not inside a musiclime results folder (no stage folder "
                         f"among {', '.join(STAGES)})")
    parts = parts[parts.index(stage) + 1:]
    occurrences: dict[str, list[str]] = {}
    plain: list[str] = []
    for piece in parts:
        if "~" not in piece:
            plain.append(piece)
            continue
        for pair in _PAIR_BOUNDARY.split(piece):
            name, _, value = pair.partition("~")
            occurrences.setdefault(name, []).append(value)
    params: dict[str, str] = {}
    for name, values in occurrences.items():
        owners = _REPEATED.get(name, [])
        for i, value in enumerate(values):
            if len(values) == 1:
                params[name] = value
            else:
                params[f"{owners[i]}.{name}" if i < len(owners) else f"{name}#{i + 1}"] = value
    song = None
    if plain:
        last = plain[-1]
        for suffix in (".features.json", ".npz", ".npy", ".json", ".log", ".yaml", ".html",
                       ".png", ".wav", ".csv"):
            if last.endswith(suffix):
                last = last[: -len(suffix)]
                break
        if last not in ("explanation", "summary", "config", "audio_heatmap", "lyrics",
                        "listen_top", "plots", "feature_table") and not (
                            stage == "aggregate" and last.startswith("global")):
            song = last
        elif len(plain) >= 2:
            song = plain[-2]
    return {"stage": stage, "song": song, "params": params}


def describe_text(p: str | os.PathLike, results_root: str | os.PathLike | None = None) -> str:
    """:func:`describe` as lines a person reads (``musiclime where PATH``)."""
    d = describe(p, results_root)
    lines = [f"stage: {d['stage']}"]
    if d["song"]:
        lines.append(f"song: {d['song']}")
    for name, value in d["params"].items():
        base = name.rpartition(".")[2]
        lines.append(f"{name} = {value}    ({ABBREVIATIONS.get(base, '?')})")
    return "\n".join(lines)
