"""Acceptance of "Comparing runs": a real kernel-width sweep, read back from its MLflow store
and looked at in the real MLflow UI by a real headless Chromium.

One `musiclime run -m explainer.kernel_width=0.1,1` on 2 songs of 3 s (the white-box
classifier, the oracle separator), tracked to the embedded store ``<results>/mlflow.db``. Then:

- the console is short (under 40 lines) and ends with the summary table, one row per point;
- the store, through ``MlflowClient``: short distinct child run names that say the swept value,
  an experiment with a description and the model-training kind, a parent with roll-up metrics,
  one step per metric, no bookkeeping dot-files among the artifacts, source tags, run times
  that span the computation (``end - start == compute_s``), the swept and dataset params;
- the UI: ``mlflow ui`` started with the command `musiclime run` printed, the experiment's runs
  table (the parent expanded to its two children, with metric columns) and the compare view of
  the two children, then one song's explanation page; each is screenshotted.

The browser part needs Debian's ``chromium`` and ``chromium-driver`` (``make system-deps``); it
is skipped, saying so, only where they are not installed. Set ``MUSICLIME_SCREENSHOTS`` to a
folder to keep the screenshots (``runs_table.png``, ``compare.png``, ``explanation_page.png``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import CHROMEDRIVER, CHROMIUM, needs_chromium
from test_workflow import _free_port, base_overrides, executed_rules, make_corpus

pytestmark = pytest.mark.slow

EXPERIMENT = "musiclime"
#: the child run names of the sweep: the swept value, num_samples, modality
NAMES = {"0.1": "kw=0.1 n=120 both", "1": "kw=1 n=120 both"}
SERVER_START_S = 300  # a busy 2-core machine can take minutes to import mlflow's server
PAGE_WAIT_S = 120


# --- the sweep ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Run the sweep once; return (results root, manifest, return code, console output)."""
    base = tmp_path_factory.mktemp("ui_sweep")
    manifest = make_corpus(base / "corpus", n_songs=2)
    results = base / "results"
    cmd = [sys.executable, "-m", "musiclime.cli", "run", "--cores", "2", "-m",
           *base_overrides(manifest, results, "explainer.kernel_width=0.1,1")]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # embedded store
    t0 = time.time()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900, env=env)
    print(f"\nsweep: {time.time() - t0:.0f}s")
    return results, manifest, proc.returncode, proc.stdout


@pytest.fixture(scope="module")
def store(sweep):
    """(client, experiment, parent run, {swept value: child run}) of the sweep's store."""
    from mlflow.tracking import MlflowClient

    results, _, rc, console = sweep
    assert rc == 0, console
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, [e.name for e in client.search_experiments()]
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2, [r.info.run_name for r in runs]
    parent = parents[0]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    by_width = {}
    for r in children:
        width = float(r.data.params["explainer.kernel_width"])
        by_width["0.1" if width == 0.1 else "1"] = r
    assert set(by_width) == set(NAMES), [r.data.params for r in children]
    return client, exp, parent, by_width


# --- the console ----------------------------------------------------------------------------
def test_console_is_short_and_ends_with_the_summary_table(sweep):
    results, _, rc, console = sweep
    assert rc == 0, console
    lines = console.rstrip("\n").splitlines()
    print("--- console ---\n" + console + "--- end of console ---")
    assert len(lines) < 40, f"{len(lines)} lines:\n{console}"
    assert not executed_rules(console), "Snakemake's job log belongs in the snakemake log"
    assert re.search(r"snakemake log: \S+", console)
    header = [i for i, ln in enumerate(lines) if ln.startswith("configuration")]
    assert len(header) == 1, console
    h = header[0]
    assert h >= len(lines) - 8, f"the summary table is not near the end:\n{console}"
    cols = lines[h].split()
    assert cols[0] == "configuration" and "failed" in cols, lines[h]
    rows = lines[h + 1:h + 3]
    assert sorted(r.split("  ")[0].strip() for r in rows) == sorted(NAMES.values()), rows
    # the command to look at the runs, with the embedded store's two locations
    assert (f"mlflow ui --backend-store-uri sqlite:///{results.resolve() / 'mlflow.db'} "
            f"--default-artifact-root {results.resolve() / 'mlartifacts'}") in console


