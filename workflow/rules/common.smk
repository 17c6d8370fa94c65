# Helpers for the rules: the plan, the generic spec/song/input look-ups, wildcard constraints.
# No rules here. Every path comes from musiclime.io.layout; every spec from the plan.
from musiclime.io import layout
from musiclime.tracking.store import ensure_experiment, tracking_uri
from musiclime.workflow.plan import plan_from_overrides
from musiclime.workflow.specs import Plan

DEMO_ASSETS = bool(config.get("demo_assets", False))

if DEMO_ASSETS:
    # rebuilding the demo corpus and models (workflow/rules/demo.smk): nothing to plan
    PLAN = Plan.from_dict({"results_root": "results", "tracking": {"enabled": False}})
elif "decode" in config:
    PLAN = Plan.from_dict(config)  # written by `musiclime run`
else:
    # plain `snakemake`: compose the Hydra config here (overrides may come from --config)
    PLAN, _ = plan_from_overrides(
        list(config.get("overrides", [])), multirun=bool(config.get("multirun", False))
    )

GPU = int(PLAN.invocation.gpu)


wildcard_constraints:
    song="[^/]+",
    point="p-[0-9a-f]+",
    batch="[0-9a-f]{12}",


onstart:
    # Create the MLflow store once, before parallel jobs (concurrent creation races).
    if PLAN.tracking.enabled and PLAN.invocation.track and PLAN.points:
        ensure_experiment(
            tracking_uri(PLAN.tracking, PLAN.results_root),
            PLAN.tracking.experiment,
            PLAN.results_root,
        )


#: the wildcard that names a job's spec in its plan table (``key`` unless listed)
JOB_WILDCARD = {"fit": "batch", "evaluate": "batch", "points": "point"}

#: the upstream files each stage reads: input name -> (layout path kind, spec field of its key)
READS = {
    "separate": {"decoded": ("decode", "decode")},
    "segment": {"decoded": ("decode", "decode"), "stems": ("separate", "separate")},
    "masks": {"table": ("features", "segment")},
    "predict": {"segment": ("segment", "segment"), "masks": ("masks", "masks")},
    "fit": {
        "segment": ("segment", "segment"),
        "table": ("features", "segment"),
        "masks": ("masks", "masks"),
        "predict": ("predict", "predict"),
    },
    "evaluate": {"segment": ("segment", "segment")},
}


def job_spec(stage, wildcards):
    """The spec of one job: ``PLAN.<stage>[wildcards.key]`` (``.batch``, ``.point``)."""
    return getattr(PLAN, stage)[getattr(wildcards, JOB_WILDCARD.get(stage, "key"))]


def spec(stage):
    """Params function: the job's spec as a dict."""
    return lambda wildcards: job_spec(stage, wildcards).to_dict()


def song(stage):
    """Params function: the job's song (files, label, ...) as a dict."""
    return lambda wildcards: PLAN.song(job_spec(stage, wildcards).dataset, wildcards.song).to_dict()


def inputs(stage):
    """Input function: the upstream stage files of :data:`READS`, plus the song's own files
    that decode (audio, lyrics) and evaluate (its fit record, evidence) read."""

    def files(wildcards):
        spec_ = job_spec(stage, wildcards)
        found = {
            name: layout.path(kind, key=getattr(spec_, field), song=wildcards.song)
            for name, (kind, field) in READS.get(stage, {}).items()
        }
        src = PLAN.song(spec_.dataset, wildcards.song)
        if stage == "decode":
            found.update(audio=src.audio, **({"lyrics": src.lyrics} if src.lyrics else {}))
        if stage == "evaluate":
            found["fit_record"] = fit_record(spec_.fit_batch, wildcards.song)
            found.update({"evidence": src.evidence} if src.evidence else {})
        return found

    return files


def fit_record(batch, song):
    return layout.path("fit_record", key=PLAN.fit[batch].predict, batch=batch, song=song)


def evaluate_record(batch, song):
    return layout.path("evaluate_record", key=PLAN.evaluate[batch].predict, batch=batch, song=song)


def aggregate_inputs(wildcards):
    spec_ = PLAN.aggregate[wildcards.key]
    return [fit_record(spec_.fit_batch, s) for s in spec_.songs]


def report_labels(kind):
    """Labels of a configuration's report entries: its run name, and what the entry is."""

    def labels(wildcards):
        names = sorted(p.name or p.point_id for p in PLAN.points.values() if p.fit == wildcards.key)
        return {"configuration": ", ".join(names) or wildcards.key, "shows": kind}

    return labels


def track_inputs(wildcards):
    point = PLAN.points[wildcards.point]
    found = {
        "summary": layout.path("summary", key=point.fit),
        "config": layout.path("point_config", point=point.point_id),
    }
    if point.evaluate_batch:
        found["metrics"] = [evaluate_record(point.evaluate_batch, s) for s in point.songs]
    return found


def final_targets():
    """Every song's explanations (and metrics); unless this is `musiclime run`'s song pass,
    each configuration's frozen config, global tables and MLflow run."""
    targets = []
    for point in PLAN.points.values():
        if not point.songs:
            continue  # every song of this configuration failed its input checks
        targets += [fit_record(point.fit_batch, s) for s in point.songs]
        if point.evaluate_batch:
            targets += [evaluate_record(point.evaluate_batch, s) for s in point.songs]
        if PLAN.invocation.phase == "songs":
            continue
        targets.append(layout.path("point_config", point=point.point_id))
        targets.append(layout.path("summary", key=point.fit))
        if PLAN.tracking.enabled and PLAN.invocation.track:
            targets.append(layout.path("track", point=point.point_id))
    return targets
