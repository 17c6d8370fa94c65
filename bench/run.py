"""musiclime vs the reference explainer: speed, memory, overhead, sweep reuse, modality reuse.

    python bench/run.py            # the full benchmark (~10-15 min on 2 CPU cores)
    python bench/run.py --quick    # a smoke version (about a minute)

Cases (all on CPU unless the classifier finds a GPU; the numbers in docs come from CPU runs):

1. **e2e** — one 30 s song at 44.1 kHz (two demo-corpus test songs joined, with their
   ground-truth stems; lyrics of both), ``both`` modality, num_samples 1000 and 5000: musiclime
   and the reference stand-in (``bench/reference.py``) on the same classifier, audio and masks.
   Each (implementation, classifier, num_samples) runs in a fresh child process so its peak RSS
   is its own. The reference keeps every waveform (num_samples x samples x 4 bytes), so it is
   skipped where that would not fit (5000 samples: 26 GB at 44.1 kHz). Two classifiers: a
   trivial energy classifier (isolates the explainer's own cost) and the demo classifier (at its
   22050 Hz rate: the clip is resampled, so the reference then holds 22050 Hz waveforms).
   Separation is not timed (both get the same oracle stems); factorization, masks, composition,
   prediction and the LIME fit are.
2. **overhead** — musiclime's total predict time over the time spent inside the classifier
   (``Predictions.timings``) for the demo classifier run of case 1. Goal <= 1.10.
3. **memory** — musiclime's peak RSS at num_samples 500, 2000, 5000 (energy classifier, fresh
   process each, as ``bench/memory.py`` does). Goal: max/min <= 1.10.
4. **sweep** — 3 kernel widths x 3 nested num_samples on 4 demo songs (demo classifier) against
   the largest single point. ``library`` method (default): the workflow's sharing replayed
   through the library (one prediction per song at the largest num_samples, every point fitted on
   a prefix), each part timed; naive = every point re-executed (decode, masks, prediction, fit),
   from measured runs at each num_samples (the 3 kernel widths of one num_samples are the same
   computation, counted 3 times). ``workflow`` method: two real ``musiclime run`` invocations
   (the grid with ``-m``, and the largest point alone) on fresh results roots, with
   ``metrics.enabled=false`` (the evaluate stage re-predicts ~640 rows per song *per point*,
   which no sharing removes) and tracking off. Goal <= 1.3.
6. **hf** — ``bench/hf.py``: the paper's AST + RoBERTa fusion design (``model=hf_fusion``,
   random weights from configs) on this machine: samples/s and musiclime's overhead over the
   classifier alone (goal <= 1.05), with GPU utilisation where there is CUDA. Not in the
   default set (it builds the model); ``--cases hf`` runs it ("mid" size on a CPU, "paper"
   size on a GPU).
7. **stability** — ``bench/calls.py``: how many classifier calls a stable explanation needs, per
   sampler, estimator and target, on the first demo test songs with the demo classifier (S=5
   seeds, 64..4096 calls on prefixes of one prediction run), with evidence recovery and the
   error against white-box ground truth. Not in the default set (~35 min); ``--cases stability
   --quick`` is a 3-minute version. Its last line is ``samples-to-stability: bernoulli N1
   calls, best <name> N2 calls, ratio R``.
5. **reuse** — ``predict_masks`` flags on vs off with the demo classifier:
   ``reuse_constant_modality`` in ``lyrical`` and ``audio`` mode, and ``deduplicate`` in
   ``lyrical`` mode with the reference's with-replacement sampler (``exhaustive=false``) on a
   song with few lines, where rows repeat.

Writes ``bench/results/bench.json`` (``bench-quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from inputs import (  # noqa: E402, F401 (re-exported: bench.run.load_demo etc.)
    DEMO_CORPUS,
    STEM_NAMES,
    demo_clip,
    demo_entries,
    load_demo,
    synthetic_clip,
)
from memory import EnergyClassifier  # noqa: E402
from reference import list_predict_fn, reference_explain  # noqa: E402

GiB = 2 ** 30


@dataclass
class Settings:
    seconds: float = 30.0
    rate: int = 44100  # the energy classifier's rate; the demo classifier works at 22050
    e2e_samples: list[int] = field(default_factory=lambda: [1000, 5000])
    e2e_classifiers: list[str] = field(default_factory=lambda: ["energy", "demo"])
    memory_samples: list[int] = field(default_factory=lambda: [500, 2000, 5000])
    reference_max_gib: float = 8.0  # skip the reference where its waveform list exceeds this
    sweep_songs: int = 4
    sweep_kernel_widths: list[float] = field(default_factory=lambda: [0.1, 0.25, 1.0])
    sweep_samples: list[int] = field(default_factory=lambda: [250, 500, 1000])
    sweep_method: str = "library"
    reuse_samples: int = 200
    dedup_samples: int = 500
    kernel_width: float = 0.25
    corpus: str = str(DEMO_CORPUS)
    allow_untrained: bool = False

    @classmethod
    def quick(cls) -> Settings:
        return cls(seconds=6.0, e2e_samples=[100, 300], memory_samples=[100, 200, 300],
                   sweep_songs=2, sweep_samples=[25, 50, 100], reuse_samples=40,
                   dedup_samples=120, allow_untrained=True)


def make_classifier(kind: str, rate: int = 44100, allow_untrained: bool = False):
    if kind == "energy":
        return EnergyClassifier(rate)
    if kind == "demo":
        return load_demo(allow_untrained)
    raise ValueError(f"unknown classifier {kind!r}")


def classifier_rate(kind: str, rate: int) -> int:
    return 22050 if kind == "demo" else rate


def reference_bytes(num_samples: int, seconds: float, rate: int) -> float:
    return float(num_samples) * seconds * rate * 4


# --- case 1: one explanation, one implementation ------------------------------------------------
def explain_once(impl: str, clf, clip: dict, num_samples: int, modality: str = "both",
                 kernel_width: float = 0.25, labels=(1,)) -> dict:
    """One explanation by ``impl`` (``musiclime`` or ``reference``) on the same masks.

    Peak RSS is only meaningful when this is the only thing the process did (see ``child``).
    """
    import torch

    from musiclime import ExplainerConfig, MusicLIME, factorize
    from musiclime.core.explainer import make_masks
    from musiclime.core.inference import auto_batch_size

    rate = clip["rate"]
    n_audio_samples = len(clip["mix"])
    cfg = ExplainerConfig(num_samples=num_samples, modality=modality, kernel_width=kernel_width,
                          labels=list(labels), num_features=10, seed=0)
    batch = auto_batch_size(n_audio_samples, torch.device("cpu"))
    out = {"impl": impl, "num_samples": num_samples, "modality": modality, "rate": rate,
           "seconds": n_audio_samples / rate, "clip": clip["source"], "batch_size": batch}
    if impl == "musiclime":
        rss0 = _peak_rss_mb()
        t0 = time.perf_counter()
        song = factorize(clip["mix"], clip["stems"], rate, clip["lyrics"], cfg)
        exp = MusicLIME(clf, cfg, progress=False).explain(song)
        wall = time.perf_counter() - t0
        fits = {k: f.weights for k, f in exp.fits.items()}
        out.update(wall_s=wall, rss_before_mb=rss0,
                   classifier_s=exp.timings["classifier_s"],
                   predict_total_s=exp.timings["predict_total_s"],
                   compose_s=exp.timings["compose_s"],
                   lyrics_compose_s=exp.timings["lyrics_compose_s"],
                   fit_s=exp.timings["fit_s"],
                   n_features=len(exp.columns), prediction=exp.prediction,
                   scores={k: f.score for k, f in exp.fits.items()})
    elif impl == "reference":
        song = factorize(clip["mix"], clip["stems"], rate, clip["lyrics"], cfg)
        masks, layout = make_masks(song.feature_table, cfg)
        del song
        fn = list_predict_fn(clf, batch)
        rss0 = _peak_rss_mb()
        t0 = time.perf_counter()
        res = reference_explain(clip["stems"], clip["lyrics"], fn, masks, modality=modality,
                                labels=labels, kernel_width=kernel_width,
                                num_features=masks.shape[1])
        wall = time.perf_counter() - t0
        fits = {k: f["weights"] for k, f in res["fits"].items()}
        t = res["timings"]
        out.update(wall_s=wall, rss_before_mb=rss0, classifier_s=t["classifier_s"],
                   predict_total_s=t["perturb_s"] + t["predict_s"], compose_s=t["perturb_s"],
                   fit_s=t["fit_s"], factorize_s=t["factorize_s"],
                   waveform_list_mb=res["waveform_bytes"] / 2 ** 20,
                   n_features=masks.shape[1],
                   prediction=[float(p) for p in res["predictions"][0]],
                   scores={k: f["score"] for k, f in res["fits"].items()})
    else:
        raise ValueError(impl)
    out["weights"] = {str(k): [float(x) for x in w] for k, w in fits.items()}
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(spec: dict) -> dict:
    """One ``explain_once`` in this (fresh) process."""
    rate = classifier_rate(spec["classifier"], spec["rate"])
    clf = make_classifier(spec["classifier"], rate, spec.get("allow_untrained", False))
    clip = demo_clip(spec["seconds"], rate, spec.get("corpus", DEMO_CORPUS))
    res = explain_once(spec["impl"], clf, clip, spec["num_samples"],
                       kernel_width=spec.get("kernel_width", 0.25))
    res["classifier"] = spec["classifier"]
    res["classifier_trained"] = bool(getattr(clf, "trained", True))
    return res


def run_child(spec: dict, timeout: float = 900) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {**spec, "error": (proc.stderr or proc.stdout)[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare_weights(a: dict, b: dict) -> dict:
    """How close two explanations' weights are (same label, same columns)."""
    out = {}
    for label, wa in a.get("weights", {}).items():
        wb = b.get("weights", {}).get(label)
        if wb is None:
            continue
        wa, wb = np.asarray(wa), np.asarray(wb)
        top_a = set(np.argsort(-np.abs(wa))[:5])
        top_b = set(np.argsort(-np.abs(wb))[:5])
        corr = float(np.corrcoef(wa, wb)[0, 1]) if wa.std() > 0 and wb.std() > 0 else 1.0
        out[label] = {"max_abs_diff": float(np.max(np.abs(wa - wb))),
                      "max_abs_weight": float(np.max(np.abs(wa))), "pearson": corr,
                      "top5_overlap": len(top_a & top_b)}
    return out


