"""Fewer classifier calls for the same explanation: samplers x estimators against exact answers.

    python bench/stability.py            # the full protocol (~2 min on 2 CPU cores)
    python bench/stability.py --quick    # a smoke version (seconds)
    python bench/stability.py --demo     # also the demo classifier on 4 demo test songs (slow)

The protocol (the issue "Fewer classifier calls for the same explanation"):

- **Songs**: white-box games with exact Shapley values (:mod:`musiclime.models.groundtruth`),
  over ``F = 40`` audio features (4 stems x 10 segments) + 4..6 lyric lines: the families
  ``additive``, ``interaction`` (ANDs of a stem-segment and a lyric line), ``saturating_or`` and
  ``many_small``, ``--songs`` songs each. They are functions of the mask ``z``: no audio, no GPU.
- **Methods**: a sampler (:mod:`musiclime.core.samplers`) and an estimator
  (:mod:`musiclime.core.estimators`), named ``sampler+estimator``. ``bernoulli+lime_ridge`` is
  today's default (the baseline, "bernoulli" in the last line). ``--methods`` also takes
  shapiq's approximators (:data:`SHAPIQ`, e.g. ``shapiq+kernel_shap``), which draw their own
  coalitions: one run per call count (``budget = count``), so they are not in the default set.
- **Runs**: for every method, song and seed (``S = 5``), one prediction run of the largest call
  count; every call count (64 .. 4096 classifier calls = mask rows, row 0 included) is fitted
  on a prefix of it (the samplers' prefix property).
- **Stable**: the mean pairwise Jaccard overlap of the ``S`` top-5 sets (signed weights,
  descending; :func:`musiclime.metrics.stability.weight_stability`) is >= 0.8. A song's
  samples-to-stability is the smallest call count from which on every larger count is stable
  (``inf`` when none). A method's number is the median over songs.
- **Error vs the exact Shapley values** at fixed call counts, mean over seeds, median over
  songs per family: Spearman rank correlation (higher is better), top-5 recall (higher is
  better), normalised L2 ``||w - phi|| / ||phi||`` (lower is better). LIME's weights estimate
  a different quantity (a kernel-weighted linear fit) and coincide with Shapley only for the
  additive family; their rank measures are still comparable.

The last line is ``samples-to-stability: bernoulli N1 calls, best <name> N2 calls, ratio R``,
``R = N2 / N1``. Writes ``bench/results/stability.json`` (``stability-quick.json``).
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

# one BLAS thread (set before numpy loads): thousands of small least-squares fits, and on a
# 2-core machine BLAS threads only contend
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from musiclime.core import estimators as est  # noqa: E402
from musiclime.core import samplers as smp  # noqa: E402
from musiclime.metrics.stability import weight_stability  # noqa: E402
from musiclime.models.groundtruth import FAMILIES, make_game  # noqa: E402

log = logging.getLogger("bench.stability")

BASELINE = "bernoulli+lime_ridge"
STABLE_JACCARD = 0.8
TOP_K = 5


@dataclass
class Settings:
    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    songs: int = 10  # per family
    seeds: int = 5
    calls: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024, 2048, 4096])
    error_calls: list[int] = field(default_factory=lambda: [256, 1024])
    n_audio: int = 40
    n_lyrics: list[int] = field(default_factory=lambda: [4, 5, 6])
    methods: list[str] | None = None  # None: all of methods() (SHAPIQ's by name only)
    demo: bool = False
    demo_songs: int = 4
    demo_methods: list[str] = field(default_factory=lambda: [BASELINE, "kernel+kernel_shap",
                                                              "leverage+leverage_shap"])
    demo_calls: list[int] = field(default_factory=lambda: [64, 128, 256, 512])

    @classmethod
    def quick(cls) -> Settings:
        return cls(songs=2, seeds=5, calls=[64, 128, 256, 512], error_calls=[256],
                   demo_songs=1, demo_calls=[64, 128])


def methods() -> dict[str, tuple[smp.Sampler, est.Estimator]]:
    """``sampler+estimator`` -> the pair. Kernel SHAP gets the weighting its sampler needs:
    the kernel itself for uniform masks, ``pi / q`` for the kernel-distributed sizes."""
    return {
        BASELINE: (smp.bernoulli, est.lime_ridge),
        "paired+lime_ridge": (smp.paired, est.lime_ridge),
        "orthogonal+lime_ridge": (smp.orthogonal, est.lime_ridge),
        "orthogonal_foldover+lime_ridge": (smp.orthogonal_foldover, est.lime_ridge),
        "plackett_burman_foldover+lime_ridge": (smp.plackett_burman_foldover, est.lime_ridge),
        "plackett_burman_foldover+banzhaf": (smp.plackett_burman_foldover, est.banzhaf),
        "bernoulli+kernel_shap": (smp.bernoulli, est.kernel_shap),
        "paired+kernel_shap": (smp.paired, est.kernel_shap),
        "paired+leverage_shap": (smp.paired, est.leverage_shap),
        "stratified+leverage_shap": (smp.stratified, est.leverage_shap),
        "kernel+kernel_shap": (smp.kernel, est.KernelSHAP(weighting="importance",
                                                          sampler=smp.kernel)),
        "leverage+leverage_shap": (smp.leverage, est.leverage_shap),
        "leverage_stratified+leverage_shap": (smp.leverage_stratified, est.leverage_shap),
    }


#: shapiq's Shapley-value approximators (``shapiq`` 1.4.1): name -> (class, keyword arguments).
#: They draw their own coalitions (no prefix property), so every call count is its own run of
#: ``budget = count`` (:func:`shapiq_values`). Picked from shapiq's first-order approximators on
#: these games (issue #24): the regression estimators with the border trick (always on in
#: shapiq's coalition sampler) and pairing, and permutation sampling; ``UnbiasedKernelSHAP``,
#: ``SVARM``, ``StratifiedSamplingSV`` and ``OwenSamplingSV`` were 2-5 times further from the
#: exact values at 256-1024 calls (the last two also call the game one row at a time).
SHAPIQ: dict[str, tuple[str, dict]] = {
    "shapiq+kernel_shap": ("KernelSHAP", {"pairing_trick": True}),
    "shapiq+kadd_shap": ("kADDSHAP", {"max_order": 2, "pairing_trick": True}),
    "shapiq+permutation_sv": ("PermutationSamplingSV", {}),
}


def shapiq_values(name: str, value, n_features: int, budget: int, seed: int
                  ) -> tuple[np.ndarray, int]:
    """The first-order values of the shapiq approximator ``name`` (:data:`SHAPIQ`) with
    ``budget`` and ``random_state=seed`` on the game ``value`` (uint8 masks ``(rows, F)`` ->
    ``(rows,)``, a musiclime mask: 1 keeps the feature, as shapiq's ``True`` keeps the player),
    and the distinct mask rows it evaluated (its classifier calls)."""
    import warnings

    import shapiq

    cls, kwargs = SHAPIQ[name]
    seen: dict[bytes, None] = {}

    def game(coalitions: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(np.asarray(coalitions)).astype(np.uint8)
        seen.update(dict.fromkeys(r.tobytes() for r in z))
        return np.asarray(value(z), dtype=np.float64)

    approx = getattr(shapiq, cls)(n_features, random_state=seed, **kwargs)
    with warnings.catch_warnings():  # "not all budget is required" past 2**F: never here
        warnings.simplefilter("ignore")
        iv = approx.approximate(budget=budget, game=game)
    return np.array([iv[(j,)] for j in range(n_features)], dtype=np.float64), len(seen)


# --- runs --------------------------------------------------------------------------------------
def songs(settings: Settings) -> list[dict]:
    out = []
    for family in settings.families:
        for i in range(settings.songs):
            n_lyrics = settings.n_lyrics[i % len(settings.n_lyrics)]
            game = make_game(family, seed=1000 + i, n_audio=settings.n_audio, n_lyrics=n_lyrics)
            out.append({"song": f"{family}_{i}", "family": family, "game": game,
                        "phi": game.shapley()})
    return out


def run_games(settings: Settings, progress: bool = True) -> dict:
    """weights[method][song] = array (seeds, len(calls), F)."""
    table = methods()
    names = settings.methods or list(table)
    games = songs(settings)
    rows: dict[str, dict[str, np.ndarray]] = {}  # shapiq methods: distinct rows per run
    top = max(settings.calls)
    weights: dict[str, dict[str, np.ndarray]] = {}
    timings: dict[str, float] = {}
    mask_cache: dict[tuple[str, int, int], np.ndarray] = {}
    for name in names:
        t0 = time.perf_counter()
        weights[name] = {}
        if name in SHAPIQ:  # its own coalitions: one run per count
            rows[name] = {}
            for song in games:
                game, m = song["game"], song["game"].n_features
                w = np.zeros((settings.seeds, len(settings.calls), m))
                r = np.zeros((settings.seeds, len(settings.calls)), dtype=int)
                for seed in range(settings.seeds):
                    for c, n in enumerate(settings.calls):
                        w[seed, c], r[seed, c] = shapiq_values(name, game, m, n, seed)
                weights[name][song["song"]] = w
                rows[name][song["song"]] = r
            timings[name] = time.perf_counter() - t0
            if progress:
                log.info("%-36s %6.1f s", name, timings[name])
            continue
        sampler, estimator = table[name]
        for song in games:
            game = song["game"]
            m = game.n_features
            w = np.zeros((settings.seeds, len(settings.calls), m))
            for seed in range(settings.seeds):
                key = (sampler.name, m, seed)
                if key not in mask_cache:
                    mask_cache[key] = sampler(m, top, seed)
                masks = mask_cache[key]
                values = game(masks)  # one prediction run; every count fits on its prefix
                for c, n in enumerate(settings.calls):
                    w[seed, c] = estimator(masks[:n], values[:n]).weights
            weights[name][song["song"]] = w
        timings[name] = time.perf_counter() - t0
        if progress:
            log.info("%-36s %6.1f s", name, timings[name])
    return {"songs": games, "weights": weights, "timings": timings, "rows": rows}


# --- measures ----------------------------------------------------------------------------------
def jaccard_curve(w: np.ndarray) -> np.ndarray:
    """Mean pairwise top-5 Jaccard over seeds, per call count; ``w`` (seeds, counts, F)."""
    return np.array([weight_stability(list(w[:, c]), ks=(TOP_K,)).jaccard[TOP_K]
                     for c in range(w.shape[1])])


def samples_to_stability(curve: np.ndarray, calls: list[int]) -> float:
    """The smallest count from which on every count is stable; ``inf`` when none."""
    stable = curve >= STABLE_JACCARD
    for c in range(len(calls)):
        if stable[c:].all():
            return float(calls[c])
    return float("inf")


def errors(w: np.ndarray, phi: np.ndarray) -> dict[str, float]:
    """Mean over seeds of Spearman, top-5 recall and normalised L2 vs the exact ``phi``."""
    true_top = set(np.argsort(-phi, kind="stable")[:TOP_K].tolist())
    rho, recall, l2 = [], [], []
    for v in w:
        rho.append(float(spearmanr(v, phi).statistic) if np.ptp(v) > 0 else 0.0)
        recall.append(len(true_top & set(np.argsort(-v, kind="stable")[:TOP_K].tolist()))
                      / TOP_K)
        l2.append(float(np.linalg.norm(v - phi) / np.linalg.norm(phi)))
    return {"spearman": float(np.mean(rho)), "top5_recall": float(np.mean(recall)),
            "l2": float(np.mean(l2))}


def median(values) -> float:
    """Median that keeps ``inf`` (a song that never became stable counts as the largest)."""
    v = np.sort(np.asarray(list(values), dtype=np.float64))
    if v.size == 0:
        return float("nan")
    mid = v.size // 2
    return float(v[mid]) if v.size % 2 else float((v[mid - 1] + v[mid]) / 2)


def summarise(settings: Settings, runs: dict) -> dict:
    games = runs["songs"]
    calls = settings.calls
    out: dict = {"stability": {}, "errors": {}, "curves": {}}
    for name, per_song in runs["weights"].items():
        n_stable, curves = {}, {}
        for song in games:
            curve = jaccard_curve(per_song[song["song"]])
            curves[song["song"]] = curve.tolist()
            n_stable[song["song"]] = samples_to_stability(curve, calls)
        by_family = {f: median(n_stable[s["song"]] for s in games if s["family"] == f)
                     for f in settings.families}
        out["stability"][name] = {"median": median(n_stable.values()), "by_family": by_family,
                                  "per_song": n_stable,
                                  "median_jaccard": [median(curves[s][c] for s in curves)
                                                     for c in range(len(calls))]}
        out["curves"][name] = curves
        out["errors"][name] = {}
        for n in settings.error_calls:
            c = calls.index(n)
            fam = {}
            for f in settings.families:
                per = [errors(per_song[s["song"]][:, c], s["phi"]) for s in games
                       if s["family"] == f]
                fam[f] = {k: median(e[k] for e in per) for k in per[0]}
            out["errors"][name][str(n)] = fam
    return out


def best_method(summary: dict) -> str:
    """The non-baseline method with the fewest median calls to stability; ties: the higher
    median Jaccard summed over the call counts."""
    st = summary["stability"]
    others = [n for n in st if n != BASELINE]
    return min(others, key=lambda n: (st[n]["median"], -float(np.sum(st[n]["median_jaccard"]))))


def calls_text(n: float, calls: list[int]) -> str:
    return f">{max(calls)}" if not np.isfinite(n) else f"{n:g}"


# --- the demo classifier (optional) ------------------------------------------------------------
def run_demo(settings: Settings, progress: bool = True) -> dict:
    """Stability only (no exact answer): the demo classifier on the first demo test songs."""
    sys.path.insert(0, str(HERE))
    from inputs import demo_entries, load_demo

    from musiclime import ExplainerConfig, load_song
    from musiclime.core.explainer import predict_song
    from musiclime.core.masks import MaskLayout
    from musiclime.models.separation import OracleSeparator

    entries = demo_entries(ROOT / "data" / "demo")[: settings.demo_songs]
    if not entries:
        return {"skipped": "no demo corpus under data/demo"}
    clf = load_demo(allow_untrained=True)
    cfg = ExplainerConfig(num_samples=max(settings.demo_calls), batch_size=0)
    table = methods()
    out: dict = {"songs": [e.song_id for e in entries], "trained": bool(clf.trained),
                 "stability": {}}
    for name in settings.demo_methods:
        sampler, estimator = table[name]
        per_song = {}
        for e in entries:
            song = load_song(e.audio, e.lyrics, OracleSeparator(), clf.sample_rate,
                             cfg, song_id=e.song_id, stems_dir=e.stems_dir)
            ft = song.feature_table
            layout = MaskLayout(ft.n_audio, ft.n_lyrics, "both")
            w = []
            label = None
            for seed in range(settings.seeds):
                masks = sampler(layout.n_columns, max(settings.demo_calls), seed)
                probs = predict_song(clf, song, masks, layout, cfg, progress=False,
                                     modality_game=False).probs
                label = int(np.argmax(probs[0])) if label is None else label
                w.append([estimator(masks[:n], probs[:n, label]).weights
                          for n in settings.demo_calls])
            curve = jaccard_curve(np.asarray(w))
            per_song[e.song_id] = {"curve": curve.tolist(),
                                   "n": samples_to_stability(curve, settings.demo_calls)}
            if progress:
                log.info("demo %s %s: %s", name, e.song_id, np.round(curve, 2))
        out["stability"][name] = {"per_song": per_song,
                                  "median": median(v["n"] for v in per_song.values())}
    return out


# --- report ------------------------------------------------------------------------------------
def report(settings: Settings, summary: dict, runs: dict, demo: dict | None) -> list[str]:
    calls = settings.calls
    lines = []
    head = f"{'method':36s} " + " ".join(f"{n:>6d}" for n in calls) + "   calls-to-stable"
    lines.append(f"median top-5 Jaccard over songs (S={settings.seeds} seeds) by classifier calls")
    lines.append(head)
    lines.append("-" * len(head))
    for name, st in summary["stability"].items():
        jac = " ".join(f"{j:6.2f}" for j in st["median_jaccard"])
        lines.append(f"{name:36s} {jac}   {calls_text(st['median'], calls):>8s}")
    lines.append("")
    fams = settings.families
    lines.append("median calls to stability, by family")
    head = f"{'method':36s} " + " ".join(f"{f:>14s}" for f in fams)
    lines.append(head)
    lines.append("-" * len(head))
    for name, st in summary["stability"].items():
        lines.append(f"{name:36s} " + " ".join(
            f"{calls_text(st['by_family'][f], calls):>14s}" for f in fams))
    for n in settings.error_calls:
        lines.append("")
        lines.append(f"error vs exact Shapley at {n} calls (median over songs of the mean over "
                     "seeds): spearman / top-5 recall / normalised L2")
        head = f"{'method':36s} " + " ".join(f"{f:>18s}" for f in fams)
        lines.append(head)
        lines.append("-" * len(head))
        for name, errs in summary["errors"].items():
            cells = []
            for f in fams:
                e = errs[str(n)][f]
                cells.append(f"{e['spearman']:.2f}/{e['top5_recall']:.2f}/{e['l2']:.2f}")
            lines.append(f"{name:36s} " + " ".join(f"{c:>18s}" for c in cells))
    if demo and "stability" in demo:
        lines.append("")
        lines.append(f"demo classifier ({'trained' if demo['trained'] else 'UNTRAINED'}), "
                     f"songs {', '.join(demo['songs'])}: median top-5 Jaccard by calls")
        for name, st in demo["stability"].items():
            curve = np.median([v["curve"] for v in st["per_song"].values()], axis=0)
            lines.append(f"{name:36s} " + " ".join(f"{j:6.2f}" for j in curve)
                         + f"   {calls_text(st['median'], settings.demo_calls):>8s}")
    base = summary["stability"][BASELINE]["median"]
    best = best_method(summary)
    n2 = summary["stability"][best]["median"]
    ratio = n2 / base if np.isfinite(base) and np.isfinite(n2) else float("nan")
    lines.append("")
    lines.append(f"samples-to-stability: bernoulli {calls_text(base, calls)} calls, best {best} "
                 f"{calls_text(n2, calls)} calls, ratio {ratio:.3g}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer songs and call counts")
    ap.add_argument("--demo", action="store_true",
                    help="also the demo classifier on the demo corpus's first test songs")
    ap.add_argument("--songs", type=int, help="songs per family")
    ap.add_argument("--demo-songs", type=int, help="demo test songs (default 4)")
    ap.add_argument("--demo-methods", nargs="+", help="methods run on the demo classifier")
    ap.add_argument("--methods", nargs="+",
                    help=f"subset of {list(methods())} and of shapiq's {list(SHAPIQ)}")
    ap.add_argument("--out", help="JSON output (default bench/results/stability[-quick].json)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings.quick() if args.quick else Settings()
    if args.songs:
        settings.songs = args.songs
    if args.methods:
        unknown = set(args.methods) - set(methods()) - set(SHAPIQ)
        if unknown:
            ap.error(f"unknown methods {sorted(unknown)}")
        settings.methods = list(dict.fromkeys([BASELINE, *args.methods]))
    settings.demo = args.demo
    if args.demo_songs:
        settings.demo_songs = args.demo_songs
    if args.demo_methods:
        settings.demo_methods = list(dict.fromkeys([BASELINE, *args.demo_methods]))
    t0 = time.perf_counter()
    runs = run_games(settings)
    summary = summarise(settings, runs)
    demo = run_demo(settings) if settings.demo else None
    wall = time.perf_counter() - t0
    lines = report(settings, summary, runs, demo)
    out = Path(args.out) if args.out else HERE / "results" / (
        "stability-quick.json" if args.quick else "stability.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"settings": asdict(settings), "summary": summary, "timings": runs["timings"],
              "demo": demo, "wall_s": wall, "machine": {
                  "platform": platform.platform(), "cpus": os.cpu_count()},
              "report": lines}
    out.write_text(json.dumps(record, indent=1, default=float))
    log.info("wrote %s (%.0f s)", out, wall)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
