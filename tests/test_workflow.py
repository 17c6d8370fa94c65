"""End-to-end workflow tests: real Snakemake runs, real Hydra composition, real MLflow stores.

The corpus is tiny (3 songs of 3 s with ground-truth stems) and the classifier is the
white-box one, so each run takes well under a minute; they are marked slow but run in CI.
"""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musiclime.errors import ConfigError
from musiclime.workflow.runner import run_workflow

pytestmark = pytest.mark.slow

SR = 22050
STEMS = ("vocals", "drums", "bass", "other")


def make_corpus(root: Path, n_songs: int = 3, seconds: float = 3.0) -> Path:
    """Songs whose 880 Hz tone sits in `other` during [1.2, 1.5) s (segment 4 of 10)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    t = np.arange(int(seconds * SR)) / SR
    for i in range(n_songs):
        rng = np.random.default_rng(i)
        stems = {
            "vocals": 0.1 * np.sin(2 * np.pi * (300 + 20 * i) * t),
            "drums": 0.02 * rng.standard_normal(t.size),
            "bass": 0.2 * np.sin(2 * np.pi * 110 * t),
            "other": np.zeros(t.size),
        }
        if i != 1:  # song 1 is "human": no tone, no keyword
            a, b = int(1.2 * SR), int(1.5 * SR)
            stems["other"][a:b] = 0.2 * np.sin(2 * np.pi * 880 * t[a:b])
        sid = f"song{i}"
        sdir = root / f"{sid}.stems"
        sdir.mkdir(exist_ok=True)
        for name in STEMS:
            sf.write(sdir / f"{name}.wav", stems[name].astype(np.float32), SR, subtype="FLOAT")
        mix = sum(stems[n].astype(np.float32) for n in STEMS)
        sf.write(root / f"{sid}.flac", mix, SR)
        lines = ["[Verse]", "walking down the road", "the robot sings tonight" if i != 1
                 else "the choir sings tonight", "(yeah)", "and the night is long"]
        (root / f"{sid}.txt").write_text("\n".join(lines) + "\n")
        rows.append({"song_id": sid, "split": "test", "label": "human" if i == 1 else "ai",
                     "audio_path": f"{sid}.flac", "lyrics_path": f"{sid}.txt",
                     "stems_dir": f"{sid}.stems"})
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def base_overrides(manifest: Path, results: Path, *extra: str) -> list[str]:
    return [f"results_root={results}", f"dataset.manifest={manifest}", "dataset.split=null",
            "model=whitebox", "model.start=1.2", "model.end=1.5", "model.reference_energy=0.01",
            "separator=oracle", "explainer.num_samples=120", *extra]


def run_capture(overrides, multirun=False, env=None):
    """Run `musiclime run` in a subprocess; return (rc, combined output)."""
    cmd = [sys.executable, "-m", "musiclime.cli", "run", "--cores", "2"]
    if multirun:
        cmd.append("-m")
    proc = subprocess.run(cmd + list(overrides), capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)
    return proc.returncode, with_snakemake_log(proc.stdout + proc.stderr)


def explanation_weights(results: Path) -> dict[str, list[float]]:
    """Every explanation under a results root: its path -> all its feature weights."""
    import json

    out = {}
    for path in sorted(results.glob("fit/**/explanation.json")):
        d = json.loads(path.read_text())
        out[str(path.relative_to(results))] = [
            w["weight"] for e in d["explanations"].values() for w in e["weights"]]
    return out


def with_snakemake_log(console: str) -> str:
    """The console output, followed by the Snakemake log it names (`musiclime run` sends
    Snakemake's own output there)."""
    logs = re.findall(r"snakemake log: (\S+)", console)
    return console + "".join(Path(p).read_text() for p in logs if Path(p).is_file())


#: the rule names of workflow/rules/{audio,explain,global}.smk (demo.smk rebuilds demo assets)
FIXED_RULES = {"decode_audio", "separate_stems", "segment_features", "generate_masks",
               "predict_masks", "fit_lime", "evaluate_explanations", "aggregate_global",
               "freeze_config", "track_mlflow", "all"}


def executed_rules(output: str) -> list[str]:
    return re.findall(r"^(?:local)?rule (\w+):", output, flags=re.M)


def test_kernel_width_change_reruns_only_fit_and_after(corpus, tmp_path):
    results = tmp_path / "results"
    rc, out = run_capture(base_overrides(corpus, results, "tracking.enabled=false"))
    assert rc == 0, out
    first = executed_rules(out)
    for rule in ("decode_audio", "separate_stems", "segment_features", "generate_masks",
                 "predict_masks", "fit_lime", "aggregate_global"):
        assert rule in first, (rule, first)
    assert first.count("separate_stems") == 3  # once per song

    rc, out = run_capture(base_overrides(corpus, results, "tracking.enabled=false",
                                         "explainer.kernel_width=0.5"))
    assert rc == 0, out
    second = set(executed_rules(out))
    assert second <= {"fit_lime", "evaluate_explanations", "aggregate_global", "freeze_config",
                      "all"}, second
    assert {"fit_lime", "evaluate_explanations", "aggregate_global"} <= second

    # the white-box evidence is recovered by the explanation of an `ai` song
    fits = sorted(results.glob("fit/**/song0/explanation.json"))
    assert len(fits) == 2
    from musiclime.core.explanation import Explanation

    exp = Explanation.load(fits[0])
    top2 = {name for name, _ in exp.top_features(k=2)}
    assert top2 == {"other_T4", "the robot sings tonight"}


def test_num_samples_sweep_shares_one_prediction(corpus, tmp_path):
    results = tmp_path / "results"
    rc, out = run_capture(base_overrides(corpus, results, "tracking.enabled=false",
                                         "explainer.num_samples=60,120"), multirun=True)
    assert rc == 0, out
    rules = executed_rules(out)
    assert rules.count("predict_masks") == 3  # 3 songs, one prediction run each
    # both prefixes of a song are fitted (and evaluated) by one job (workflow.batch)
    assert rules.count("fit_lime") == 3, rules
    assert rules.count("evaluate_explanations") == 3, rules
    # every job runs under a rule name written in workflow/rules/*.smk: none is generated
    assert set(rules) <= FIXED_RULES, set(rules) - FIXED_RULES
    assert len(list(results.glob("fit/**/song0/explanation.json"))) == 2
    preds = list(results.glob("predict/**/song0.npz"))
    assert len(preds) == 1 and "n~120" in str(preds[0])


def test_interactions_sweep_shares_one_prediction(corpus, tmp_path):
    """explainer.interactions is a fit-stage choice: a sweep over it predicts once per song (the
    interaction estimator's rows join that run), and only its point records pairs."""
    import json

    results = tmp_path / "results"
    rc, out = run_capture(base_overrides(corpus, results, "tracking.enabled=false",
                                         "metrics.enabled=false",
                                         "explainer.interactions=none,regression_fsii",
                                         "explainer.interaction_budget=1100"), multirun=True)
    assert rc == 0, out
    rules = executed_rules(out)
    assert rules.count("predict_masks") == 3, rules  # 3 songs, one prediction run each
    assert rules.count("fit_lime") == 3, rules  # both points of a song in one fit job
    fits = sorted(results.glob("fit/**/song0/explanation.json"))
    assert len(fits) == 2
    records = {("ix~" in p.parent.parent.name): json.loads(p.read_text()) for p in fits}
    plain, paired = records[False], records[True]
    assert "interaction_game" not in plain["metadata"]
    assert all("interactions" not in e for e in plain["explanations"].values())
    game = paired["metadata"]["interaction_game"]
    assert game["estimator"] == "regression_fsii" and game["budget"] == 1100
    assert game["rows_predicted"] > 0 and game["rows_reused"] >= 1  # the original row at least
    pairs = next(iter(paired["explanations"].values()))["interactions"]
    assert len(pairs) == 10 and all(len(p["features"]) == 2 for p in pairs)
    # the same weights: the interactions take nothing from the surrogate's rows
    key = next(iter(plain["explanations"]))
    assert ([w["weight"] for w in plain["explanations"][key]["weights"]]
            == [w["weight"] for w in paired["explanations"][key]["weights"]])
    # a rerun of the same sweep predicts nothing: the interaction rows are cached
    rc, out = run_capture(base_overrides(corpus, results, "tracking.enabled=false",
                                         "metrics.enabled=false",
                                         "explainer.interactions=none,regression_fsii",
                                         "explainer.interaction_budget=1100"), multirun=True)
    assert rc == 0, out
    assert "predict_masks" not in executed_rules(out)


def _comparable(path: Path) -> dict:
    """A result JSON without its timings and job-accounting fields."""
    import json

    skip = ("time", "seconds", "_s", "timestamp", "rows", "batch")

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not any(t in k for t in skip)}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(json.loads(path.read_text()))