# --- the store ------------------------------------------------------------------------------
def test_child_run_names_are_short_distinct_and_name_the_swept_value(store):
    _, _, _, children = store
    names = {value: run.info.run_name for value, run in children.items()}
    assert len(set(names.values())) == 2, names
    for value, name in names.items():
        assert len(name) <= 40, name
        assert f"kw={value}" in name.split(), name
        assert name == NAMES[value], name
        assert children[value].data.tags["mlflow.runName"] == name


def test_experiment_has_a_description_and_is_a_model_training_experiment(store):
    _, exp, _, _ = store
    note = exp.tags.get("mlflow.note.content", "")
    assert len(note) > 40 and "kernel width" in note, note
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development", exp.tags


def test_parent_run_rolls_up_the_children(store):
    _, _, parent, children = store
    # named by what the sweep varies, not by its plumbing overrides
    assert parent.info.run_name == "sweep kw=0.1,1", parent.info.run_name
    m = parent.data.metrics
    assert m.get("configurations") == 2.0, m
    r2 = [c.data.metrics["heldout_r2"] for c in children.values()]
    assert m["best/heldout_r2"] == pytest.approx(max(r2)), m
    assert m["mean/heldout_r2"] == pytest.approx(sum(r2) / 2), m
    assert parent.info.status == "FINISHED"
    assert parent.data.params.get("sweep/explainer.kernel_width") == "0.1,1.0", \
        parent.data.params


def _all_runs(store):
    _, _, parent, children = store
    return [parent, *children.values()]


def test_every_metric_has_one_step(store):
    client = store[0]
    several = {}
    for run in _all_runs(store):
        assert run.data.metrics, run.info.run_name
        for key in run.data.metrics:
            history = client.get_metric_history(run.info.run_id, key)
            if len(history) != 1:
                several[f"{run.info.run_name}: {key}"] = [(h.step, h.value) for h in history]
    assert not several, several


def _artifact_paths(client, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for info in client.list_artifacts(run_id, path):
        out.extend(_artifact_paths(client, run_id, info.path) if info.is_dir else [info.path])
    return out


def test_no_bookkeeping_files_among_the_artifacts(store):
    client, _, _, children = store
    dotted = {}
    for run in _all_runs(store):
        paths = _artifact_paths(client, run.info.run_id)
        bad = [p for p in paths if any(part.startswith(".") for part in p.split("/"))]
        if bad:
            dotted[run.info.run_name] = bad
    assert not dotted, dotted
    # and the children have their files (the walk above saw them)
    for run in children.values():
        paths = set(_artifact_paths(client, run.info.run_id))
        assert {"songs/song0/explanation.json", "songs/song0/explanation.html",
                "per_song_metrics.csv", "config/config.yaml"} <= paths, sorted(paths)


def test_runs_have_a_source_and_times_that_span_the_computation(store):
    missing = [run.info.run_name for run in _all_runs(store)
               if not run.data.tags.get("mlflow.source.name")]
    for run in _all_runs(store):
        assert run.info.start_time and run.info.end_time, run.info
        assert run.info.start_time < run.info.end_time, run.info
    _, _, _, children = store
    for run in children.values():
        span_s = (run.info.end_time - run.info.start_time) / 1000
        assert span_s == pytest.approx(run.data.metrics["compute_s"], abs=1.0), \
            (run.info.run_name, span_s, run.data.metrics["compute_s"])
    assert not missing, f"runs without an mlflow.source.name tag: {missing}"


def test_children_record_the_swept_value_and_the_dataset(store, sweep):
    _, manifest, _, _ = sweep
    _, _, _, children = store
    for value, run in children.items():
        params = run.data.params
        assert float(params["explainer.kernel_width"]) == float(value), params
        assert Path(params["dataset.manifest"]).is_absolute(), params["dataset.manifest"]
        assert Path(params["dataset.manifest"]) == manifest.resolve()


# --- in the MLflow UI, in a real headless Chromium ------------------------------------------
def start_ui(console: str, port: int, log: Path) -> subprocess.Popen:
    """Start the `mlflow ui ...` command `musiclime run` printed, on 127.0.0.1:port (its own
    process group, so that stopping it stops its workers); return once /health answers."""
    found = re.search(r"MLflow: (mlflow ui .*?)\s+\(parent run", console)
    assert found, console
    args = shlex.split(found.group(1))
    cmd = [sys.executable, "-m", "mlflow", *args[1:], "--host", "127.0.0.1", "--port",
           str(port), "--workers", "1"]
    fh = open(log, "w")
    server = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    fh.close()
    deadline = time.time() + SERVER_START_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        if server.poll() is not None:
            pytest.fail(f"mlflow ui exited with code {server.returncode}:\n{log.read_text()}")
        if time.time() > deadline:
            stop(server)
            pytest.fail(f"mlflow ui did not answer within {SERVER_START_S} s:\n"
                        f"{log.read_text()}")
        time.sleep(0.5)


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # software WebGL for the compare view's chart (Chromium no longer falls back to it alone)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1600,1000", "--enable-unsafe-swiftshader"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _wait_for_text(driver, *needles: str, what: str) -> str:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, PAGE_WAIT_S, poll_frequency=0.5).until(
            lambda d: all(n in _text(d) for n in needles))
    except TimeoutException:
        text = _text(driver)
        pytest.fail(f"{what} ({driver.current_url}) does not show "
                    f"{[n for n in needles if n not in text]} after {PAGE_WAIT_S} s:\n{text}")
    return _text(driver)


