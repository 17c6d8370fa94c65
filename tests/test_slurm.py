"""`musiclime run --profile slurm` and `--profile slurm-local` on a real one-node SLURM cluster
(`.ci/local-slurm`).

Real daemons (munged, slurmctld, slurmd), Snakemake's SLURM executor plugin, a real `mlflow
server`, a kill -9 of the driver while its SLURM jobs run and a rerun that cancels them. The
real-cluster profile runs with docs/workflow.md's arguments for a cluster without accounting; the
test node declares the size of a real node, so its GPU jobs (4 CPUs, 16 GB) are accepted as
they are. The cluster is started here (the
script installs the Debian packages when they are missing); the test fails, with the script's
reason, when it cannot start, and is skipped only where it cannot be started at all (not root,
no apt-get). It also measures what a job costs under SLURM against the local executor.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
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


def queued_in(results: Path, env: dict) -> dict[str, str]:
    """The pending or running SLURM jobs whose working directory is ``results``: job id -> its
    comment (the executor writes `rule_<rule>_wildcards_...` or `rule_<group>` there)."""
    queue = subprocess.run(["squeue", "-h", "-o", "%i|%Z|%k"], capture_output=True, text=True,
                           env={**os.environ, **env}).stdout
    return {job: comment for job, workdir, comment in (ln.split("|", 2)
                                                      for ln in queue.splitlines())
            if Path(workdir) == results}


def keep_queued(jobs, env: dict) -> None:
    """Hold the pending ``jobs`` and suspend the running ones (as root): they stay in the
    queue, listed by squeue, until someone cancels them."""
    for job in jobs:
        for action in ("hold", "suspend"):  # one of the two applies; the other is refused
            subprocess.run(["scontrol", action, job], capture_output=True, text=True,
                           env={**os.environ, **env})


def show_job(job: str, env: dict) -> str:
    return subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                          env={**os.environ, **env}).stdout


def per_job(wall: float, log: str) -> tuple[int, float]:
    n = len(re.findall(r"^Finished jobid: \d+ \(Rule: \w+\)", log, flags=re.M))
    return n, wall / max(n, 1)


#: docs/workflow.md's real-cluster command for a cluster without accounting, with the status polls
#: of the test profile (the executor's default first poll, after 40 s, would add minutes)
REAL_CLUSTER_ARGS = ("--snakemake-args", "--slurm-status-command", "squeue",
                     "--slurm-init-seconds-before-status-checks", "2",
                     "--seconds-between-status-checks", "2")


def test_sweep_on_slurm_survives_a_kill_9_and_matches_the_local_executor(slurm_env, tmp_path):
    """The real-cluster profile runs until its GPU jobs are queued (with the requests a real
    cluster gets), the driver is killed -9, and the test cluster's profile reruns the sweep:
    it cancels the dead driver's jobs itself and ends with the local executor's files."""
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

        # `--profile slurm` (the real-cluster profile): kill -9 the driver's process group as
        # soon as both songs' predict_masks jobs are queued ...
        results = tmp_path / "slurm"
        overrides = base_overrides(manifest, results, *SWEEP)
        t0 = time.time()
        killed = subprocess.Popen(run_cmd(["--profile", "slurm", "-m", *overrides,
                                           *REAL_CLUSTER_ARGS]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={**os.environ, **env}, start_new_session=True)
        try:
            deadline = time.time() + 240
            while True:
                queued = queued_in(results, env)
                predict = [j for j, c in queued.items() if c.startswith("rule_predict_masks")]
                if len(predict) == 2:
                    break
                assert killed.poll() is None, "the run ended before its predictions were queued"
                assert time.time() < deadline, f"no predict_masks jobs within 240 s: {queued}"
                time.sleep(0.2)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait(timeout=60)
        wall_killed = time.time() - t0
        # on a busy cluster a dead driver's jobs wait in the queue for a while; on this one they
        # would end within seconds, racing the rerun below (a CI run under load saw one of two
        # end first): keep them queued, as a busy cluster would, until the rerun cancels them
        keep_queued(queued_in(results, env), env)
        # ... the real profile's requests were accepted as they are: GPU partition, a GPU,
        # 4 CPUs, 16 GB (the test node declares a real cluster's node size)
        for job in predict:
            shown = show_job(job, env)
            assert "Partition=gpu" in shown and "TresPerJob=gres:gpu:1" in shown, shown
            assert "NumCPUs=4" in shown and "mem=16000M" in shown, shown
        killed_logs = sorted((results / "logs" / "snakemake").glob("*.log"))
        killed_log = "".join(p.read_text() for p in killed_logs)
        assert "group audio" in slurm_jobs(killed_log).values(), killed_log
        # its SLURM jobs outlive it (they are slurmstepd's children, not the driver's)
        orphans = queued_in(results, env)
        assert set(predict) <= set(orphans), orphans
        print(f"killed the driver after {wall_killed:.0f} s; its SLURM job(s) {sorted(orphans)}")

        # the test cluster's profile reruns the sweep: no --unlock, no scancel by hand
        rc, out, wall_slurm = musiclime_run(
            ["--profile", "slurm-local", "-m", *overrides], env)
        assert rc == 0, out
        cancelled = re.search(r"^musiclime: cancelled SLURM job\(s\) ([\d ]+) that the "
                              r"interrupted run \(PID \d+\) left in (\S+)$", out, flags=re.M)
        assert cancelled, out
        assert sorted(cancelled.group(1).split()) == sorted(orphans), (cancelled.group(0), orphans)
        assert cancelled.group(2) == str(results)
        for job in orphans:
            assert "JobState=CANCELLED" in show_job(job, env), show_job(job, env)
        assert not set(orphans) & set(queued_in(results, env))

        # the jobs went through SLURM: the predictions to the gpu partition, with a GPU
        jobs = slurm_jobs(out)
        assert {"group fit", "group tables"} <= set(jobs.values()), jobs
        predict = [j for j, name in jobs.items() if name == "predict_masks"]
        assert len(predict) == 2, jobs  # one per song
        for job in predict:
            shown = show_job(job, env)
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

    # what a job costs: the killed run (until the kill) and the rerun together did the whole
    # sweep through SLURM once (the cancelled predictions had only started)
    n_local, s_local = per_job(wall_local, out_local)
    n_slurm, s_slurm = per_job(wall_killed + wall_slurm, killed_log + out)
    print(f"\nsame 2-song, 2-point sweep: local executor {wall_local:.0f} s / {n_local} jobs = "
          f"{s_local:.1f} s per job; SLURM {wall_killed:.0f} s (profile slurm, until the kill) + "
          f"{wall_slurm:.0f} s (profile slurm-local, the rerun) / {n_slurm} jobs in "
          f"{len(set(slurm_jobs(killed_log)) - set(orphans)) + len(jobs)} SLURM jobs = "
          f"{s_slurm:.1f} s per job "
          f"(+{s_slurm - s_local:.1f} s)")


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


def test_a_rerun_leaves_a_dead_runs_live_snakemake_driver_alone(tmp_path):
    """The musiclime process of a run died but its Snakemake driver (here: a process with a
    driver's command line in this root) did not: a rerun neither cancels that driver's jobs
    nor clears its lock, and says so in one line. (No cluster needed.)"""
    manifest = make_corpus(tmp_path / "corpus", n_songs=1)
    results = tmp_path / "results"
    locks = results / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("")
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)",
                               "snakemake", "--directory", str(results)])
    try:
        (results / ".musiclime.lock").write_text(
            f"PID {driver.pid + 100000} on {socket.gethostname()}, started 2000-01-01 00:00:00\n"
            f"snakemake log: {results}/logs/snakemake/x.log\nsnakemake PID: {driver.pid}\n")
        proc = subprocess.run(run_cmd(["--cores", "1", *base_overrides(
            manifest, results, "tracking.enabled=false")]), capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out
        assert f"the Snakemake driver (PID {driver.pid}) of an interrupted musiclime run " \
               f"still works in {results}" in out, out
        assert len(out.strip().splitlines()) == 1, out
        assert (locks / "0.input.lock").exists() and driver.poll() is None
    finally:
        driver.kill()
        driver.wait()
