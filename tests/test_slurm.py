"""`musiclime run --profile slurm-local` on a real one-node SLURM cluster (`.ci/local-slurm`).

Real daemons (munged, slurmctld, slurmd), Snakemake's SLURM executor plugin, a real `mlflow
server`, a kill -9 of the driver while its SLURM jobs run. The cluster is started here (the
script installs the Debian packages when they are missing); the test fails, with the script's
reason, when it cannot start, and is skipped only where it cannot be started at all (not root,
no apt-get). It also measures what a job costs under SLURM against the local executor.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_workflow import (
    _free_port,
    base_overrides,
    executed_rules,
    make_corpus,
    start_mlflow_server,
    with_snakemake_log,
)
from test_workflow import explanation_weights as weights

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LOCAL_SLURM = REPO / ".ci" / "local-slurm"
PROFILES = REPO / "workflow" / "profiles"
STATE = Path(os.environ.get("MUSICLIME_SLURM_DIR", "/tmp/musiclime-slurm"))
SWEEP = ("metrics.enabled=false", "explainer.num_samples=40", "explainer.kernel_width=0.1,1")
RUN_LIMIT_S = 420  # `timeout -k 10` around each run: a status poll that hangs must not hang CI


@pytest.fixture(scope="module")
def slurm_env():
    """Start the local cluster (idempotent); stop it afterwards only if this test started it."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (packages, /run/munge, device nodes)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    was_up = subprocess.run([str(LOCAL_SLURM), "status"], capture_output=True).returncode == 0
    start = subprocess.run([str(LOCAL_SLURM), "start"], capture_output=True, text=True,
                           timeout=900)
    if start.returncode != 0:
        pytest.fail(f"the local SLURM cluster did not start:\n{start.stdout}{start.stderr}")
    print(start.stdout, end="")
    yield {"SLURM_CONF": str(STATE / "slurm.conf")}
    if not was_up:
        subprocess.run([str(LOCAL_SLURM), "stop"], timeout=120)


def run_cmd(args: list[str]) -> list[str]:
    return ["timeout", "-k", "10", str(RUN_LIMIT_S), sys.executable, "-m", "musiclime.cli",
            "run", *args]


def musiclime_run(args: list[str], env: dict) -> tuple[int, str, float]:
    """(exit status, console + the Snakemake log it names, wall seconds)."""
    t0 = time.time()
    proc = subprocess.run(run_cmd(args), capture_output=True, text=True,
                          env={**os.environ, **env})
    return proc.returncode, with_snakemake_log(proc.stdout + proc.stderr), time.time() - t0


def tables(results: Path) -> dict[str, bytes]:
    return {str(p.relative_to(results)): p.read_bytes()
            for p in sorted(results.glob("aggregate/**/*.csv"))}


def slurm_jobs(log: str) -> dict[str, str]:
    """SLURM job id -> what it ran ("predict_masks", or "group audio" for a group job), from
    the executor's lines `... submitted with SLURM jobid N (log: .../slurm_logs/<what>/...)`."""
    jobs = {}
    for job, folder in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/"
                                  r"([^/]+)/", log):
        kind, _, rest = folder.partition("_")
        jobs[job] = rest if kind == "rule" else f"group {rest.split('_')[0]}"
    return jobs


def queued_in(results: Path, env: dict) -> list[str]:
    """Ids of the pending or running SLURM jobs whose working directory is ``results``."""
    queue = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True,
                           env={**os.environ, **env}).stdout
    return [job for job, workdir in (ln.split(maxsplit=1) for ln in queue.splitlines())
            if Path(workdir) == results]


def per_job(wall: float, log: str) -> tuple[int, float]:
    n = len(re.findall(r"^Finished jobid: \d+ \(Rule: \w+\)", log, flags=re.M))
    return n, wall / max(n, 1)