def test_batched_sweep_matches_point_by_point_jobs(corpus, tmp_path):
    """workflow.batch only changes how jobs are cut: the same files, the same explanations
    byte for byte (timings aside), the same metrics to float precision, fewer jobs and fewer
    classifier rows."""
    sweep = ("tracking.enabled=false", "dataset.limit=2", "explainer.num_samples=60,120",
             "explainer.kernel_width=0.25,1")
    runs = {}
    for batch in ("true", "false"):
        results = tmp_path / f"batch_{batch}"
        rc, out = run_capture(base_overrides(corpus, results, *sweep, f"workflow.batch={batch}"),
                              multirun=True)
        assert rc == 0, out
        runs[batch] = (results, executed_rules(out))
    (batched, rules_b), (single, rules_s) = runs["true"], runs["false"]
    assert rules_s.count("fit_lime") == 8 and rules_s.count("evaluate_explanations") == 8
    assert rules_b.count("fit_lime") == 2 and rules_b.count("evaluate_explanations") == 2
    assert len(rules_b) < len(rules_s) - 10

    files = sorted(p.relative_to(single) for p in single.glob("fit/**/explanation.json"))
    assert len(files) == 8
    assert files == sorted(p.relative_to(batched) for p in batched.glob("fit/**/explanation.json"))
    for rel in files:
        assert _comparable(batched / rel) == _comparable(single / rel), rel

    evals = sorted(p.relative_to(single) for p in single.glob("evaluate/**/met~*/*.json"))
    assert len(evals) == 8
    rows_single = rows_batched = 0.0
    for rel in evals:
        a, b = _comparable(batched / rel), _comparable(single / rel)
        assert a.keys() == b.keys(), rel
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12, nan_ok=True), (rel, key)
        import json

        rows_single += json.loads((single / rel).read_text())["metrics_classifier_rows"]
        rows_batched += json.loads((batched / rel).read_text())["metrics_classifier_rows"]
    # the held-out masks and random orderings are shared by the four points of a song
    assert rows_batched < 0.6 * rows_single, (rows_batched, rows_single)