def _wait_for_chart(driver) -> None:
    """Wait until the compare view's parallel-coordinates plot (Plotly, WebGL) has drawn its
    axes: the view first shows grey placeholders."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def drawn(d):
        axes = d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .parcoords .axis-title")
        return axes and "explainer.kernel_width" in [a.text for a in axes]

    try:
        WebDriverWait(driver, PAGE_WAIT_S, poll_frequency=0.5).until(drawn)
    except TimeoutException:
        pytest.fail(f"the compare view's chart did not draw within {PAGE_WAIT_S} s")
    time.sleep(1)  # its lines are drawn in the next frames


def _print_console_log(driver, what: str) -> list[dict]:
    entries = driver.get_log("browser")
    for e in entries:
        print(f"  browser console on {what}: {e['level']} {e['message'][:300]}")
    return entries


def _screenshot(driver, folder: Path, name: str) -> Path:
    shot = folder / name
    assert driver.save_screenshot(str(shot)), shot
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", shot
    assert len(data) > 10_000, (shot, len(data))
    print(f"screenshot: {shot}")
    if os.environ.get("MUSICLIME_SCREENSHOTS"):
        keep = Path(os.environ["MUSICLIME_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep / name)
        print(f"kept a copy: {keep / name}")
    return shot


def _runs_table_state(parent_id: str) -> dict:
    """The runs page's saved UI state (MLflow 3.x keeps it in localStorage): the columns a
    user picks with "Columns" (the parent's roll-up, the children's metric and the swept
    param) and the parent row expanded."""
    metrics = ("best/heldout_r2", "mean/heldout_r2", "heldout_r2", "compute_s")
    return {"searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False,
            "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [],
            "modelVersionFilter": "All Runs",
            "selectedColumns": ["params.`explainer.kernel_width`",
                                *(f"metrics.`{m}`" for m in metrics), "attributes.`Source`",
                                "attributes.`Dataset`"],
            "columnOrder": [], "columnWidths": {}, "runsExpanded": {parent_id: True},
            "runsPinned": [], "runsHidden": [], "runsVisibilityMap": {},
            "runsHiddenMode": "FIRST_10_RUNS", "viewMaximized": False, "runListHidden": False,
            "isAccordionReordered": False, "useGroupedValuesInCharts": True,
            "hideEmptyCharts": True, "groupBy": None, "groupsExpanded": {},
            "autoRefreshEnabled": True,
            "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0,
                                      "selectedXAxisMetricKey": ""}}


def _close_assistant(driver) -> None:
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(
            By.CSS_SELECTOR, "button[data-component-id='mlflow.assistant.chat_panel.close']"):
        if button.is_displayed():
            button.click()


def _widen_run_name_column(driver, by: int = 140) -> None:
    """Drag the Run Name column's edge, as a user would, so the parent's name shows more."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    try:
        edge = driver.find_element(
            By.CSS_SELECTOR, "[role=columnheader][col-id='attributes.`Run Name`'] "
                             ".ag-header-cell-resize")
        ActionChains(driver).click_and_hold(edge).move_by_offset(by, 0).release().perform()
    except WebDriverException as exc:  # cosmetic: the names are asserted on the text
        print(f"  could not widen the Run Name column: {exc.msg}")