def case_e2e(s: Settings, log) -> tuple[dict, dict]:
    """Children for case 1 (and case 3's points); returns (e2e rows, memory rows)."""
    e2e = []
    mem_runs: dict[int, dict] = {}
    base = {"seconds": s.seconds, "rate": s.rate, "kernel_width": s.kernel_width,
            "corpus": s.corpus, "allow_untrained": s.allow_untrained}
    for kind in s.e2e_classifiers:
        rate = classifier_rate(kind, s.rate)
        for n in s.e2e_samples:
            row = {"classifier": kind, "num_samples": n, "rate": rate}
            ml = run_child({**base, "impl": "musiclime", "classifier": kind, "num_samples": n})
            log(f"  e2e {kind} n={n} musiclime: {_brief(ml)}")
            row["musiclime"] = ml
            if kind == "energy":
                mem_runs[n] = ml
            need = reference_bytes(n, s.seconds, rate)
            if need > s.reference_max_gib * GiB:
                row["reference"] = {"skipped": f"its waveform list alone would take "
                                               f"{need / GiB:.1f} GiB (> {s.reference_max_gib} "
                                               "GiB allowed here)"}
                log(f"  e2e {kind} n={n} reference: skipped ({need / GiB:.1f} GiB of waveforms)")
            else:
                ref = run_child({**base, "impl": "reference", "classifier": kind,
                                 "num_samples": n})
                log(f"  e2e {kind} n={n} reference: {_brief(ref)}")
                row["reference"] = ref
                if "error" not in ref and "error" not in ml:
                    row["speedup"] = ref["wall_s"] / ml["wall_s"]
                    row["memory_ratio"] = ref["peak_rss_mb"] / ml["peak_rss_mb"]
                    row["agreement"] = compare_weights(ml, ref)
            e2e.append(row)
    for n in s.memory_samples:
        if n not in mem_runs:
            mem_runs[n] = run_child({**base, "impl": "musiclime", "classifier": "energy",
                                     "num_samples": n})
            log(f"  memory n={n} musiclime: {_brief(mem_runs[n])}")
    rows = [mem_runs[n] for n in s.memory_samples]
    ok = [r for r in rows if "error" not in r]
    mem = {"rows": [{"num_samples": r["num_samples"], "peak_rss_mb": r.get("peak_rss_mb"),
                     "rss_before_mb": r.get("rss_before_mb"), "wall_s": r.get("wall_s"),
                     "error": r.get("error")} for r in rows]}
    if len(ok) == len(rows) and ok:
        peaks = [r["peak_rss_mb"] for r in ok]
        mem["max_over_min"] = max(peaks) / min(peaks)
        extra = [r["peak_rss_mb"] - r["rss_before_mb"] for r in ok]
        mem["explain_increment_mb"] = extra
    return {"rows": e2e}, mem


