"""Where ``bench/calls.py`` gets its classifier rows: the cached prediction runs of the
library's samplers (prefix property: a shorter count is the first rows of a longer run) and, for
the shapiq methods, a game whose rows go through the same inference, each distinct row once."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import stability as wb  # bench/stability.py: the shapiq approximators (shapiq_values)

log = logging.getLogger("bench.calls")


def predictions(song, layout, sampler: str, seed: int, n: int, clf, cache: Path | None):
    """Masks and probabilities of one prediction run (cached in ``cache`` when given)."""
    from musiclime import ExplainerConfig
    from musiclime.core.explainer import draw_masks, predict_song

    path = cache / f"{song.song_id}_{sampler}_{seed}_{n}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return z["masks"], z["probs"]
    cfg = ExplainerConfig(sampler=sampler, seed=seed, num_samples=n)
    masks = draw_masks(cfg.masks, layout.n_columns)
    runs = sorted(cache.glob(f"{song.song_id}_{sampler}_{seed}_*.npz"),
                  key=lambda p: int(p.stem.rsplit("_", 1)[1])) if cache else []
    # a longer cached run of the same song, sampler and seed starts with this one
    for old in runs:
        if int(old.stem.rsplit("_", 1)[1]) > n:
            with np.load(old) as z:
                if np.array_equal(z["masks"][:n], masks):
                    return masks, z["probs"][:n]
    # a shorter cached run of the same song, sampler and seed holds the first rows of this one
    # (the prefix property): predict only the rest
    done = np.zeros((0, len(clf.class_names)))
    for old in reversed(runs):
        with np.load(old) as z:
            if z["masks"].shape[0] < n and np.array_equal(z["masks"], masks[:z["masks"].shape[0]]):
                done = z["probs"]
                break
    rest = predict_song(clf, song, masks[done.shape[0]:], layout, cfg, progress=False,
                        modality_game=False).probs
    probs = np.concatenate([done, rest], axis=0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, masks=masks, probs=probs)
    return masks, probs


class SongRows:
    """The classifier's probabilities of any mask rows of one song, each distinct row predicted
    once (the game of the shapiq methods). Every row predicted is kept; with a ``cache`` folder,
    each shapiq run's distinct rows are saved as ``<song>_shapiq-<approximator>_<seed>_<n>.npz``
    (``masks``, ``probs``) and every such file of the song is read back first, so a rerun (and
    a second target on the same approximator, seed and count, whose coalitions are the same)
    predicts nothing."""

    def __init__(self, song, layout, clf, cache: Path | None):
        from musiclime import ExplainerConfig
        from musiclime.core.explainer import song_composer

        self.song, self.layout, self.clf, self.cache = song, layout, clf, cache
        self.cfg = ExplainerConfig()
        self.composer = song_composer(clf, song)
        self.known: dict[bytes, np.ndarray] = {}
        self.predicted = 0  # rows sent to the classifier
        self.predict_s = 0.0
        for path in sorted(cache.glob(f"{song.song_id}_shapiq-*.npz")) if cache else []:
            with np.load(path) as z:
                self.known.update(zip((r.tobytes() for r in z["masks"]), z["probs"],
                                      strict=True))

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        """``(rows, C)`` probabilities of uint8 ``masks`` ``(rows, F)``."""
        from musiclime.core.explainer import predict_song

        keys = [r.tobytes() for r in masks]
        new = list(dict.fromkeys(k for k in keys if k not in self.known))
        if new:
            rows = np.frombuffer(b"".join(new), dtype=np.uint8).reshape(len(new), -1)
            t0 = time.perf_counter()
            probs = predict_song(self.clf, self.song, rows, self.layout, self.cfg,
                                 progress=False, composer=self.composer,
                                 modality_game=False).probs
            self.predict_s += time.perf_counter() - t0
            self.predicted += len(new)
            self.known.update(zip(new, probs, strict=True))
        return np.stack([self.known[k] for k in keys])

    def run(self, method: str, approximator: str, target: str, seed: int, n: int,
            label: int) -> tuple[np.ndarray, int]:
        """The weights of the shapiq ``method`` (``approximator`` on the ``target`` scale) at
        ``n`` calls and its distinct rows."""
        from musiclime.core.targets import transform

        path = (self.cache / f"{self.song.song_id}_shapiq-{approximator}_{seed}_{n}.npz"
                if self.cache else None)
        seen: dict[bytes, None] = {}

        def value(z: np.ndarray) -> np.ndarray:
            seen.update(dict.fromkeys(r.tobytes() for r in z))
            return transform(target, self(z)[:, label])

        w, rows = wb.shapiq_values(method.split("@")[0], value, self.layout.n_columns, n, seed)
        if path is not None and not path.is_file():
            keys = list(seen)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, masks=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(
                len(keys), -1), probs=np.stack([self.known[k] for k in keys]))
        return w, rows


def shapiq_song(song, layout, clf, cache: Path | None, methods: dict[str, tuple[str, str]],
                seeds: int, calls: list[int], counts_of) -> tuple[dict, dict, SongRows]:
    """The shapiq methods on one song: ``weights[method]`` (seeds, counts, F; NaN at the counts
    ``counts_of(method)`` leaves out) and ``rows[method]`` (seeds, counts: the distinct rows
    each run evaluated); ``methods``: name -> (approximator, target)."""
    oracle = SongRows(song, layout, clf, cache)
    label = int(np.argmax(oracle(np.ones((1, layout.n_columns), dtype=np.uint8))[0]))
    weights, rows = {}, {}
    for m, (approximator, target) in methods.items():
        w = np.full((seeds, len(calls), layout.n_columns), np.nan)
        r = np.zeros((seeds, len(calls)), dtype=int)
        for seed in range(seeds):
            for c, n in enumerate(calls):
                if n in counts_of(m):
                    w[seed, c], r[seed, c] = oracle.run(m, approximator, target, seed, n, label)
        weights[m], rows[m] = w, r.tolist()
    return weights, rows, oracle


def evidence_np5(w: np.ndarray, truth: np.ndarray) -> list[float]:
    """The planted evidence's nP@5 at each count of ``w`` (seeds, counts, F), mean over seeds;
    NaN at a count a method was not run at."""
    from musiclime.metrics.evidence import normalized_precision, precision_at_k

    return [float(np.mean([normalized_precision(
        precision_at_k(w[s, c], truth, 5), float(truth.sum()), 5, truth.size)
        for s in range(w.shape[0])])) if np.isfinite(w[:, c]).all() else float("nan")
        for c in range(w.shape[1])]


def log_mlflow(uri: str, settings, summary: dict, white: dict, methods: dict,
               experiment: str) -> None:
    """One run per (method, calls): params method/sampler/estimator/target/calls, metrics
    ``jaccard_top5`` (median over songs), ``stable_songs`` (share of songs stable from this
    count on), ``evidence_np5``; and per white-box family ``wb_<family>_{spearman,recall,l2}``
    at the error counts, in ``experiment``; ``methods``: name -> (sampler, estimator,
    target). Tag ``musiclime.bench=calls``."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    exp_id = (exp.experiment_id if exp else mlflow.create_experiment(
        experiment, tags={"mlflow.note.content": "bench/calls.py: stability and error vs "
                          "classifier calls, per sampler and estimator"}))
    for m, st in summary.items():
        sampler, estimator, target = methods[m]
        for c, n in enumerate(settings.calls):
            if n not in st["calls"]:
                continue
            metrics = {"jaccard_top5": st["median_jaccard"][c],
                       "stable_songs": float(np.mean([v <= n for v in st["per_song"].values()])),
                       "evidence_np5": st["evidence_np5"][c]}
            if str(n) in white[m]["errors"]:
                for fam, e in white[m]["errors"][str(n)].items():
                    metrics.update({f"wb_{fam}_spearman": e["spearman"],
                                    f"wb_{fam}_recall": e["top5_recall"],
                                    f"wb_{fam}_l2": e["l2"]})
            with mlflow.start_run(experiment_id=exp_id, run_name=f"{m} n={n}",
                                  tags={"musiclime.bench": "calls"}):
                mlflow.log_params({"method": m, "sampler": sampler, "estimator": estimator,
                                   "target": target, "calls": n, "songs": settings.songs,
                                   "seeds": settings.seeds})
                mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                                    if v is not None and np.isfinite(v)})


