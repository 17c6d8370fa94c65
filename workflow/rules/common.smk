# Helpers for the rules: the plan, spec and input functions, wildcard constraints. No rules here.
# Every path comes from musiclime.workflow.layout; every spec from musiclime.workflow.specs.
from musiclime.io import layout
from musiclime.workflow.plan import plan_from_overrides
from musiclime.workflow.specs import Plan
from musiclime.tracking.store import ensure_experiment, tracking_uri

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


def song_source(dataset, song):
    return PLAN.song(dataset, song).to_dict()


# --- decode / separate / segment ----------------------------------------------------------------
def decode_spec(wildcards):
    return PLAN.decode[wildcards.key].to_dict()


def decode_song(wildcards):
    return song_source(PLAN.decode[wildcards.key].dataset, wildcards.song)


def decode_inputs(wildcards):
    song = PLAN.song(PLAN.decode[wildcards.key].dataset, wildcards.song)
    return {"audio": song.audio, **({"lyrics": song.lyrics} if song.lyrics else {})}


def separate_spec(wildcards):
    return PLAN.separate[wildcards.key].to_dict()


def separate_song(wildcards):
    return song_source(PLAN.separate[wildcards.key].dataset, wildcards.song)


def separate_inputs(wildcards):
    spec = PLAN.separate[wildcards.key]
    return {"decoded": layout.path("decode", key=spec.decode, song=wildcards.song)}


def segment_spec(wildcards):
    return PLAN.segment[wildcards.key].to_dict()


def segment_song(wildcards):
    return song_source(PLAN.segment[wildcards.key].dataset, wildcards.song)


def segment_inputs(wildcards):
    spec = PLAN.segment[wildcards.key]
    return {
        "decoded": layout.path("decode", key=spec.decode, song=wildcards.song),
        "stems": layout.path("separate", key=spec.separate, song=wildcards.song),
    }


# --- masks / predict ----------------------------------------------------------------------------
def masks_spec(wildcards):
    return PLAN.masks[wildcards.key].to_dict()


def masks_song(wildcards):
    return song_source(PLAN.masks[wildcards.key].dataset, wildcards.song)


def masks_inputs(wildcards):
    spec = PLAN.masks[wildcards.key]
    return {"table": layout.path("features", key=spec.segment, song=wildcards.song)}


def predict_spec(wildcards):
    return PLAN.predict[wildcards.key].to_dict()


def predict_song(wildcards):
    return song_source(PLAN.predict[wildcards.key].dataset, wildcards.song)


def predict_inputs(wildcards):
    spec = PLAN.predict[wildcards.key]
    return {
        "segment": layout.path("segment", key=spec.segment, song=wildcards.song),
        "masks": layout.path("masks", key=spec.masks, song=wildcards.song),
    }


# --- fit / evaluate: one job per song and batch -------------------------------------------------
def fit_spec(wildcards):
    return PLAN.fit[wildcards.batch].to_dict()


def fit_song(wildcards):
    return song_source(PLAN.fit[wildcards.batch].dataset, wildcards.song)


def fit_inputs(wildcards):
    spec = PLAN.fit[wildcards.batch]
    return {
        "segment": layout.path("segment", key=spec.segment, song=wildcards.song),
        "table": layout.path("features", key=spec.segment, song=wildcards.song),
        "masks": layout.path("masks", key=spec.masks, song=wildcards.song),
        "predict": layout.path("predict", key=spec.predict, song=wildcards.song),
    }


def evaluate_spec(wildcards):
    return PLAN.evaluate[wildcards.batch].to_dict()


def evaluate_song(wildcards):
    return song_source(PLAN.evaluate[wildcards.batch].dataset, wildcards.song)


def evaluate_inputs(wildcards):
    spec = PLAN.evaluate[wildcards.batch]
    song = PLAN.song(spec.dataset, wildcards.song)
    inputs = {
        "segment": layout.path("segment", key=spec.segment, song=wildcards.song),
        "fit_record": fit_record(spec.fit_batch, wildcards.song),
    }
    if song.evidence:
        inputs["evidence"] = song.evidence
    return inputs


def fit_record(batch, song):
    return layout.path("fit_record", key=PLAN.fit[batch].predict, batch=batch, song=song)


def evaluate_record(batch, song):
    return layout.path("evaluate_record", key=PLAN.evaluate[batch].predict, batch=batch, song=song)


# --- aggregate / points / track -----------------------------------------------------------------
def aggregate_spec(wildcards):
    return PLAN.aggregate[wildcards.key].to_dict()


def aggregate_inputs(wildcards):
    spec = PLAN.aggregate[wildcards.key]
    return [fit_record(spec.fit_batch, song) for song in spec.songs]


def report_labels(kind):
    """Labels of a configuration's report entries: its run name, and what the entry is."""

    def labels(wildcards):
        names = sorted(p.name or p.point_id for p in PLAN.points.values() if p.fit == wildcards.key)
        return {"configuration": ", ".join(names) or wildcards.key, "shows": kind}

    return labels


def point_spec(wildcards):
    return PLAN.points[wildcards.point].to_dict()


def track_inputs(wildcards):
    point = PLAN.points[wildcards.point]
    inputs = {
        "summary": layout.path("summary", key=point.fit),
        "config": layout.path("point_config", point=point.point_id),
    }
    if point.evaluate_batch:
        inputs["metrics"] = [evaluate_record(point.evaluate_batch, s) for s in point.songs]
    return inputs


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
