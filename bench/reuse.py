"""Cases 4-5 of ``bench/run.py``: the work musiclime does not redo. Case 4 (**sweep**): a grid
of kernel widths x nested num_samples against its largest point, replayed through the library
(one prediction per song, every point fitted on a prefix) or run by the workflow itself. Case 5
(**reuse**): ``predict_masks`` with ``reuse_constant_modality`` and ``deduplicate`` on vs off.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from inputs import DEMO_CORPUS, demo_entries, synthetic_clip  # noqa: E402

if TYPE_CHECKING:
    from cases import Settings


def load_demo_songs(n_songs: int, rate: int, corpus: str | Path = DEMO_CORPUS):
    """(song id, loader) pairs: each loader decodes, reads the oracle stems and factorizes."""
    from musiclime import ExplainerConfig, load_song
    from musiclime.models.separation import OracleSeparator

    entries = demo_entries(corpus)[:n_songs]
    sep = OracleSeparator()
    cfg = ExplainerConfig()
    return [(e.song_id, lambda e=e: load_song(e.audio, e.lyrics, sep, rate, cfg,
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