def run_auto(corpus: str, songs: int | None, overrides: dict, log_every: bool = True) -> dict:
    """``num_samples=auto`` on the demo test songs: the calls each needed, the bootstrap
    stability where it stopped, whether it reached the target, and seconds."""
    from inputs import demo_entries, load_demo

    from musiclime import ExplainerConfig, MusicLIME, load_song
    from musiclime.models.separation import OracleSeparator

    entries = demo_entries(corpus)[:songs] if songs else demo_entries(corpus)
    if not entries:
        raise SystemExit(f"no demo corpus under {corpus}: run `make demo` first")
    clf = load_demo()
    cfg = ExplainerConfig(num_samples="auto", **overrides)
    rows = []
    for e in entries:
        song = load_song(e.audio, e.lyrics, OracleSeparator(), clf.sample_rate, cfg,
                         song_id=e.song_id, stems_dir=e.stems_dir)
        t0 = time.perf_counter()
        exp = MusicLIME(clf, cfg, progress=False).explain(song)
        a = exp.params["auto"]
        rows.append({"song": e.song_id, "label": str(e.label), "calls": a["calls"],
                     "stability": a["stability"], "reached": a["reached"],
                     "target_chosen": exp.params.get("target_chosen"),
                     "seconds": time.perf_counter() - t0})
        if log_every:
            log.info("%s (%s): %d calls, bootstrap top-5 Jaccard %.2f%s", e.song_id, e.label,
                     a["calls"], a["stability"], "" if a["reached"] else " (NOT reached)")
    calls = [r["calls"] for r in rows]
    return {"settings": cfg.as_dict(), "songs": rows, "median_calls": float(np.median(calls)),
            "reached": int(sum(r["reached"] for r in rows)), "n": len(rows)}
