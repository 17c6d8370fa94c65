"""Do the nominal 90% intervals of :mod:`musiclime.core.uncertainty` cover the exact answer?

    python bench/uncertainty.py            # the table below (~4 min on one CPU core)
    python bench/uncertainty.py --quick    # n = 1000 only, fewer games (seconds)

Over the white-box games of :mod:`musiclime.models.groundtruth` (``F = 40`` audio features + 4..6
lyric lines), for every ``sampler+estimator``, family and sample count: explain each game with
``--seeds`` seeds and count how often the interval of every feature holds the exact answer:
the infinite-sample LIME coefficient (:func:`~musiclime.models.groundtruth.lime_coefficients`)
for ``lime_ridge``, the Shapley values for the Shapley estimators. Also: the median over games of
``rmse / mean weight_se`` (the weights' error against the truth over their standard error: about
1 when the standard errors are the right size and the bias small) and the milliseconds per label
of the uncertainty alone (the surrogate fit itself not counted). Families free of sampling noise
(additive for all; interaction under paired Shapley sampling) are marked ``exact``: their
intervals hold the truth and span nothing but the weight and the truth (LIME's shrinkage). Writes ``bench/results/uncertainty[-quick].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))

from musiclime.core.explainer import draw_masks  # noqa: E402
from musiclime.core.fitting import surrogate_fits  # noqa: E402
from musiclime.core.params import ExplainerConfig  # noqa: E402
from musiclime.core.surrogate import cosine_distance  # noqa: E402
from musiclime.core.uncertainty import explanation_uncertainty  # noqa: E402
from musiclime.models.groundtruth import FAMILIES, lime_coefficients, make_game  # noqa: E402

METHODS = ["bernoulli+lime_ridge", "paired+lime_ridge", "orthogonal+lime_ridge",
           "leverage+leverage_shap", "leverage_stratified+leverage_shap",
           "stratified+leverage_shap", "kernel+leverage_shap", "kernel+kernel_shap",
           "paired+kernel_shap"]


def cell(method: str, family: str, n: int, games: int, seeds: int) -> dict:
    sampler, estimator = method.split("+")
    hits, ratios, seconds, exact = [], [], [], True
    for g in range(games):
        game = make_game(family, 1000 + g, n_lyrics=(4, 5, 6)[g % 3])
        fit = ExplainerConfig(num_samples=n, sampler=sampler, estimator=estimator).fit
        if estimator == "lime_ridge":
            sizes = fit.draw.make_sampler().size_distribution(game.n_features)
            truth = lime_coefficients(game, fit.make_kernel(), cosine_distance, sizes)[1]
        else:
            truth = game.shapley()
        errors, ses, spans = [], [], []
        for seed in range(seeds):
            f = replace(fit, draw=replace(fit.draw, seed=seed))
            masks = draw_masks(f.draw, game.n_features)
            probs = game(masks)[:, None]
            fits, _, chosen = surrogate_fits(f, masks, probs, [0])
            t0 = time.perf_counter()
            u = explanation_uncertainty(f, masks, probs, [0], fits, chosen)[0]
            seconds.append(time.perf_counter() - t0)
            hits.append((u.lower - 1e-12 <= truth) & (truth <= u.upper + 1e-12))
            errors.append(fits[0].weights - truth)
            ses.append(u.se)
            # no sampling noise: the interval spans the weight and the truth, nothing more
            spans.append(np.all(u.upper - u.lower <= np.abs(fits[0].weights - truth) + 1e-9))
        rmse, se = np.sqrt(np.mean(np.square(errors))), np.mean(ses)
        exact &= bool(all(spans))
        ratios.append(rmse / se if se > 0 else float("nan"))
    return {"coverage": float(np.mean(np.concatenate(hits))), "exact": exact,
            "rmse_over_se": float(np.nanmedian(ratios)) if not exact else None,
            "ms_per_label": 1000 * float(np.mean(seconds))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--games", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--samples", type=int, nargs="+", default=[256, 1000, 4000])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.quick:
        args.games, args.seeds, args.samples = 3, 4, [1000]
    table = {}
    for n in args.samples:
        print(f"\nn = {n}: coverage of the nominal 90% intervals (rmse / se), ms per label")
        for method in args.methods:
            row = {fam: cell(method, fam, n, args.games, args.seeds) for fam in FAMILIES}
            table[f"{method}@{n}"] = row
            text = "  ".join(
                f"{fam[:11]:>11} {'exact' if c['exact'] else format(100 * c['coverage'], '.1f')}"
                + ("" if c["exact"] else f" ({c['rmse_over_se']:.2f})")
                for fam, c in row.items())
            ms = np.mean([c["ms_per_label"] for c in row.values()])
            print(f"{method:36s} {text}  {ms:5.1f} ms", flush=True)
    out = Path(args.out) if args.out else HERE / "results" / (
        "uncertainty-quick.json" if args.quick else "uncertainty.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "table": table}, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
