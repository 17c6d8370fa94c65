"""Fewer classifier calls for a stable explanation: the demo classifier on demo test songs.

    python bench/run.py --cases stability            # the protocol (see below; ~1 h, 2 cores)
    python bench/run.py --cases stability --quick    # 2 songs, counts up to 512
    python bench/calls.py [--songs N] [--methods M ...] [--cache DIR] [--mlflow URI]   # directly

The protocol (issue "Fewer classifier calls for the same explanation"):

- **Songs**: the first ``--songs`` songs of the demo corpus's test split (``data/demo``, made by
  ``make demo``), explained with the shipped demo classifier and their ground-truth stems
  (``separator=oracle``), ``modality=both``, 10 segments, line units: about 46 features.
- **Counts** (:data:`CALLS`): 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072,
  4096: powers of two and the halfway points (``1.5 x``) between them, so a song stable from
  150 calls reads 192, not 256.
- **Runs**: per song, sampler and seed (``S = 5`` seeds), one prediction run of the largest call
  count (4096); every count is fitted on a prefix of it (the samplers' prefix property),
  exactly as a ``num_samples`` sweep of ``musiclime run`` does, so the finer grid costs no
  prediction.
- **Methods** ``sampler+estimator[@target]`` (:data:`METHODS`): the fits are the library's own
  (:func:`musiclime.core.explainer.surrogate_weights`, with :mod:`musiclime.core.targets`), several
  estimators on each sampler's predictions. ``bernoulli+lime_ridge`` is today's default and the
  baseline ("bernoulli" in the last line). ``--methods`` restricts the set (the baseline is
  always in); a sampler none of the methods names predicts nothing.
- **shapiq's approximators** ``shapiq+<name>`` (``shapiq`` 1.4.1; ``bench/stability.py``'s
  ``SHAPIQ``: ``KernelSHAP`` with pairing, ``kADDSHAP`` of order 2 with pairing,
  ``PermutationSamplingSV``; the border trick is shapiq's default) draw their own coalitions and
  have no prefix property: each count is a run of its own (``budget = count``, ``random_state
  = seed``), up to ``shapiq_max_calls`` (1024; 256 with ``--quick``), and their stability is
  read on those counts. Their game is the classifier's probability of the explained label (its
  log-odds for ``@logit``) of shapiq's coalition matrix as a mask, through the same inference
  as the prediction runs (:class:`SongRows`): each distinct row is predicted once per song,
  and with ``--cache`` each run's rows are saved, so a rerun, or a second target on the same
  coalitions, costs no classifier call. The calls of a run are the distinct rows it evaluated
  (at most the count; reported per count).
- **Stable**: the mean pairwise Jaccard of the ``S`` top-5 sets is >= 0.8; a song's
  samples-to-stability is the smallest count from which on every count is stable (``inf``
  when none); a method's number is the median over songs.
- **Evidence recovery** at each count: the planted evidence's normalised precision@5 (nP@5,
  :mod:`musiclime.metrics.evidence`) of the songs labelled ``ai`` (the others plant none), mean
  over seeds and songs.
- **White-box ground truth**: the same methods on the white-box games of
  ``bench/stability.py`` (exact Shapley values, four families), error at fixed counts (the
  shapiq methods only there: no white-box stability for them). A game is
  a function ``v(z)`` of the mask; for an ``@logit`` method it is the classifier's logit
  (output ``sigmoid(v)``), whose log-odds the method recovers exactly, so a method and its
  ``@logit`` variant get the same white-box error (and so does its ``@auto`` variant, which
  picks one of the two scales per song).
- **Cost**: the prefix samplers predict ``S x 4096`` rows per song each (3 samplers: 61,440).
  A shapiq approximator's runs up to 1024 evaluate ``S x (64 + ... + 1024) = 17,120`` rows,
  but each distinct row of a song is predicted once: on 46 features ``KernelSHAP``'s runs hold
  6,192 distinct rows, ``kADDSHAP``'s are among them, ``PermutationSamplingSV`` adds 4,637
  (10,829 classifier calls per song for the four shapiq methods).

Last line, exactly: ``samples-to-stability: bernoulli N1 calls, best <name> N2 calls, ratio R``
with ``R = N2 / N1``; before it, where the best method is worse than the default in evidence
nP@5 (at equal calls; and each at its own stable count) and in white-box error
(``bench/calls_check.py``). Writes ``bench/results/calls.json`` (``calls-quick.json``); with
``--mlflow URI`` also one MLflow run per method and count (experiment ``musiclime-calls``),
which ``musiclime results`` draws.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (ROOT / "src", HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import stability as wb  # noqa: E402  (bench/stability.py: measures and white-box games)
from calls_check import against_default  # noqa: E402
from calls_rows import (  # noqa: E402,F401
    SongRows,
    evidence_np5,
    log_mlflow,
    predictions,
    run_auto,
    shapiq_song,
)

log = logging.getLogger("bench.calls")

BASELINE = "bernoulli+lime_ridge"
#: name -> (sampler, estimator, target)
METHODS: dict[str, tuple[str, str, str]] = {
    BASELINE: ("bernoulli", "lime_ridge", "probability"),
    "bernoulli+lime_ridge@logit": ("bernoulli", "lime_ridge", "logit"),
    "bernoulli+kernel_shap": ("bernoulli", "kernel_shap", "probability"),
    "bernoulli+kernel_shap@logit": ("bernoulli", "kernel_shap", "logit"),
    "paired+lime_ridge": ("paired", "lime_ridge", "probability"),
    "paired+lime_ridge@logit": ("paired", "lime_ridge", "logit"),
    "paired+kernel_shap": ("paired", "kernel_shap", "probability"),
    "paired+kernel_shap@logit": ("paired", "kernel_shap", "logit"),
    "paired+leverage_shap@logit": ("paired", "leverage_shap", "logit"),
    "orthogonal_foldover+lime_ridge": ("orthogonal_foldover", "lime_ridge", "probability"),
    "orthogonal_foldover+lime_ridge@logit": ("orthogonal_foldover", "lime_ridge", "logit"),
    # the same foldover with the fewest rows per block (48 for 46 features, not 64)
    "plackett_burman_foldover+lime_ridge": ("plackett_burman_foldover", "lime_ridge",
                                            "probability"),
    "plackett_burman_foldover+lime_ridge@logit": ("plackett_burman_foldover", "lime_ridge",
                                                  "logit"),
    "plackett_burman_foldover+lime_ridge@auto": ("plackett_burman_foldover", "lime_ridge",
                                                 "auto"),
    # the Banzhaf values (every row weighs the same) on the same foldover masks
    "plackett_burman_foldover+banzhaf": ("plackett_burman_foldover", "banzhaf", "probability"),
    "plackett_burman_foldover+banzhaf@logit": ("plackett_burman_foldover", "banzhaf", "logit"),
    "plackett_burman_foldover+banzhaf@auto": ("plackett_burman_foldover", "banzhaf", "auto"),
    "bernoulli+lime_ridge@auto": ("bernoulli", "lime_ridge", "auto"),
    "paired+lime_ridge@auto": ("paired", "lime_ridge", "auto"),
    "paired+kernel_shap@auto": ("paired", "kernel_shap", "auto"),
    "orthogonal_foldover+lime_ridge@auto": ("orthogonal_foldover", "lime_ridge", "auto"),
    # shapiq's approximators (bench/stability.py's SHAPIQ): sampler "shapiq", the estimator is
    # the approximator's class; one run per count (no prefix property)
    "shapiq+kernel_shap": ("shapiq", "KernelSHAP", "probability"),
    "shapiq+kernel_shap@logit": ("shapiq", "KernelSHAP", "logit"),
    "shapiq+kadd_shap": ("shapiq", "kADDSHAP", "probability"),
    "shapiq+permutation_sv": ("shapiq", "PermutationSamplingSV", "probability"),
}
#: the call counts: powers of two and the halfway points between them (1.5 x), so a song
#: stable from 150 calls reads 192, not 256
CALLS = [64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096]
EXPERIMENT = "musiclime-calls"


@dataclass
class Settings:
    songs: int = 4  # 8 would take ~80 min on 2 cores (60k classifier calls per song)
    seeds: int = 5
    calls: list[int] = field(default_factory=lambda: list(CALLS))
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    corpus: str = str(ROOT / "data" / "demo")
    whitebox_songs: int = 10  # per family
    error_calls: list[int] = field(default_factory=lambda: [256, 1024])
    #: the shapiq methods run only at the counts up to this one (each count is a prediction run
    #: of its own); their stability is read on those counts
    shapiq_max_calls: int = 1024

    @classmethod
    def quick(cls) -> Settings:
        return cls(songs=2, calls=[n for n in CALLS if n <= 512], whitebox_songs=2,
                   error_calls=[256], shapiq_max_calls=256)

    def method_calls(self, method: str) -> list[int]:
        """The counts ``method`` is run at: every count, or up to ``shapiq_max_calls``."""
        if METHODS[method][0] != "shapiq":
            return list(self.calls)
        return [n for n in self.calls if n <= self.shapiq_max_calls]


def _config(method: str):
    from musiclime import ExplainerConfig

    sampler, estimator, target = METHODS[method]
    return ExplainerConfig(sampler=sampler, estimator=estimator, target=target)


def run_demo(settings: Settings, cache: Path | None = None) -> dict:
    """weights[method][song] (seeds, counts, F; NaN at the counts a method is not run at),
    evidence nP@5, the prediction time, the classifier calls made, and for the shapiq methods
    rows[method][song] (seeds, counts): the distinct rows each run evaluated."""
    from inputs import demo_entries, load_demo

    from musiclime import ExplainerConfig, load_song
    from musiclime.core.explainer import surrogate_weights
    from musiclime.core.masks import MaskLayout
    from musiclime.metrics.evidence import evidence_features, load_evidence
    from musiclime.models.separation import OracleSeparator

    entries = demo_entries(settings.corpus)[: settings.songs]
    if not entries:
        raise SystemExit(f"no demo corpus under {settings.corpus}: run `make demo` first")
    clf = load_demo()
    top = max(settings.calls)
    samplers = sorted({METHODS[m][0] for m in settings.methods} - {"shapiq"})
    weights: dict[str, dict[str, np.ndarray]] = {m: {} for m in settings.methods}
    evidence: dict[str, dict[str, list[float]]] = {m: {} for m in settings.methods}
    rows: dict[str, dict[str, list]] = {m: {} for m in settings.methods
                                        if METHODS[m][0] == "shapiq"}
    labels: dict[str, str] = {}
    predict_s = 0.0
    predicted = 0  # classifier calls made by the shapiq methods (the others: top per run)

    for e in entries:
        song = load_song(e.audio, e.lyrics, OracleSeparator(), clf.sample_rate,
                         ExplainerConfig(), song_id=e.song_id, stems_dir=e.stems_dir)
        table = song.feature_table
        layout = MaskLayout(table.n_audio, table.n_lyrics, "both")
        labels[e.song_id] = str(e.label)
        truth = None
        if e.evidence and str(e.label) == "ai":
            idx = evidence_features(table, load_evidence(e.evidence), lyrics=song.lyrics)
            truth = np.zeros(layout.n_columns, dtype=bool)
            truth[sorted(idx)] = True
        for sampler in samplers:
            names = [m for m in settings.methods if METHODS[m][0] == sampler]
            fits = {m: surrogate_weights(_config(m)) for m in names}
            w = {m: np.zeros((settings.seeds, len(settings.calls), layout.n_columns))
                 for m in names}
            for seed in range(settings.seeds):
                t0 = time.perf_counter()
                masks, probs = predictions(song, layout, sampler, seed, top, clf, cache)
                predict_s += time.perf_counter() - t0
                label = int(np.argmax(probs[0]))
                for m in names:
                    for c, n in enumerate(settings.calls):
                        w[m][seed, c] = fits[m](masks[:n], probs[:n, label])
            for m in names:
                weights[m][e.song_id] = w[m]
                if truth is not None:
                    evidence[m][e.song_id] = evidence_np5(w[m], truth)
            log.info("%s (%s) %s: %d seeds x %d calls", e.song_id, e.label, sampler,
                     settings.seeds, top)
        shapiq = {m: METHODS[m][1:] for m in settings.methods if METHODS[m][0] == "shapiq"}
        if shapiq:
            w, r, oracle = shapiq_song(song, layout, clf, cache, shapiq, settings.seeds,
                                       settings.calls, settings.method_calls)
            for m in shapiq:
                weights[m][e.song_id], rows[m][e.song_id] = w[m], r[m]
                if truth is not None:
                    evidence[m][e.song_id] = evidence_np5(w[m], truth)
            predict_s += oracle.predict_s
            predicted += oracle.predicted
            log.info("%s (%s) shapiq: %d seeds, %d classifier calls (%d rows known)",
                     e.song_id, e.label, settings.seeds, oracle.predicted, len(oracle.known))
    return {"weights": weights, "evidence": evidence, "labels": labels, "predict_s": predict_s,
            "rows": rows, "shapiq_predicted": predicted}


def summarise(settings: Settings, demo: dict) -> dict:
    calls = settings.calls
    out: dict = {}
    for m in settings.methods:
        # the counts the method ran at (a shapiq method: up to shapiq_max_calls), NaN elsewhere
        mine = settings.method_calls(m)
        idx = [calls.index(n) for n in mine]
        curves = {}
        for s, w in demo["weights"][m].items():
            c = np.full(len(calls), np.nan)
            c[idx] = wb.jaccard_curve(np.asarray(w)[:, idx])
            curves[s] = c
        n_stable = {s: wb.samples_to_stability(c[idx], mine) for s, c in curves.items()}
        ev = demo["evidence"][m]
        out[m] = {
            "calls": mine,
            "median": wb.median(n_stable.values()),
            "per_song": n_stable,
            "median_jaccard": [wb.median(c[i] for c in curves.values()) if i in idx
                               else float("nan") for i in range(len(calls))],
            "curves": {s: c.tolist() for s, c in curves.items()},
            "evidence_np5": [float(np.mean([v[i] for v in ev.values()])) if ev else float("nan")
                             for i in range(len(calls))],
        }
        if m in demo.get("rows", {}):  # shapiq: the distinct rows a run evaluated, mean
            r = np.asarray(list(demo["rows"][m].values()), dtype=float)  # (songs, seeds, counts)
            out[m]["rows"] = [float(r[:, :, i].mean()) if i in idx else float("nan")
                              for i in range(len(calls))]
    return out


def whitebox(settings: Settings) -> dict:
    """Error vs the exact Shapley values of the white-box games, per method (an ``@logit``
    method is its base method on the game, see the module docstring). The shapiq methods (one
    run per count, and their fits cost more) only at the error counts: no stability by family
    (NaN)."""
    base = {m: m.split("@")[0] for m in settings.methods}
    table = {**wb.methods(), **wb.SHAPIQ}
    missing = sorted({b for b in base.values() if b not in table})
    if missing:
        raise SystemExit(f"bench/stability.py has no white-box method {missing}")
    prefix = sorted({b for b in base.values() if b not in wb.SHAPIQ})
    shapiq = sorted({b for b in base.values() if b in wb.SHAPIQ})
    out: dict = {}
    # the error at every count (the games cost nothing to evaluate); the report prints
    # error_calls, MLflow gets them all
    for names, calls in ((prefix, list(settings.calls)), (shapiq, list(settings.error_calls))):
        if not names:
            continue
        ws = wb.Settings(songs=settings.whitebox_songs, seeds=5, calls=calls,
                         error_calls=calls, methods=names)
        runs = wb.run_games(ws, progress=False)
        summary = wb.summarise(ws, runs)
        for b in names:
            st = summary["stability"][b]
            out[b] = {"errors": summary["errors"][b],
                      "median": st["median"] if b in prefix else float("nan"),
                      "by_family": {f: v if b in prefix else float("nan")
                                    for f, v in st["by_family"].items()}}
    return {m: out[b] for m, b in base.items()}


def best(summary: dict) -> str:
    others = [m for m in summary if m != BASELINE]
    return min(others, key=lambda m: (summary[m]["median"],
                                      -float(np.nansum(summary[m]["median_jaccard"]))))


def report(settings: Settings, summary: dict, white: dict, demo: dict) -> list[str]:
    calls = settings.calls
    w = max(30, *(len(m) for m in summary))  # the method column
    songs = ", ".join(f"{s} ({lab})" for s, lab in demo["labels"].items())
    lines = [f"demo classifier, {len(demo['labels'])} test songs: {songs}",
             f"median top-5 Jaccard over songs (S={settings.seeds} seeds) by classifier calls"]
    head = f"{'method':{w}s} " + " ".join(f"{n:>6d}" for n in calls) + "   calls-to-stable"
    lines += [head, "-" * len(head)]
    for m, st in summary.items():
        lines.append(f"{m:{w}s} " + " ".join(_num(j) for j in st["median_jaccard"])
                     + f"   {wb.calls_text(st['median'], st['calls']):>8s}")
    lines += ["", "evidence nP@5 (ai songs, mean over seeds and songs) by calls",
              head[:-len("   calls-to-stable")], "-" * (len(head) - len("   calls-to-stable"))]
    for m, st in summary.items():
        lines.append(f"{m:{w}s} " + " ".join(_num(v) for v in st["evidence_np5"]))
    shapiq = [m for m in summary if "rows" in summary[m]]
    if shapiq:
        lines += ["", "shapiq methods: distinct mask rows (classifier calls) a run evaluated, "
                  "mean over songs and seeds (one run per count, budget = count)",
                  head[:-len("   calls-to-stable")]]
        for m in shapiq:
            lines.append(f"{m:{w}s} " + " ".join(
                "     -" if np.isnan(v) else f"{v:6.0f}" for v in summary[m]["rows"]))
    lines += ["", "per song: calls to stability"]
    for m, st in summary.items():
        lines.append(f"{m:{w}s} " + "  ".join(f"{s}:{wb.calls_text(n, st['calls'])}"
                                             for s, n in st["per_song"].items()))
    fams = list(next(iter(white.values()))["by_family"])
    for n in settings.error_calls:
        lines += ["", f"white-box games: error vs exact Shapley at {n} calls (median over "
                  "songs of the mean over seeds): spearman / top-5 recall / normalised L2",
                  f"{'method':{w}s} " + " ".join(f"{f:>16s}" for f in fams)]
        for m, res in white.items():
            e = res["errors"][str(n)]
            lines.append(f"{m:{w}s} " + " ".join(
                f"{e[f]['spearman']:5.2f}/{e[f]['top5_recall']:4.2f}/{e[f]['l2']:4.2f}".rjust(16)
                for f in fams))
    lines += ["", "white-box games: median calls to stability by family",
              f"{'method':{w}s} " + " ".join(f"{f:>16s}" for f in fams)]
    for m, res in white.items():  # NaN: not measured (the shapiq methods)
        cells = ["-" if np.isnan(res["by_family"][f]) else
                 wb.calls_text(res["by_family"][f], calls) for f in fams]
        lines.append(f"{m:{w}s} " + " ".join(f"{c:>16s}" for c in cells))
    # the curve reading: the median over songs of the Jaccard at each count, stable from the
    # count where that curve stays >= 0.8 (the results page's figure; a weaker criterion)
    curve = {m: wb.samples_to_stability(
        np.asarray(st["median_jaccard"])[[calls.index(n) for n in st["calls"]]], st["calls"])
        for m, st in summary.items()}
    cb = min((m for m in curve if m != BASELINE), key=lambda m: curve[m])
    lines += ["", f"median-Jaccard curve: bernoulli {wb.calls_text(curve[BASELINE], calls)} "
              f"calls, best {cb} {wb.calls_text(curve[cb], summary[cb]['calls'])} calls, ratio "
              f"{_ratio(curve[cb], curve[BASELINE]):.2f}"]
    # the protocol's number: each song's samples-to-stability, median over songs; before it,
    # where the best method is worse than the default in evidence or white-box error
    b = best(summary)
    lines += ["", *against_default(b, BASELINE, summary, white, calls, settings.error_calls)]
    n1, n2 = summary[BASELINE]["median"], summary[b]["median"]
    lines += [f"samples-to-stability: bernoulli {wb.calls_text(n1, calls)} calls, best {b} "
              f"{wb.calls_text(n2, summary[b]['calls'])} calls, ratio {_ratio(n2, n1):.2f}"]
    return lines


def _num(v: float) -> str:
    return "     -" if np.isnan(v) else f"{v:6.2f}"


def _ratio(n2: float, n1: float) -> float:
    return n2 / n1 if np.isfinite(n1) and np.isfinite(n2) else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 songs, counts up to 512")
    ap.add_argument("--songs", type=int, help="demo test songs (default 4)")
    ap.add_argument("--methods", nargs="+", help=f"subset of {list(METHODS)}")
    ap.add_argument("--calls", type=int, nargs="+", help="call counts (default 64 .. 4096)")
    ap.add_argument("--shapiq-max-calls", type=int,
                    help="run the shapiq methods up to this count (default 1024; 256 --quick)")
    ap.add_argument("--cache", help="folder for the prediction runs (reused when present; a "
                    "shorter run of the same song, sampler and seed is extended)")
    ap.add_argument("--mlflow", help="also log the results as MLflow runs at this URI")
    ap.add_argument("--out", help="JSON output (default bench/results/calls[-quick].json)")
    ap.add_argument("--auto", nargs="*", metavar="KEY=VALUE",
                    help="instead: num_samples=auto on every demo test song (or --songs), with "
                         "these explainer settings, e.g. --auto target=auto")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.auto is not None:
        import yaml

        overrides = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.auto)}
        t0 = time.perf_counter()
        res = run_auto(Settings().corpus, args.songs, overrides)
        res["wall_s"] = time.perf_counter() - t0
        out = Path(args.out) if args.out else HERE / "results" / "calls-auto.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=float))
        print(f"num_samples=auto {' '.join(args.auto)}: {res['reached']} of {res['n']} songs "
              f"reached the target; median calls {res['median_calls']:g} (fixed default: 1000)")
        return 0
    settings = Settings.quick() if args.quick else Settings()
    if args.songs:
        settings.songs = args.songs
    if args.calls:
        settings.calls = sorted(args.calls)
        settings.error_calls = [n for n in settings.error_calls if n in settings.calls] or [
            settings.calls[len(settings.calls) // 2]]
    if args.shapiq_max_calls:
        settings.shapiq_max_calls = args.shapiq_max_calls
    if args.methods:
        unknown = set(args.methods) - set(METHODS)
        if unknown:
            ap.error(f"unknown methods {sorted(unknown)}; methods are {list(METHODS)}")
        settings.methods = list(dict.fromkeys([BASELINE, *args.methods]))
    t0 = time.perf_counter()
    demo = run_demo(settings, Path(args.cache) if args.cache else None)
    summary = summarise(settings, demo)
    white = whitebox(settings)
    wall = time.perf_counter() - t0
    lines = report(settings, summary, white, demo)
    out = Path(args.out) if args.out else HERE / "results" / (
        "calls-quick.json" if args.quick else "calls.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"settings": asdict(settings), "summary": summary, "whitebox": white,
              "labels": demo["labels"], "predict_s": demo["predict_s"], "wall_s": wall,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "report": lines}
    out.write_text(json.dumps(record, indent=1, default=float))
    if args.mlflow:
        log_mlflow(args.mlflow, settings, summary, white, METHODS, EXPERIMENT)
    log.info("wrote %s (%.0f s)", out, wall)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
