"""How low can the deletion ratio go on the demo corpus? The explanation against the orderings
that know more than it does.

    python bench/deletion_bound.py                      # all 30 demo test songs (see below)
    python bench/deletion_bound.py --songs 4 --ai-only  # the first 4 `ai` test songs
    python bench/deletion_bound.py --separator demo     # the default config's separator
    python bench/deletion_bound.py --ends --out bench/results/deletion_ends.json  # p_on, p_off
    python bench/deletion_bound.py --offset 15 --out b.json   # songs 16.. in another process
    python bench/deletion_bound.py --merge a.json b.json      # join such runs into --out

Issue #23 asks for a deletion AUC of at most 0.5x random for ``modality=both``. The metric
(:mod:`musiclime.metrics.deletion`) takes the trapezoid area under the *raw* probability of the
explained label over ``x = k / F`` and divides it by the mean area of ``R`` random orderings. No
ordering can take the curve below the probabilities the classifier gives to the masks on its
path: the song with every feature off (``p_off``, the curve's last point) and the song with the
evidence gone but everything else still on. This script measures that floor per song.

Per test song of the demo corpus (``data/demo``, made by ``make demo``): load it with the chosen
separator (``oracle``, the ground-truth stems, by default: the paper sweep ran both ``oracle``
and ``demo`` and their ``both`` deletion ratios differ by 0.004), explain it with the library's
own explainer (:class:`musiclime.MusicLIME`, default :class:`~musiclime.ExplainerConfig`:
``modality=both``, 1000 samples, 10 segments, line units) with the shipped demo classifier, and
for its predicted label, with the metric's own curve functions and the default
:class:`~musiclime.metrics.evaluate.MetricSettings` (``R = 10`` random orderings, 20 points,
seed 0):

- ``p_on``, ``p_off``: the probability with every feature on / off;
- ``expl``: the explanation's deletion AUC (exactly the ``deletion_auc`` metric), the random
  AUC mean (``deletion_random_auc_mean``) and their ratio (``deletion_ratio``);
- ``truth`` (songs with planted evidence of the explained label): the ordering that deletes the
  planted evidence features first (:func:`musiclime.metrics.evidence.evidence_features`), then
  the rest, each part in the explanation's order; ``p_no_evidence``: the probability with only
  the evidence off;
- ``greedy``: at each step delete the feature whose removal lowers the probability most
  (``F (F + 1) / 2`` classifier rows, about 1,100 for 46 features): an ordering any ranking
  could in principle give, so its ratio is what is within reach (the optimum over all ``F!``
  orderings can be lower; greedy is a search, not a proof);
- the floor-corrected ratio ``(AUC - p_off) / (random AUC - p_off)`` of each ordering, which
  takes out the area under ``p_off`` that every ordering pays.

Means over the `ai` songs (the ones with planted evidence) and over all songs. Writes
``bench/results/deletion_bound.json`` (after every song, so a stopped run keeps what it did).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (ROOT / "src", HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from musiclime.metrics.deletion import curve_auc, curve_ks, curve_masks, deletion_curve  # noqa: E402,E501
from musiclime.metrics.predictor import as_predict_fn, ranking  # noqa: E402

log = logging.getLogger("bench.deletion_bound")
ORDERINGS = ("expl", "truth", "greedy")


@dataclass
class Settings:
    songs: int | None = None  # None: every test song
    offset: int = 0  # skip the first songs (to split a run over processes; see --merge)
    ai_only: bool = False
    separator: str = "oracle"  # oracle (ground-truth stems) | demo (the default config's)
    greedy: bool = True
    ends: bool = False  # only the predicted label, p_on and p_off of each song (2 rows a song)
    corpus: str = str(ROOT / "data" / "demo")
    split: str = "test"


def order_curve(order, predict, label: int, ks: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """The deletion curve of one ordering at the metric's ``ks`` (the metric's masks and AUC)."""
    probs = predict(curve_masks(np.asarray(order), ks, "deletion"))[:, int(label)]
    return probs, curve_auc(ks, probs, n)


def greedy_order(predict, label: int, n: int) -> tuple[list[int], np.ndarray]:
    """Delete, at each step, the feature whose removal lowers ``P(label)`` most (ties: the
    earlier column); returns the order and the probability after each of the ``n + 1`` steps."""
    mask = np.ones(n, dtype=np.uint8)
    remaining = list(range(n))
    order: list[int] = []
    path = [float(predict(mask[None])[0, label])]
    while remaining:
        cand = np.repeat(mask[None], len(remaining), axis=0)
        cand[np.arange(len(remaining)), remaining] = 0
        p = predict(cand)[:, label]
        j = int(np.argmin(p))
        order.append(remaining.pop(j))
        mask = cand[j]
        path.append(float(p[j]))
    return order, np.asarray(path)


def deletion_bounds(weights, predict, label: int, truth=None, greedy: bool = True,
                    metric=None) -> dict:
    """Deletion AUCs and ratios of the explanation, the ground-truth and the greedy orderings.

    ``weights``: the explanation's (one per mask column); ``predict(masks) -> probs``;
    ``truth``: a boolean per column (planted evidence) or None; ``metric``: a
    :class:`~musiclime.metrics.evaluate.MetricSettings` (default: the defaults).
    """
    from musiclime.metrics.evaluate import MetricSettings

    metric = metric or MetricSettings()
    predict = as_predict_fn(predict)
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.size
    label = int(label)
    res = deletion_curve(weights, predict, label, points=metric.curve_points,
                         random_orderings=metric.random_orderings, seed=int(metric.seed))
    ks = curve_ks(n, metric.curve_points)
    ends = predict(np.stack([np.ones(n, np.uint8), np.zeros(n, np.uint8)]))[:, label]
    p_on, p_off = float(ends[0]), float(ends[1])
    rand = res.random_auc_mean
    out: dict = {"label": label, "n_features": n, "p_on": p_on, "p_off": p_off,
                 "random_auc": rand, "random_auc_std": res.random_auc_std,
                 "ks": ks.tolist(), "random_curve": res.random_probs.mean(axis=0).tolist()}

    def record(name: str, probs: np.ndarray, auc: float) -> None:
        out[f"{name}_auc"] = float(auc)
        out[f"{name}_ratio"] = float(auc / rand) if rand > 0 else float("nan")
        out[f"{name}_floor_ratio"] = (float((auc - p_off) / (rand - p_off))
                                      if rand - p_off > 1e-12 else float("nan"))
        out[f"{name}_curve"] = [float(p) for p in probs]

    record("expl", res.probs, res.auc)
    order = ranking(weights)
    if truth is not None and np.asarray(truth, dtype=bool).any():
        truth = np.asarray(truth, dtype=bool)
        gt = [int(c) for c in order if truth[c]] + [int(c) for c in order if not truth[c]]
        record("truth", *order_curve(gt, predict, label, ks, n))
        out["evidence_features"] = int(truth.sum())
        no_ev = (~truth).astype(np.uint8)
        out["p_no_evidence"] = float(predict(no_ev[None])[0, label])
    if greedy:
        g, path = greedy_order(predict, label, n)
        probs, auc = order_curve(g, predict, label, ks, n)
        assert np.allclose(probs, path[ks]), "the greedy path and its curve disagree"
        record("greedy", probs, auc)
        out["greedy_order"] = g
        out["greedy_min_p"] = float(path.min())
    return out


def measure_song(entry, clf, separator, settings: Settings) -> dict:
    from musiclime import ExplainerConfig, MusicLIME, load_song
    from musiclime.metrics.evidence import evidence_features, load_evidence
    from musiclime.metrics.predictor import MaskPredictor

    t0 = time.perf_counter()
    cfg = ExplainerConfig()
    song = load_song(entry.audio, entry.lyrics, separator, clf.sample_rate, cfg,
                     song_id=entry.song_id, stems_dir=entry.stems_dir)
    exp = MusicLIME(clf, cfg, progress=False).explain(song)
    t_explain = time.perf_counter() - t0
    label = int(exp.predicted_label)
    predictor = MaskPredictor(song, clf, exp.modality, batch_size=cfg.batch_size,
                              deduplicate=cfg.deduplicate, class_names=exp.class_names)
    truth = None
    name = exp.class_names[label]
    if entry.evidence:
        evidence = load_evidence(entry.evidence)
        if evidence.get("label") == name:  # evidence of the explained label
            idx = evidence_features(song.feature_table, evidence, lyrics=song.lyrics)
            truth = np.array([int(c) in idx for c in exp.columns], dtype=bool)
    out = deletion_bounds(exp.fits[label].weights, predictor, label, truth, settings.greedy)
    out.update(song_id=entry.song_id, true_label=str(entry.label), explained=name,
               n_audio=int(song.feature_table.n_audio), n_lyrics=int(song.feature_table.n_lyrics),
               classifier_rows=int(predictor.rows_predicted), explain_s=t_explain,
               seconds=time.perf_counter() - t0)
    return out


def song_ends(entry, clf, separator) -> dict:
    """``--ends``: the predicted label and ``p_on``, ``p_off`` of one song (2 classifier rows,
    no explanation): the two ends every deletion curve of the song shares."""
    from musiclime import ExplainerConfig, load_song
    from musiclime.metrics.predictor import MaskPredictor

    cfg = ExplainerConfig()
    song = load_song(entry.audio, entry.lyrics, separator, clf.sample_rate, cfg,
                     song_id=entry.song_id, stems_dir=entry.stems_dir)
    predictor = MaskPredictor(song, clf, cfg.modality, class_names=list(clf.class_names))
    n = predictor.n_columns
    probs = predictor(np.stack([np.ones(n, np.uint8), np.zeros(n, np.uint8)]))
    label = int(np.argmax(probs[0]))
    return {"song_id": entry.song_id, "true_label": str(entry.label),
            "explained": clf.class_names[label], "label": label, "n_features": n,
            "p_on": float(probs[0, label]), "p_off": float(probs[1, label])}


KEYS = ("p_on", "p_off", "p_no_evidence", "expl_auc", "random_auc", "expl_ratio",
        "expl_floor_ratio", "truth_auc", "truth_ratio", "truth_floor_ratio", "greedy_auc",
        "greedy_ratio", "greedy_floor_ratio")


def summarise(songs: list[dict]) -> dict:
    groups = {"ai": [s for s in songs if s["true_label"] == "ai"], "all": songs}
    out = {}
    for g, rows in groups.items():
        out[g] = {"songs": len(rows)}
        for k in KEYS:
            vals = [r[k] for r in rows if k in r and np.isfinite(r[k])]
            out[g][k] = float(np.mean(vals)) if vals else float("nan")
            out[g][f"{k}_n"] = len(vals)
    return out


def _f(v) -> str:
    return f"{v:6.3f}" if v is not None and np.isfinite(v) else "   n/a"


def report(songs: list[dict], summary: dict) -> list[str]:
    cols = [("p_on", "p_on"), ("p_off", "p_off"), ("p_noev", "p_no_evidence"),
            ("rand", "random_auc"), ("expl", "expl_auc"), ("ratio", "expl_ratio"),
            ("truth", "truth_ratio"), ("greedy", "greedy_ratio"), ("fc-exp", "expl_floor_ratio"),
            ("fc-tru", "truth_floor_ratio"), ("fc-grd", "greedy_floor_ratio")]
    head = f"{'song':20s} " + " ".join(f"{c:>6s}" for c, _ in cols)
    lines = ["deletion AUC of P(explained label) (trapezoid over k/F, raw probabilities); "
             "ratio = AUC / random AUC; truth / greedy: ratios of the evidence-first and greedy "
             "orderings; fc-*: (AUC - p_off) / (random AUC - p_off)", head, "-" * len(head)]
    for s in songs:
        tag = f"{s['song_id']} ({s['true_label'][:2]}->{s['explained'][:2]})"
        lines.append(f"{tag:20s} " + " ".join(_f(s.get(k)) for _, k in cols))
    lines.append("-" * len(head))
    for g, st in summary.items():
        tag = f"mean {g} ({st['songs']})"
        lines.append(f"{tag:20s} " + " ".join(_f(st.get(k)) for _, k in cols))
    return lines


def run(settings: Settings, out_path: Path) -> dict:
    from inputs import demo_entries, load_demo

    from musiclime.models.separation import OpenUnmixSeparator, OracleSeparator

    entries = demo_entries(settings.corpus, settings.split)
    if not entries:
        raise SystemExit(f"no demo corpus under {settings.corpus}: run `make demo` first")
    if settings.ai_only:
        entries = [e for e in entries if str(e.label) == "ai"]
    # manifest order: the first 8 are the paper sweep's songs (4 `ai`, 4 `human`, alternating)
    entries = entries[settings.offset:][: settings.songs]
    clf = load_demo()
    if settings.separator == "oracle":
        separator = OracleSeparator()
    else:  # config/separator/demo.yaml
        separator = OpenUnmixSeparator(model="demo", niter=1, wiener_win_len=300, device="cpu",
                                       chunk_seconds=30, chunk_overlap_seconds=4)
    songs: list[dict] = []
    result: dict = {}
    t0 = time.perf_counter()
    for e in entries:
        if settings.ends:
            songs.append(song_ends(e, clf, separator))
            log.info("%s", songs[-1])
            continue
        s = measure_song(e, clf, separator, settings)
        songs.append(s)
        log.info("%s (%s): p_on %.3f p_off %.3f ratio %.3f truth %s greedy %s, %d rows, %.0f s",
                 s["song_id"], s["true_label"], s["p_on"], s["p_off"], s["expl_ratio"],
                 _f(s.get("truth_ratio")), _f(s.get("greedy_ratio")), s["classifier_rows"],
                 s["seconds"])
        result = {"settings": asdict(settings), "songs": songs, "summary": summarise(songs),
                  "seconds": time.perf_counter() - t0,
                  "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                              "loadavg_start": os.getloadavg()[0]}}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=1))
    if settings.ends:
        result = {"settings": asdict(settings), "songs": songs, "summary": summarise(songs),
                  "seconds": time.perf_counter() - t0}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=1))
    return result


def merge(results: list[dict]) -> dict:
    """One result from runs over disjoint songs (``--offset``), songs in manifest order."""
    songs = sorted((s for r in results for s in r["songs"]), key=lambda s: s["song_id"])
    ids = [s["song_id"] for s in songs]
    if len(set(ids)) != len(ids):
        raise SystemExit("the runs to merge share songs")
    settings = {**results[0]["settings"], "songs": len(songs), "offset": 0}
    return {"settings": settings, "songs": songs, "summary": summarise(songs),
            "seconds": sum(r["seconds"] for r in results), "machine": results[0]["machine"],
            "merged_from": [r["settings"] for r in results]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--songs", type=int, default=None, help="at most this many songs")
    ap.add_argument("--offset", type=int, default=0, help="skip the first N songs")
    ap.add_argument("--ai-only", action="store_true", help="only the `ai` songs")
    ap.add_argument("--separator", choices=("oracle", "demo"), default="oracle")
    ap.add_argument("--no-greedy", action="store_true", help="skip the greedy ordering")
    ap.add_argument("--ends", action="store_true",
                    help="no explanations: the predicted label, p_on and p_off of every song")
    ap.add_argument("--corpus", default=str(ROOT / "data" / "demo"))
    ap.add_argument("--out", default=str(HERE / "results" / "deletion_bound.json"))
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="no run: join these result files (runs over disjoint songs) into --out")
    args = ap.parse_args(argv)
    if args.merge:
        result = merge([json.loads(Path(p).read_text()) for p in args.merge])
        Path(args.out).write_text(json.dumps(result, indent=1))
        print("\n".join(report(result["songs"], result["summary"])))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("musiclime").setLevel(logging.WARNING)
    settings = Settings(songs=args.songs, offset=args.offset, ai_only=args.ai_only, separator=args.separator,
                        greedy=not args.no_greedy, ends=args.ends, corpus=args.corpus)
    result = run(settings, Path(args.out))
    print("\n".join(report(result["songs"], result["summary"])))
    print(f"({result['seconds']:.0f} s; {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
