"""Stage paths hold no comma, so every Snakemake executor can hand them to a job.

A remote job (SLURM, Kubernetes, ...) gets its wildcards as ``--target-jobs
rule:key=VALUE,song=...``, and Snakemake splits that on every comma (snakemake#2366). These
tests plan a real sweep (the planner only, no jobs) and push every wildcard value of every
planned job through Snakemake's own encoder and parser."""

from __future__ import annotations

import shlex

import pytest
from test_workflow import base_overrides, make_corpus

from musiclime.io import layout
from musiclime.workflow.plan import plan_from_overrides

# axes whose values put separators, signs and lists into paths: 1e6 is written 1e+06, the
# boundaries list becomes 0-1.5-3s, labels a list; two models; metrics on (evaluate keys)
SWEEP = ("explainer.kernel_width=0.1,1e6", "explainer.num_samples=60,120",
         "explainer.segment_boundaries=null,[0,1.5,3]", "explainer.labels=null,[0,1]",
         "model.start=1.2,1.0")


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    manifest = make_corpus(root / "corpus", n_songs=2, seconds=3.0)
    plan, _ = plan_from_overrides(base_overrides(manifest, root / "results", *SWEEP,
                                                 "explainer.residual=feature",
                                                 "explainer.lyrics_unit=word"),
                                  multirun=True)
    return plan


def wildcard_sets(plan) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job the Snakefile would run for ``plan``."""
    jobs = []
    for rule, table in (("decode_audio", plan.decode), ("separate_stems", plan.separate),
                        ("segment_features", plan.segment), ("generate_masks", plan.masks),
                        ("predict_masks", plan.predict)):
        for key, spec in table.items():
            for song in plan.songs[spec.dataset]:
                jobs.append((rule, {"key": key, "song": song}))
    for rule, table in (("fit_lime", plan.fit), ("evaluate_explanations", plan.evaluate)):
        for batch, spec in table.items():
            for song in plan.songs[spec.dataset]:
                jobs.append((rule, {"key": spec.predict, "batch": batch, "song": song}))
    for key in plan.aggregate:
        jobs.append(("aggregate_global", {"key": key}))
    for point in plan.points:
        jobs.append(("freeze_config", {"point": point}))
        jobs.append(("track_mlflow", {"point": point}))
    return jobs


def test_no_planned_stage_path_holds_a_comma(plan):
    assert len(plan.points) == 2 ** len(SWEEP)  # the sweep was planned in full
    paths = []
    for _rule, wildcards in wildcard_sets(plan):
        paths += wildcards.values()
    for point in plan.points.values():
        paths += [point.fit, point.predict, point.evaluate or ""]
        paths += [layout.explanation(point.fit, song) for song in point.songs]
    for fit in plan.fit.values():
        paths += [m.key for m in fit.members]
    for evaluate in plan.evaluate.values():
        paths += [m.key for m in evaluate.members] + [m.fit for m in evaluate.members]
    assert any("kw~1e+06" in p for p in paths)  # a value may hold the separator ...
    assert any("seg~0-1.5-3s+res~" in p for p in paths)  # ... lists become dashes
    commas = [p for p in paths if "," in p]
    assert not commas, commas[:3]


def test_every_job_survives_snakemakes_target_jobs_round_trip(plan):
    """Snakemake's real encoder (the executor side) and parser (the job side), unpatched."""
    from snakemake.target_jobs import parse_target_jobs_cli_args
    from snakemake_interface_executor_plugins.utils import (
        TargetSpec,
        encode_target_jobs_cli_args,
        format_cli_arg,
    )

    specs = [TargetSpec(rule, wildcards) for rule, wildcards in wildcard_sets(plan)]
    assert len(specs) > 100
    argv = shlex.split(format_cli_arg("--target-jobs", encode_target_jobs_cli_args(specs)))
    assert argv[0] == "--target-jobs"
    assert parse_target_jobs_cli_args(argv[1:]) == specs


def test_describe_reads_values_that_hold_the_separator():
    key = layout.fit_key(
        layout.predict_key(
            layout.masks_key(layout.segment_key("data~x-1/sep~oracle/sr~16000", 16000, "10",
                                                "keep", "line"), "both", 0, True, 200),
            "my+model-abc", 0, True, False),
        layout.part(n=200, kw=1e6, ds=1.0, fs="none", lab=["a", "b"]))
    assert "," not in key and "kw~1e+06+ds~1" in key
    d = layout.describe(layout.explanation(key, "song+1"))
    assert d["song"] == "song+1"
    assert d["params"] == {"data": "x-1", "sep": "oracle", "separate.sr": "16000",
                           "segment.sr": "16000", "seg": "10", "res": "keep", "unit": "line",
                           "mod": "both", "seed": "0", "ex": "1", "masks.n": "200",
                           "model": "my+model-abc", "bs": "0", "dd": "1", "fit.n": "200",
                           "kw": "1e+06", "ds": "1", "fs": "none", "lab": "a-b"}