def test_sweep_logs_child_runs_under_one_parent(corpus, tmp_path):
    from mlflow.tracking import MlflowClient

    results = tmp_path / "results"
    rc, out = run_capture(base_overrides(corpus, results, "explainer.kernel_width=0.25,1.0"),
                          multirun=True)
    assert rc == 0, out
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    exp = client.get_experiment_by_name("musiclime")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    widths = sorted(float(r.data.params["explainer.kernel_width"]) for r in children)
    assert widths == [0.25, 1.0]
    for r in children:
        assert r.info.status == "FINISHED"
        assert r.data.params["explainer.num_samples"] == "120"
        assert r.data.params["separator.name"] == "oracle"
        assert 0.0 <= r.data.metrics["surrogate_r2"] <= 1.0
        assert r.data.metrics["kernel_weight_min"] < r.data.metrics["kernel_weight_max"]
        assert r.data.metrics["classifier_accuracy"] == pytest.approx(1.0)
        assert "time_predict_total_s" in r.data.metrics
        # quality metrics of the evaluate stage: the white-box evidence is found
        assert r.data.metrics["deletion_ratio"] < 1.0
        assert r.data.metrics["heldout_r2"] > 0.5
        assert r.data.tags["musiclime.dataset_fingerprint"]
        assert r.data.tags["musiclime.code_version"]
        # the fit's own held-out R^2 sits beside the in-sample one; 120 samples for 43
        # features make sound fits, but the white box never moves for the "human" song1 (no
        # tone, no keyword): its surrogate's weights are all 0, and the run says so
        assert r.data.metrics["surrogate_heldout_r2"] > 0.5
        assert r.data.tags["musiclime.fit_warnings"] == "song1: zero_weights"
        assert r.data.metrics["songs_with_fit_warnings"] == 1
        assert r.data.metrics["fit_warning_count"] == pytest.approx(1 / 3)  # mean per song
        paths = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"config", "global", "songs", "metrics", "per_song_metrics.csv"} <= paths
        songs = {a.path for a in client.list_artifacts(r.info.run_id, "songs/song0")}
        assert "songs/song0/explanation.json" in songs
        assert "songs/song0/listen_top.wav" in songs
    # a wider kernel is flatter: its minimum weight is higher
    by_width = {float(r.data.params["explainer.kernel_width"]): r for r in children}
    assert (by_width[1.0].data.metrics["kernel_weight_min"]
            > by_width[0.25].data.metrics["kernel_weight_min"])

    # the results page is generated from these runs, one row per configuration
    from musiclime.report.results_table import collect_runs, write_report

    df, parent = collect_runs(f"sqlite:///{results / 'mlflow.db'}")
    assert parent == parents[0].info.run_id
    assert sorted(df["kernel_width"]) == [0.25, 1.0]
    page = write_report(f"sqlite:///{results / 'mlflow.db'}", tmp_path / "results.md").read_text()
    assert parent in page and "| 0.25 |" in page and "| 1 |" in page
    assert "Kernel flatness" in page

    # the console's table counts the songs with fit warnings of each configuration
    lines = out.splitlines()
    header = next(ln for ln in lines if "fit warnings" in ln and "configuration" in ln)
    column = re.split(r"\s{2,}", header.strip()).index("fit warnings")
    rows = [re.split(r"\s{2,}", ln.strip()) for ln in lines[lines.index(header) + 1:][:2]]
    assert [row[column] for row in rows] == ["1", "1"], (header, rows)