@needs_chromium
def test_runs_table_compare_view_and_explanation_page_in_chromium(sweep, store, browser,
                                                                  tmp_path_factory):
    from selenium.webdriver.common.by import By

    results, _, _, console = sweep
    _, exp, parent, children = store
    shots = tmp_path_factory.mktemp("screenshots")
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    server = start_ui(console, port, shots / "mlflow_ui.log")
    print(f"mlflow ui answered after {time.time() - t0:.0f}s on {base}")
    try:
        # the experiment's plain address: MLflow 3 picks its GenAI or model-training view
        browser.get(f"{base}#/experiments/{exp.experiment_id}")
        _wait_for_text(browser, EXPERIMENT, what="the experiment page")
        print(f"  #/experiments/{exp.experiment_id} opened {browser.current_url}")
        _print_console_log(browser, "the experiment page")

        # a. the runs table: the parent expanded to its children, with metric columns
        browser.get(f"{base}health")  # same origin, no app: set the UI state before it loads
        browser.execute_script(
            "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
            "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
            "localStorage.setItem(arguments[0], JSON.stringify(arguments[1]));",
            f'MLflowLocalStorage-1.1-ExperimentPage-["{exp.experiment_id}"]-ReactComponentState',
            _runs_table_state(parent.info.run_id))
        browser.get(f"{base}#/experiments/{exp.experiment_id}/runs"
                    "?workflowType=machine_learning")
        parent_name = parent.info.run_name
        _wait_for_text(browser, parent_name, what="the runs table")
        if not all(n in _text(browser) for n in NAMES.values()):
            # the children are folded under the parent: click its expander
            row = browser.find_element(
                By.CSS_SELECTOR, f"[role=row][row-id='{parent.info.run_id}'] "
                                 "[col-id='attributes.`Run Name`'] button")
            row.click()
        text = _wait_for_text(browser, *NAMES.values(), "best/heldout_r2", "heldout_r2",
                              "explainer.kernel_width", what="the runs table")
        _close_assistant(browser)
        _widen_run_name_column(browser)
        # the parent's roll-up and each child's own value are in the table
        assert repr(parent.data.metrics["best/heldout_r2"]) in text, text
        for run in children.values():
            assert repr(run.data.metrics["heldout_r2"]) in text, text
        assert "musiclime run" in text  # the Source column
        # the Dataset column: each child's songs, logged through MLflow's dataset tracking
        for run in children.values():
            (inp,) = run.inputs.dataset_inputs
            assert inp.dataset.name in text and inp.dataset.digest in text, text
        time.sleep(1)  # let the grid settle after the resize
        _screenshot(browser, shots, "runs_table.png")
        _print_console_log(browser, "the runs table")

        # b. the compare view of the two children
        ids = [children["0.1"].info.run_id, children["1"].info.run_id]
        query = urllib.parse.urlencode(
            {"runs": json.dumps(ids), "experiments": json.dumps([exp.experiment_id]),
             "workflowType": "machine_learning"}, quote_via=urllib.parse.quote)
        browser.get(f"{base}#/compare-runs?{query}")
        # (its metrics table shows its first rows only: the names are asserted on the params)
        text = _wait_for_text(browser, "Comparing 2 Runs", *NAMES.values(), "Parameters",
                              "explainer.kernel_width", "Metrics", what="the compare view")
        assert ids[0] in text and ids[1] in text
        _close_assistant(browser)
        _wait_for_chart(browser)
        _screenshot(browser, shots, "compare.png")
        _print_console_log(browser, "the compare view")
    finally:
        stop(server)

    # c. one song's explanation page, from the results folder
    pages = sorted(results.glob("fit/**/*+kw~0.1+*/song0/explanation.html")) or \
        sorted(results.glob("fit/**/song0/explanation.html"))
    assert pages, "no fit/**/song0/explanation.html"
    browser.get_log("browser")  # drop the MLflow pages' messages
    browser.get(pages[0].as_uri())
    assert browser.title == "song0: MusicLIME explanation", browser.title
    text = _wait_for_text(browser, "song0", "the robot sings tonight", "Top features",
                          "kernel_width", what="the explanation page")
    assert "kernel width = 0.1" in text, text[:500]
    severe = [e for e in _print_console_log(browser, "the explanation page")
              if e["level"] == "SEVERE"]
    assert severe == [], severe
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1600, min(height + 160, 4000))
    browser.execute_script("window.scrollTo(0, 0)")
    _screenshot(browser, shots, "explanation_page.png")
