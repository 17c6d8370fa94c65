"""kill -9 a real `musiclime run` at N moments, rerun it plainly, and check what survived.

For each kill moment, in a fresh results root: start `musiclime run` (a 2-point kernel-width sweep on
3 short songs, tracking to the embedded SQLite store) in its own process group, SIGKILL the
whole group at that moment, then run the same command again with no manual step. The table
says what the kill interrupted, whether the rerun succeeded, whether its explanations are
bit-identical to an uninterrupted run's, and what the MLflow store holds (child runs per point,
runs left RUNNING).

    python bench/kill_resume.py          # 10 kill moments: 2 fixed delays, then the moment each
                                         # of 8 stages writes its first output (load-proof)
    python bench/kill_resume.py --delays 3 10 --stages predict fit
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def musiclime_run(overrides: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "musiclime.cli", "run", "--cores", "2", "-m",
                           *overrides], capture_output=True, text=True, timeout=1800)


def interrupted(results: Path) -> str:
    """What existed when the kill came: the furthest stage with outputs."""
    if not results.exists():
        return "planning (no results root yet)"
    seen = [stage for stage in ("decode", "separate", "segment", "masks", "predict", "fit",
                                "aggregate", "track")
            if (results / stage).exists() and any((results / stage).rglob("*.*"))]
    store = "store exists" if (results / "mlflow.db").exists() else "no store yet"
    return f"{seen[-1] if seen else 'planning'} ({store})"


def store_state(results: Path) -> tuple[int, int, int]:
    """(points with a child run, max child runs of one point, runs RUNNING)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    exp = client.get_experiment_by_name("musiclime")
    runs = client.search_runs([exp.experiment_id])
    per_point: dict[str, int] = {}
    for r in runs:
        if "mlflow.parentRunId" in r.data.tags:
            pid = r.data.tags["musiclime.point_id"]
            per_point[pid] = per_point.get(pid, 0) + 1
    running = sum(r.info.status == "RUNNING" for r in runs)
    return len(per_point), max(per_point.values(), default=0), running


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delays", type=float, nargs="*", default=[2.0, 5.0],
                    help="kill this many seconds after the start")
    ap.add_argument("--stages", nargs="*",
                    default=["decode", "separate", "segment", "masks", "predict", "fit",
                             "aggregate", "track"],
                    help="kill as soon as this stage's first output file appears")
    args = ap.parse_args()
    from test_workflow import base_overrides, make_corpus
    from test_workflow import explanation_weights as weights

    tmp = Path(tempfile.mkdtemp(prefix="musiclime-kill-"))
    try:
        manifest = make_corpus(tmp / "corpus", n_songs=3)
        settings = ("metrics.enabled=false", "explainer.num_samples=60",
                    "explainer.kernel_width=0.25,1")
        t0 = time.perf_counter()
        ref = musiclime_run(base_overrides(manifest, tmp / "reference", *settings))
        full_s = time.perf_counter() - t0
        if ref.returncode != 0:
            print(ref.stdout[-3000:], ref.stderr[-3000:])
            return 1
        reference = weights(tmp / "reference")
        print(f"uninterrupted run: {full_s:.1f}s, {len(reference)} explanations\n")
        print("| kill at | interrupted | rerun rc | rerun s | explanations bit-identical | "
              "points with a child run | max child runs of a point | runs RUNNING |")
        print("|---|---|---|---|---|---|---|---|")
        failures = 0
        moments = [("delay", d) for d in args.delays] + [("stage", s) for s in args.stages]
        for i, (kind, when) in enumerate(moments):
            results = tmp / f"kill{i}"
            overrides = base_overrides(manifest, results, *settings)
            proc = subprocess.Popen([sys.executable, "-m", "musiclime.cli", "run", "--cores",
                                     "2", "-m", *overrides], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            if kind == "delay":
                time.sleep(when)
                label = f"{when:g} s"
            else:
                t0 = time.perf_counter()
                while proc.poll() is None and not any(
                        f.is_file() for f in (results / when).rglob("*")
                        if (results / when).is_dir()):
                    time.sleep(0.05)
                label = f"first {when} output ({time.perf_counter() - t0:.0f} s)"
            state = interrupted(results) if proc.poll() is None else "(had finished)"
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            t1 = time.perf_counter()
            rerun = musiclime_run(overrides)
            rerun_s = time.perf_counter() - t1
            same = weights(results) == reference
            points, most, running = store_state(results) if rerun.returncode == 0 else (0, 0, -1)
            ok = rerun.returncode == 0 and same and points == 2 and most == 1 and running == 0
            failures += not ok
            print(f"| {label} | {state} | {rerun.returncode} | {rerun_s:.0f} | "
                  f"{'yes' if same else 'NO'} | {points} | {most} | {running} |", flush=True)
            if rerun.returncode != 0:
                print(rerun.stderr[-2000:])
        print(f"\n{len(moments) - failures} of {len(moments)} kills recovered with a plain rerun")
        return 1 if failures else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