def _brief(r: dict) -> str:
    if "error" in r:
        return "ERROR " + r["error"].strip().splitlines()[-1]
    return (f"wall {r['wall_s']:.1f}s, classifier {r['classifier_s']:.1f}s, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB")


# --- case 2: overhead -----------------------------------------------------------------------------
def overhead_of(run: dict) -> dict:
    """musiclime's predict time over its classifier time (from one run's timings)."""
    total, model = run["predict_total_s"], run["classifier_s"]
    return {"predict_total_s": total, "classifier_s": model, "ratio": total / model,
            "compose_s": run.get("compose_s"), "lyrics_compose_s": run.get("lyrics_compose_s"),
            "other_s": total - model - (run.get("compose_s") or 0)
            - (run.get("lyrics_compose_s") or 0),
            "num_samples": run.get("num_samples"), "classifier": run.get("classifier")}


# --- case 4: sweep reuse --------------------------------------------------------------------------
def load_demo_songs(n_songs: int, rate: int, corpus: str | Path = DEMO_CORPUS):
    """(song id, loader) pairs: each loader decodes, reads the oracle stems and factorizes."""
    from musiclime import ExplainerConfig, load_song
    from musiclime.models.separation import OracleSeparator

    entries = demo_entries(corpus)[:n_songs]
    sep = OracleSeparator()
    cfg = ExplainerConfig()
    return [(e.song_id, lambda e=e: load_song(e.audio_path, e.lyrics_path, sep, rate, cfg,
                                              song_id=e.song_id, stems_dir=e.stems_dir))
            for e in entries]