def test_sweep_on_slurm_survives_a_kill_9_and_matches_the_local_executor(slurm_env, tmp_path):
    from mlflow.tracking import MlflowClient

    manifest = make_corpus(tmp_path / "corpus", n_songs=2)
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {**slurm_env, "MLFLOW_TRACKING_URI": uri}
    server = start_mlflow_server(tmp_path / "server", port)
    try:
        # the reference: the same sweep with the local executor (its own experiment)
        local = tmp_path / "local"
        rc, out_local, wall_local = musiclime_run(
            ["--cores", "2", "-m", *base_overrides(manifest, local, *SWEEP,
                                                   "tracking.experiment=local-executor")], env)
        assert rc == 0, out_local
        print(f"local executor: {wall_local:.0f} s")

        # SLURM: kill -9 the driver's process group while its first SLURM job runs ...
        results = tmp_path / "slurm"
        args = ["--profile", "slurm-local", "-m", *base_overrides(manifest, results, *SWEEP)]
        killed = subprocess.Popen(run_cmd(args), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env={**os.environ, **env},
                                  start_new_session=True)
        try:
            deadline = time.time() + 240
            while not queued_in(results, env):
                assert killed.poll() is None, "the run ended before it submitted a SLURM job"
                assert time.time() < deadline, "no SLURM job submitted within 240 s"
                time.sleep(0.5)
            time.sleep(2)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait(timeout=60)
        # ... its SLURM jobs outlive it (they are slurmstepd's children, not the driver's):
        # cancel those working in this results root, as the README says, then run again
        orphans = queued_in(results, env)
        if orphans:
            subprocess.run(["scancel", *orphans], env={**os.environ, **env}, check=True)
        print(f"killed the driver; cancelled its SLURM job(s) {orphans}")

        rc, out, wall_slurm = musiclime_run(args, env)
        assert rc == 0, out  # no --unlock, no manual step but the scancel

        # the jobs went through SLURM: the predictions to the gpu partition, with a GPU
        jobs = slurm_jobs(out)
        assert jobs, out
        assert {"group audio", "group fit", "group tables"} <= set(jobs.values()), jobs
        predict = [j for j, name in jobs.items() if name == "predict_masks"]
        assert len(predict) == 2, jobs  # one per song
        for job in predict:
            shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True,
                                   text=True, env={**os.environ, **env}).stdout
            assert "Partition=gpu" in shown and "TresPerJob=gres:gpu:1" in shown, shown
            assert "JobState=COMPLETED" in shown, shown
        here = set(re.findall(r"^localrule (\w+):", out, flags=re.M))
        assert here == {"freeze_config", "track_mlflow", "all"}, here  # the rest: SLURM jobs
        assert "predict_masks" in executed_rules(out)

        # every explanation and global table, bit for bit those of the local executor
        assert len(weights(results)) == 4  # 2 songs x 2 kernel widths
        assert weights(results) == weights(local)
        assert tables(results) and tables(results) == tables(local)
        assert len(list(results.glob("aggregate/**/summary.json"))) == 2

        # one FINISHED child run per configuration under the sweep's parent run
        parent = re.findall(r"\(parent run (\w+)\)", out)[-1]
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("musiclime")
        runs = client.search_runs([exp.experiment_id])
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
        assert len(children) == 2, [r.data.tags for r in runs]
        assert len({r.data.tags["musiclime.point_id"] for r in children}) == 2
        assert {r.info.status for r in children} == {"FINISHED"}
        assert sorted(float(r.data.params["explainer.kernel_width"]) for r in children) == [
            0.1, 1.0]
        assert not [r for r in runs if r.info.status == "RUNNING"]
    finally:
        server.terminate()
        server.wait(timeout=30)

    n_local, s_local = per_job(wall_local, out_local)
    n_slurm, s_slurm = per_job(wall_slurm, out)
    print(f"\nsame 2-song, 2-point sweep: local executor {wall_local:.0f} s / {n_local} jobs = "
          f"{s_local:.1f} s per job; SLURM (slurm-local, the rerun after the kill) "
          f"{wall_slurm:.0f} s / {n_slurm} jobs in {len(jobs)} SLURM jobs = {s_slurm:.1f} s per "
          f"job (+{s_slurm - s_local:.1f} s)")


def test_the_slurm_profiles_give_every_rule_its_resources(tmp_path):
    """Dry runs of both profiles: predict/evaluate on the GPU partition with a GPU; the light
    rules grouped; the localrules not submitted. (No cluster needed.)"""
    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    for profile in ("slurm", "slurm-local"):
        proc = subprocess.run(
            [sys.executable, "-m", "musiclime.cli", "run", "--profile", profile, "-n",
             *base_overrides(manifest, tmp_path / profile, "tracking.enabled=false")],
            capture_output=True, text=True, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out
        resources = dict(re.findall(r"^\s*rule (\w+):\n(?:.*\n)*?\s*resources: (.*)$", out,
                                    flags=re.M))
        for rule in ("predict_masks", "evaluate_explanations"):
            assert "slurm_partition=gpu" in resources[rule] and "gpu=1" in resources[rule], out
        for rule in ("decode_audio", "separate_stems", "segment_features", "generate_masks",
                     "fit_lime"):
            assert "slurm_partition=cpu" in resources[rule], (rule, resources.get(rule))
    config = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    assert {config["groups"][r] for r in ("decode_audio", "separate_stems",
                                          "segment_features", "generate_masks")} == {"audio"}
