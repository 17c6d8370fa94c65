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
   seeds, 64, 96, 128, 192, ..., 4096 calls on prefixes of one prediction run; shapiq's
   approximators one run per count up to 1024), with evidence recovery and the error against
   white-box ground truth. Not in the default set (~1 h; ``--methods`` runs fewer);
   ``--cases stability --quick`` is a smaller version (2 songs, up to 512 calls). Its last line
   is ``samples-to-stability: bernoulli N1 calls, best <name> N2 calls, ratio R``.
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
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# the cases live in cases.py (1-3), reuse.py (4-5), hf.py (6) and calls.py (7); their names are
# re-exported here (tests/test_bench_smoke.py and notebooks use bench.run.explain_once etc.)
from cases import (  # noqa: E402, F401
    GiB,
    Settings,
    case_e2e,
    child,
    classifier_rate,
    compare_weights,
    explain_once,
    make_classifier,
    overhead_of,
    reference_bytes,
    run_child,
)
from inputs import (  # noqa: E402, F401
    DEMO_CORPUS,
    STEM_NAMES,
    demo_clip,
    demo_entries,
    load_demo,
    synthetic_clip,
)
from memory import EnergyClassifier  # noqa: E402, F401
from report import table  # noqa: E402
from reuse import (  # noqa: E402, F401
    load_demo_songs,
    reuse_speedups,
    sweep_library,
    sweep_workflow,
    synthetic_songs,
)


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
    ap, args, extra = _parse_args(argv)
    if extra and "stability" not in args.cases.split(","):
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    cases = set(args.cases.split(","))
    if cases == {"stability"}:
        # case 7 alone: bench/calls.py (its own options pass through: --songs, --cache,
        # --mlflow, --methods, --calls, --shapiq-max-calls); its last line is the
        # samples-to-stability line; --out is its JSON
        import calls

        return calls.main((["--quick"] if args.quick else []) + extra
                          + (["--out", args.out] if args.out else []))
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
    run_cases(results, s, cases, args.quick, log)
    results["total_s"] = time.perf_counter() - t_all
    results["environment"]["loadavg_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=_json_default))
    print_summary(results, args.quick)
    print(f"\nwrote {out}")
    if "stability" in cases:  # last, so its samples-to-stability line ends the output
        import calls

        print("\ncase 7: fewer calls for a stable explanation (bench/calls.py)", flush=True)
        return calls.main((["--quick"] if args.quick else []) + extra)
    return 0


def _parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke version (about a minute)")
    ap.add_argument("--cases", default="e2e,overhead,memory,sweep,reuse",
                    help="comma-separated subset of e2e,overhead,memory,sweep,reuse,hf,"
                         "stability")
    ap.add_argument("--sweep-method", choices=["library", "workflow", "both"], default=None)
    ap.add_argument("--out", default=None)
    args, extra = ap.parse_known_args(argv)
    return ap, args, extra


def run_cases(results: dict, s: Settings, cases: set[str], quick: bool, log) -> None:
    """Cases 1-6 that ``cases`` names, each adding its entry to ``results``."""
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
            size="paper" if gpu else ("tiny" if quick else "mid"),
            samples=500 if gpu else (32 if quick else 200),
            seconds=30.0, repeats=3 if not quick else 1, mixed_precision=gpu, log=log)


def print_summary(results: dict, quick: bool) -> None:
    """The table of every case run, the hf case's report, and a warning on a busy machine."""
    print()
    print(f"musiclime benchmark ({'quick' if quick else 'full'}; "
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