def synthetic_songs(n_songs: int, seconds: float, rate: int):
    from musiclime import ExplainerConfig, factorize

    def loader(i):
        c = synthetic_clip(seconds, rate, seed=i, n_lines=6 + i)
        return factorize(c["mix"], c["stems"], rate, c["lyrics"], ExplainerConfig(),
                         song_id=f"syn{i}")

    return [(f"syn{i}", lambda i=i: loader(i)) for i in range(n_songs)]


def sweep_library(songs, clf, kernel_widths, sample_counts, log=print) -> dict:
    """Replay the workflow's sharing through the library and time every part.

    grid   = per song: load + masks(n_max) + predict(n_max) + one fit per point (prefixes)
    single = per song: load + masks(n_max) + predict(n_max) + the largest point's fit
    naive  = per song, per point: load + masks(n) + predict(n) + fit
    """
    from musiclime import ExplainerConfig
    from musiclime.core.classifier import classifier_device
    from musiclime.core.composition import WaveformComposer
    from musiclime.core.explainer import fit_explanation, make_masks
    from musiclime.core.inference import predict_masks

    n_max = max(sample_counts)
    kw_single = kernel_widths[len(kernel_widths) // 2]
    grid = single = naive = 0.0
    per_song, prefix_diff = [], 0.0
    for song_id, loader in songs:
        t0 = time.perf_counter()
        song = loader()
        table = song.feature_table
        load_s = time.perf_counter() - t0
        run = {}  # n -> (masks_s, predict_s, masks, probs, layout, names)
        for n in sorted(sample_counts, reverse=True):
            cfg = ExplainerConfig(num_samples=n)
            t0 = time.perf_counter()
            masks, layout = make_masks(table, cfg)
            t1 = time.perf_counter()
            comp = WaveformComposer(song.audio, device=classifier_device(clf))
            preds = predict_masks(clf, comp, song.lyrics, masks, layout, progress=False)
            t2 = time.perf_counter()
            run[n] = (t1 - t0, t2 - t1, masks, preds.probs, layout, preds.class_names)
        m_max, p_max, masks_max, probs_max, layout, names = run[n_max]
        fit_s = {}
        for kw in kernel_widths:
            for n in sample_counts:
                cfg = ExplainerConfig(num_samples=n, kernel_width=kw)
                t0 = time.perf_counter()
                fit_explanation(song_id, table, layout, masks_max, probs_max, names, cfg)
                fit_s[(kw, n)] = time.perf_counter() - t0
        for n in sample_counts:  # the prefix property the sharing relies on
            rows = run[n][3].shape[0]
            prefix_diff = max(prefix_diff, float(np.max(np.abs(run[n][3] - probs_max[:rows]))))
        song_grid = load_s + m_max + p_max + sum(fit_s.values())
        song_single = load_s + m_max + p_max + fit_s[(kw_single, n_max)]
        song_naive = sum(load_s + run[n][0] + run[n][1] + fit_s[(kw, n)]
                         for kw in kernel_widths for n in sample_counts)
        grid += song_grid
        single += song_single
        naive += song_naive
        per_song.append({"song": song_id, "load_s": load_s,
                         "predict_s": {str(n): run[n][1] for n in sample_counts},
                         "masks_s": {str(n): run[n][0] for n in sample_counts},
                         "fit_s_total": sum(fit_s.values()), "grid_s": song_grid,
                         "single_s": song_single, "naive_s": song_naive})
        log(f"  sweep {song_id}: load {load_s:.1f}s, predict n={n_max} {p_max:.1f}s, "
            f"9 fits {sum(fit_s.values()):.2f}s")
    return {"method": "library", "grid_s": grid, "single_s": single, "naive_s": naive,
            "ratio": grid / single, "naive_ratio": naive / single,
            "kernel_widths": list(kernel_widths), "num_samples": list(sample_counts),
            "songs": [s for s, _ in songs], "prefix_max_abs_prob_diff": prefix_diff,
            "per_song": per_song}


def sweep_workflow(s: Settings, log=print) -> dict:
    """Two real ``musiclime run`` invocations: the grid (``-m``) and its largest point alone."""
    tmp = Path(tempfile.mkdtemp(prefix="musiclime-bench-sweep-"))
    n_max = max(s.sweep_samples)
    kw_single = s.sweep_kernel_widths[len(s.sweep_kernel_widths) // 2]
    common = [f"dataset.manifest={Path(s.corpus) / 'manifest.csv'}", "dataset.split=test",
              f"dataset.limit={s.sweep_songs}", "separator=oracle", "model=demo",
              "tracking.enabled=false", "metrics.enabled=false"]
    grid = common + [f"results_root={tmp / 'grid'}",
                     "explainer.kernel_width=" + ",".join(f"{k:g}" for k in s.sweep_kernel_widths),
                     "explainer.num_samples=" + ",".join(str(n) for n in s.sweep_samples)]
    single = common + [f"results_root={tmp / 'single'}", f"explainer.kernel_width={kw_single:g}",
                       f"explainer.num_samples={n_max}"]
    out = {"method": "workflow", "results_root": str(tmp),
           "note": "metrics.enabled=false: the evaluate stage re-predicts ~640 rows per song "
                   "and point with the default metric settings, a per-point cost no sharing "
                   "can remove; it is left out to measure the explanation pipeline"}
    try:
        for name, ov, multi in (("single", single, False), ("grid", grid, True)):
            cmd = [sys.executable, "-m", "musiclime.cli", "run", "--cores", "2"]
            cmd += (["-m"] if multi else []) + ov
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            out[f"{name}_s"] = time.perf_counter() - t0
            if proc.returncode != 0:
                out["error"] = (proc.stdout + proc.stderr)[-2000:]
                return out
            log(f"  sweep workflow {name}: {out[f'{name}_s']:.1f}s")
        out["ratio"] = out["grid_s"] / out["single_s"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --- case 5: modality reuse and dedup -------------------------------------------------------------
def reuse_speedups(clf, song, reuse_samples: int, dedup_song=None,
                   dedup_samples: int = 500) -> dict:
    """``predict_masks`` with each flag on vs off; probabilities must agree."""
    from musiclime import ExplainerConfig
    from musiclime.core.classifier import classifier_device
    from musiclime.core.composition import WaveformComposer
    from musiclime.core.explainer import make_masks
    from musiclime.core.inference import predict_masks

    dev = classifier_device(clf)
    out = {}

    def timed(sng, masks, layout, **flags):
        comp = WaveformComposer(sng.audio, device=dev)
        t0 = time.perf_counter()
        p = predict_masks(clf, comp, sng.lyrics, masks, layout, progress=False, **flags)
        return time.perf_counter() - t0, p

    for modality in ("lyrical", "audio"):
        masks, layout = make_masks(song.feature_table,
                                   ExplainerConfig(num_samples=reuse_samples, modality=modality))
        t_on, p_on = timed(song, masks, layout, reuse_constant_modality=True)
        t_off, p_off = timed(song, masks, layout, reuse_constant_modality=False)
        out[f"reuse_{modality}"] = {
            "flag": "reuse_constant_modality", "modality": modality, "rows": int(masks.shape[0]),
            "on_s": t_on, "off_s": t_off, "speedup": t_off / t_on,
            "max_abs_prob_diff": float(np.max(np.abs(p_on.probs - p_off.probs)))}
    sng = dedup_song or song
    masks, layout = make_masks(sng.feature_table, ExplainerConfig(
        num_samples=dedup_samples, modality="lyrical", exhaustive=False))
    t_on, p_on = timed(sng, masks, layout, deduplicate=True, reuse_constant_modality=False)
    t_off, p_off = timed(sng, masks, layout, deduplicate=False, reuse_constant_modality=False)
    out["dedup_lyrical"] = {
        "flag": "deduplicate", "modality": "lyrical", "exhaustive": False,
        "song": sng.song_id, "lyric_units": len(sng.lyrics), "rows": int(masks.shape[0]),
        "unique_rows": p_on.unique_rows, "on_s": t_on, "off_s": t_off, "speedup": t_off / t_on,
        "max_abs_prob_diff": float(np.max(np.abs(p_on.probs - p_off.probs)))}
    return out


# --- report -------------------------------------------------------------------------------------
def table(results: dict) -> str:
    lines = []

    def row(case, metric, value, goal="", met=None):
        mark = "" if met is None else ("MET" if met else "MISSED")
        lines.append(f"{case:<9} {metric:<58} {value:>22} {goal:>10} {mark:>7}")

    lines.append(f"{'case':<9} {'metric':<58} {'value':>22} {'goal':>10} {'':>7}")
    lines.append("-" * 110)
    for r in results.get("e2e", {}).get("rows", []):
        ml, ref = r["musiclime"], r.get("reference", {})
        tag = f"{r['classifier']} n={r['num_samples']} @{r['rate'] // 1000}k"
        if "error" in ml:
            row("e2e", f"{tag}: musiclime failed", "error")
            continue
        row("e2e", f"{tag}: musiclime wall s / peak RSS MB",
            f"{ml['wall_s']:.1f} / {ml['peak_rss_mb']:.0f}")
        row("e2e", f"{tag}: musiclime classifier s (share)",
            f"{ml['classifier_s']:.1f} ({ml['classifier_s'] / ml['wall_s']:.0%})")
        if "skipped" in ref:
            gib = reference_bytes(r["num_samples"], results["settings"]["seconds"], r["rate"])
            row("e2e", f"{tag}: reference skipped (waveforms {gib / GiB:.1f} GiB)", "-")
        elif "error" in ref:
            row("e2e", f"{tag}: reference failed", "error")
        elif ref:
            row("e2e", f"{tag}: reference wall s / peak RSS MB",
                f"{ref['wall_s']:.1f} / {ref['peak_rss_mb']:.0f}")
            row("e2e", f"{tag}: reference classifier s (share)",
                f"{ref['classifier_s']:.1f} ({ref['classifier_s'] / ref['wall_s']:.0%})")
            row("e2e", f"{tag}: speed-up (ref/musiclime wall)", f"{r['speedup']:.2f}x")
            row("e2e", f"{tag}: memory (ref/musiclime peak RSS)", f"{r['memory_ratio']:.2f}x")
            agree = next(iter(r.get("agreement", {}).values()), None)
            if agree:
                row("e2e", f"{tag}: weights ref vs musiclime (pearson, top-5)",
                    f"{agree['pearson']:.4f}, {agree['top5_overlap']}/5")
    ov = results.get("overhead")
    if ov:
        row("overhead", f"predict total / classifier ({ov['classifier']}, n={ov['num_samples']})",
            f"{ov['ratio']:.3f}", "<= 1.10", ov["ratio"] <= 1.10)
        row("overhead", "  of which compose s / lyrics s / other s",
            f"{ov['compose_s']:.2f} / {ov['lyrics_compose_s']:.3f} / {ov['other_s']:.2f}")
    mem = results.get("memory")
    if mem and "max_over_min" in mem:
        peaks = " / ".join(f"{r['peak_rss_mb']:.0f}" for r in mem["rows"])
        ns = "/".join(str(r["num_samples"]) for r in mem["rows"])
        row("memory", f"musiclime peak RSS MB at n={ns}", peaks)
        row("memory", "max/min peak RSS", f"{mem['max_over_min']:.3f}", "<= 1.10",
            mem["max_over_min"] <= 1.10)
        row("memory", "  peak RSS growth during the explanation, MB",
            " / ".join(f"{x:.0f}" for x in mem["explain_increment_mb"]))
    for sw in results.get("sweep", []):
        if "error" in sw:
            row("sweep", f"{sw['method']}: failed", "error")
            continue
        row("sweep", f"{sw['method']}: grid s / largest single point s",
            f"{sw['grid_s']:.1f} / {sw['single_s']:.1f}")
        row("sweep", f"{sw['method']}: grid / single", f"{sw['ratio']:.3f}x", "<= 1.3",
            sw["ratio"] <= 1.3)
        if "naive_ratio" in sw:
            row("sweep", f"{sw['method']}: naive re-execution / single",
                f"{sw['naive_ratio']:.2f}x", "(~5x)")
    for r in results.get("reuse", {}).values():
        extra = f", {r['unique_rows']}/{r['rows']} distinct" if "unique_rows" in r else ""
        row("reuse", f"{r['flag']} ({r['modality']}{extra}): off s / on s",
            f"{r['off_s']:.2f} / {r['on_s']:.2f}")
        row("reuse", f"{r['flag']} ({r['modality']}) speed-up", f"{r['speedup']:.2f}x")
    return "\n".join(lines)


def environment() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "machine": platform.machine(),
            "loadavg_start": os.getloadavg()}
    try:
        mem = Path("/proc/meminfo").read_text().split("\n")
        info["mem_total_gib"] = int(mem[0].split()[1]) / 2 ** 20
    except OSError:
        pass
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke version (about a minute)")
    ap.add_argument("--cases", default="e2e,overhead,memory,sweep,reuse",
                    help="comma-separated subset of e2e,overhead,memory,sweep,reuse,hf,"
                         "stability")
    ap.add_argument("--sweep-method", choices=["library", "workflow", "both"], default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args, extra = ap.parse_known_args(argv)
    if extra and "stability" not in args.cases.split(","):
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    cases = set(args.cases.split(","))
    if cases == {"stability"}:
        # case 7 alone: bench/calls.py (its own options pass through: --songs, --cache,
        # --mlflow, --methods, --calls); its last line is the samples-to-stability line
        import calls

        return calls.main((["--quick"] if args.quick else []) + extra)
    s = Settings.quick() if args.quick else Settings()
    if args.sweep_method:
        s.sweep_method = args.sweep_method
    out = Path(args.out) if args.out else HERE / "results" / (
        "bench-quick.json" if args.quick else "bench.json")

    def log(msg):
        print(msg, flush=True)

    results: dict = {"settings": asdict(s), "environment": environment(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    t_all = time.perf_counter()
    if cases & {"e2e", "overhead", "memory"}:
        log("case 1/2/3: end to end, overhead and memory (one child process per run)")
        e2e, mem = case_e2e(s, log)
        if "e2e" in cases or "overhead" in cases:
            results["e2e"] = e2e
        if "memory" in cases:
            results["memory"] = mem
        demo_runs = [r["musiclime"] for r in e2e["rows"]
                     if r["classifier"] == "demo" and "error" not in r["musiclime"]]
        if demo_runs:
            results["overhead"] = overhead_of(demo_runs[0])
            results["overhead"]["all"] = [overhead_of(r) for r in demo_runs]
    if "sweep" in cases or "reuse" in cases:
        clf = load_demo(s.allow_untrained)
        rate = clf.sample_rate
        results["demo_classifier_trained"] = bool(clf.trained)
    if "sweep" in cases:
        log("case 4: sweep reuse")
        results["sweep"] = []
        if s.sweep_method in ("library", "both"):
            songs = load_demo_songs(s.sweep_songs, rate, s.corpus) or synthetic_songs(
                s.sweep_songs, 20.0, rate)
            results["sweep"].append(sweep_library(songs, clf, s.sweep_kernel_widths,
                                                  s.sweep_samples, log))
        if s.sweep_method in ("workflow", "both"):
            results["sweep"].append(sweep_workflow(s, log))
    if "reuse" in cases:
        log("case 5: single-modality reuse and dedup")
        from musiclime import ExplainerConfig, factorize

        clip = demo_clip(s.seconds, rate, s.corpus)
        song = factorize(clip["mix"], clip["stems"], rate, clip["lyrics"], ExplainerConfig(),
                         song_id="clip")
        first = load_demo_songs(1, rate, s.corpus)
        dsong = first[0][1]() if first else None
        results["reuse"] = reuse_speedups(clf, song, s.reuse_samples, dsong, s.dedup_samples)
    if "hf" in cases:
        log("case 6: Hugging Face fusion model (bench/hf.py)")
        import hf as hf_bench
        import torch

        gpu = torch.cuda.is_available()
        results["hf"] = hf_bench.run(
            size="paper" if gpu else ("tiny" if args.quick else "mid"),
            samples=500 if gpu else (32 if args.quick else 200),
            seconds=30.0, repeats=3 if not args.quick else 1, mixed_precision=gpu, log=log)
    results["total_s"] = time.perf_counter() - t_all
    results["environment"]["loadavg_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=_json_default))
    print()
    print(f"musiclime benchmark ({'quick' if args.quick else 'full'}; "
          f"{results['environment']['cpu_count']} CPU cores, "
          f"{'CUDA' if results['environment']['cuda'] else 'no GPU'}; "
          f"{results['total_s']:.0f}s)")
    print(table(results))
    if "hf" in results:
        import hf as hf_bench

        print(hf_bench.report(results["hf"]))
    env = results["environment"]
    busy = env["loadavg_start"][0]  # before this run added its own load
    if busy > 0.5 * (env["cpu_count"] or 1):
        print(f"\nWARNING: load average {busy:.1f} on {env['cpu_count']} cores when this run "
              "started: other processes were using the CPU, so timings may be noisy (torch's "
              "threads slow down badly when oversubscribed); rerun on an idle machine")
    print(f"\nwrote {out}")
    if "stability" in cases:  # last, so its samples-to-stability line ends the output
        import calls

        print("\ncase 7: fewer calls for a stable explanation (bench/calls.py)", flush=True)
        return calls.main((["--quick"] if args.quick else []) + extra)
    return 0


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