def test_invalid_config_fails_before_any_job(corpus, tmp_path):
    results = tmp_path / "results"
    with pytest.raises(ConfigError, match="kernel_widht"):
        run_workflow(base_overrides(corpus, results, "+explainer.kernel_widht=3"))
    with pytest.raises(ConfigError, match="explainer.modality"):
        run_workflow(base_overrides(corpus, results, "explainer.modality=visual"))
    rc, out = run_capture(base_overrides(corpus, results, "explainer.num_samples=1"))
    assert rc == 2 and "explainer.num_samples=1" in out
    assert not (results / "decode").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(store: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:port; returns once it listens."""
    store.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--default-artifact-root", str(store / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240  # a busy 2-core machine can take minutes
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited with code {server.returncode}")
            if time.time() > deadline:
                server.kill()
                pytest.fail("mlflow server did not listen within 240 s")
            time.sleep(0.5)


def test_tracking_server_down_then_up(corpus, tmp_path):
    """The server is only a recorder: while it is down everything is computed and tracking is
    pending; once it is up, a rerun records each point once, and a further rerun adds nothing."""
    from mlflow.tracking import MlflowClient

    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    results = tmp_path / "results"
    overrides = base_overrides(corpus, results, "explainer.kernel_width=0.25,1")
    t0 = time.time()
    rc, out = run_capture(overrides, multirun=True, env={"MLFLOW_TRACKING_URI": uri})
    down_s = time.time() - t0
    assert rc == 0, out
    assert "tracking pending" in out and "unreachable" in out, out
    assert len(list(results.glob("fit/**/explanation.json"))) == 6
    assert len(list(results.glob("aggregate/**/summary.json"))) == 2
    assert not list(results.glob("track/*.json")) and not (results / "mlflow.db").exists()

    server = start_mlflow_server(tmp_path / "server", port)
    try:
        rc, out = run_capture(overrides, multirun=True, env={"MLFLOW_TRACKING_URI": uri})
        assert rc == 0, out
        rules = executed_rules(out)
        assert set(rules) <= {"track_mlflow", "all"} and rules.count("track_mlflow") == 2, rules
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("musiclime")

        def children():
            return [r for r in client.search_runs([exp.experiment_id])
                    if "mlflow.parentRunId" in r.data.tags]

        first = children()
        assert len(first) == 2 and {r.info.status for r in first} == {"FINISHED"}
        child = first[0]
        assert child.data.params["model.name"] == "whitebox"
        assert "surrogate_r2" in child.data.metrics
        arts = {a.path for a in client.list_artifacts(child.info.run_id, "global")}
        assert "global/global_stem_segment.csv" in arts

        rc, out = run_capture(overrides, multirun=True, env={"MLFLOW_TRACKING_URI": uri})
        assert rc == 0 and "track_mlflow" not in executed_rules(out), out
        assert sorted(r.info.run_id for r in children()) == sorted(r.info.run_id for r in first)
        parents = [r for r in client.search_runs([exp.experiment_id])
                   if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # one per sweep
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"run with the server down: {down_s:.1f}s")


REPO = Path(__file__).resolve().parents[1]


def test_plain_snakemake_plans_the_config_itself(corpus, tmp_path):
    """`snakemake --cores N` without `musiclime run`: the Snakefile composes the config, and
    its `workdir:` puts every output under results_root (relative to it, so it can move)."""
    results = tmp_path / "results"
    overrides = base_overrides(corpus, results, "tracking.enabled=false", "dataset.limit=1")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--cores", "2",
         "--config", "overrides=[" + ",".join(f'"{o}"' for o in overrides) + "]"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exps = list(results.glob("fit/**/song0/explanation.json"))
    assert len(exps) == 1
    configs = list(results.glob("points/*/config.yaml"))
    assert len(configs) == 1 and "kernel_width: 0.25" in configs[0].read_text()


@pytest.mark.parametrize("sweep", [(), ("explainer.kernel_width=0.25,1",)])
def test_snakemake_lint_is_clean(corpus, tmp_path, sweep):
    """Lint the single-point rules and, for a sweep, the generated batch rules."""
    overrides = base_overrides(corpus, tmp_path / "results", "tracking.enabled=false", *sweep)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--lint",
         "--config", "overrides=[" + ",".join(f'"{o}"' for o in overrides) + "]",
         f"multirun={int(bool(sweep))}"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_a_broken_song_fails_alone_and_names_its_file(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_songs=2)
    bad = tmp_path / "corpus" / "song1.flac"
    bad.write_bytes(b"this is not audio")
    results = tmp_path / "results"
    rc, out = run_capture(base_overrides(manifest, results, "tracking.enabled=false",
                                         "metrics.enabled=false"))
    assert rc != 0
    # the good song went all the way through; nothing it computed was lost
    assert len(list(results.glob("fit/**/song0/explanation.json"))) == 1
    logs = list(results.glob("logs/decode/**/song1.log"))
    assert logs and str(bad) in logs[0].read_text()
    assert "cannot decode audio file" in logs[0].read_text()


def test_plan_batches_points_that_share_a_prediction_run(corpus, tmp_path):
    from musiclime.workflow.plan import plan_from_overrides

    overrides = base_overrides(corpus, tmp_path / "results", "tracking.enabled=false",
                               "explainer.kernel_width=0.25,1", "explainer.num_samples=60,120",
                               "explainer.modality=both,audio")
    plan, points = plan_from_overrides(overrides, multirun=True)
    assert len(points) == 8 and len(plan.points) == 8
    assert len(plan.predict) == 2  # one prediction run per modality
    fit_jobs = list(plan.fit.values())
    assert len(fit_jobs) == 2 and all(len(job.members) == 4 for job in fit_jobs)
    for job in fit_jobs:  # members share the job's prediction run
        assert {m.key.rpartition("/")[0] for m in job.members} == {job.predict}
    assert sorted(m.key for job in fit_jobs for m in job.members) == sorted(
        p.fit for p in plan.points.values())
    eval_jobs = list(plan.evaluate.values())
    assert sorted(m.key for job in eval_jobs for m in job.members) == sorted(
        p.evaluate for p in plan.points.values())
    # each point knows the jobs that make its files
    for p in plan.points.values():
        assert p.fit in {m.key for m in plan.fit[p.fit_batch].members}
        assert p.evaluate in {m.key for m in plan.evaluate[p.evaluate_batch].members}

    # different metric settings are evaluated in different jobs
    plan, _ = plan_from_overrides(overrides + ["metrics.heldout_masks=50,100"], multirun=True)
    assert len(plan.evaluate) == 4 and len(plan.fit) == 2

    # without batching, every point is a job of its own
    plan, _ = plan_from_overrides(overrides + ["workflow.batch=false"], multirun=True)
    assert len(plan.fit) == 8 and len(plan.evaluate) == 8
    assert all(len(job.members) == 1 for job in plan.fit.values())

    # the plan survives its JSON round trip (the Snakemake config file) unchanged
    import json

    from musiclime.workflow.specs import Plan

    data = json.loads(json.dumps(plan.to_dict()))
    assert Plan.from_dict(data).to_dict() == data
