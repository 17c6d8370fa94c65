# Helpers for the rules: the plan, input functions and wildcard constraints. No rules here.
import re

from musiclime.workflow.plan import plan_from_overrides
from musiclime.workflow.tracking import ensure_experiment, tracking_uri

DEMO_ASSETS = bool(config.get("demo_assets", False))

if DEMO_ASSETS:
    # rebuilding the demo corpus and models (workflow/rules/demo.smk): nothing to plan
    config.setdefault("results_root", "results")
    config.setdefault("stages", {})
    config.setdefault("points", {})
    config.setdefault("tracking", {"enabled": False})
elif "stages" not in config:
    # plain `snakemake`: compose the Hydra config here (overrides may come from --config)
    _plan, _ = plan_from_overrides(
        list(config.get("overrides", [])), multirun=bool(config.get("multirun", False))
    )
    config.update(_plan)

RESULTS = config["results_root"]
STAGES = config["stages"]
STAGES.setdefault("fit_batch", {})
STAGES.setdefault("evaluate_batch", {})
PREDICT_GPU = int(config.get("gpu", 0))


def _only(keys):
    """A wildcard regex matching exactly these keys (none: matches nothing)."""
    return "|".join(re.escape(k) for k in sorted(keys)) or "(?!)"


# Keys fitted / evaluated by a batch rule (workflow/rules/explain.smk) are not made by the
# per-point rules, so every output has exactly one producing rule.
_BATCHED_FITS = {m for b in STAGES["fit_batch"].values() for m in b["members"]}
_BATCHED_EVALS = {m for b in STAGES["evaluate_batch"].values() for m in b["members"]}
SINGLE_FIT_KEYS = _only(set(STAGES["fit"]) - _BATCHED_FITS)
SINGLE_EVALUATE_KEYS = _only(set(STAGES["evaluate"]) - _BATCHED_EVALS)


wildcard_constraints:
    song="[^/]+",
    point="p-[0-9a-f]+",


onstart:
    # Create the MLflow store once, before parallel jobs (concurrent creation races).
    if config["tracking"].get("enabled", False):
        ensure_experiment(
            tracking_uri(config["tracking"], RESULTS),
            config["tracking"].get("experiment", "musiclime"),
            RESULTS,
        )


def song_entry(dataset, song):
    return config["datasets"][dataset][song]


def stage_path(stage, key, song, name):
    return f"{RESULTS}/{stage}/{key}/{song}{name}"


# --- decode -------------------------------------------------------------------------------------
def decode_spec(wildcards):
    return STAGES["decode"][wildcards.key]


def decode_song(wildcards):
    return song_entry(STAGES["decode"][wildcards.key]["dataset"], wildcards.song)


def decode_inputs(wildcards):
    song = decode_song(wildcards)
    inputs = {"audio": song["audio"]}
    if song["lyrics"]:
        inputs["lyrics"] = song["lyrics"]
    return inputs


# --- separate -----------------------------------------------------------------------------------
def separate_spec(wildcards):
    return STAGES["separate"][wildcards.key]


def separate_song(wildcards):
    return song_entry(STAGES["separate"][wildcards.key]["dataset"], wildcards.song)


def separate_inputs(wildcards):
    spec = STAGES["separate"][wildcards.key]
    return {"decoded": stage_path("decode", spec["decode"], wildcards.song, ".npz")}


# --- segment ------------------------------------------------------------------------------------
def segment_spec(wildcards):
    return STAGES["segment"][wildcards.key]


def segment_inputs(wildcards):
    spec = STAGES["segment"][wildcards.key]
    return {
        "decoded": stage_path("decode", spec["decode"], wildcards.song, ".npz"),
        "separated": stage_path("separate", spec["separate"], wildcards.song, ".npz"),
    }


# --- masks / predict / fit ----------------------------------------------------------------------
def masks_spec(wildcards):
    return STAGES["masks"][wildcards.key]


def masks_inputs(wildcards):
    spec = STAGES["masks"][wildcards.key]
    return {"table": stage_path("segment", spec["segment"], wildcards.song, ".features.json")}


def predict_spec(wildcards):
    return STAGES["predict"][wildcards.key]


def predict_inputs(wildcards):
    spec = STAGES["predict"][wildcards.key]
    return {
        "segment": stage_path("segment", spec["segment"], wildcards.song, ".npz"),
        "table": stage_path("segment", spec["segment"], wildcards.song, ".features.json"),
        "masks": stage_path("masks", spec["masks"], wildcards.song, ".npy"),
    }


def fit_spec(wildcards):
    return STAGES["fit"][wildcards.key]


def fit_song(wildcards):
    return song_entry(STAGES["fit"][wildcards.key]["dataset"], wildcards.song)


def fit_inputs(wildcards):
    spec = STAGES["fit"][wildcards.key]
    return {
        "segment": stage_path("segment", spec["segment"], wildcards.song, ".npz"),
        "table": stage_path("segment", spec["segment"], wildcards.song, ".features.json"),
        "masks": stage_path("masks", spec["masks"], wildcards.song, ".npy"),
        "predict": stage_path("predict", spec["predict"], wildcards.song, ".npz"),
    }


def evaluate_spec(wildcards):
    return STAGES["evaluate"][wildcards.key]


def evaluate_song(wildcards):
    return song_entry(STAGES["evaluate"][wildcards.key]["dataset"], wildcards.song)


def evaluate_inputs(wildcards):
    spec = STAGES["evaluate"][wildcards.key]
    inputs = {
        "explanation": f"{RESULTS}/fit/{spec['fit']}/{wildcards.song}/explanation.json",
        "segment": stage_path("segment", spec["segment"], wildcards.song, ".npz"),
    }
    evidence = evaluate_song(wildcards).get("evidence")
    if evidence:
        inputs["evidence"] = evidence
    return inputs


# --- batches: one job per song for every point that shares a prediction run -----------------
def fit_batch_outputs(batch_id):
    outs = {}
    for i, key in enumerate(STAGES["fit_batch"][batch_id]["members"]):
        base = f"{RESULTS}/fit/{key}/{{song}}"
        outs[f"json_{i}"] = f"{base}/explanation.json"
        outs[f"heatmap_{i}"] = f"{base}/audio_heatmap.png"
        outs[f"lyrics_{i}"] = f"{base}/lyrics.png"
        outs[f"listen_{i}"] = f"{base}/listen_top.wav"
    return outs


def fit_batch_spec(batch_id):
    return [STAGES["fit"][key] for key in STAGES["fit_batch"][batch_id]["members"]]


def fit_batch_inputs(batch_id, wildcards):
    spec = STAGES["fit"][STAGES["fit_batch"][batch_id]["members"][0]]
    return {
        "segment": stage_path("segment", spec["segment"], wildcards.song, ".npz"),
        "table": stage_path("segment", spec["segment"], wildcards.song, ".features.json"),
        "masks": stage_path("masks", spec["masks"], wildcards.song, ".npy"),
        "predict": stage_path("predict", spec["predict"], wildcards.song, ".npz"),
    }


def evaluate_batch_outputs(batch_id):
    return {f"json_{i}": f"{RESULTS}/evaluate/{key}/{{song}}.json"
            for i, key in enumerate(STAGES["evaluate_batch"][batch_id]["members"])}


def evaluate_batch_spec(batch_id):
    return [STAGES["evaluate"][key] for key in STAGES["evaluate_batch"][batch_id]["members"]]


def evaluate_batch_inputs(batch_id, wildcards):
    members = STAGES["evaluate_batch"][batch_id]["members"]
    specs = [STAGES["evaluate"][key] for key in members]
    inputs = {
        f"explanation_{i}": f"{RESULTS}/fit/{spec['fit']}/{wildcards.song}/explanation.json"
        for i, spec in enumerate(specs)
    }
    inputs["segment"] = stage_path("segment", specs[0]["segment"], wildcards.song, ".npz")
    evidence = song_entry(specs[0]["dataset"], wildcards.song).get("evidence")
    if evidence:
        inputs["evidence"] = evidence
    return inputs


def batch_song(stage, batch_id):
    dataset = STAGES[stage][STAGES[f"{stage}_batch"][batch_id]["members"][0]]["dataset"]
    return lambda wildcards: song_entry(dataset, wildcards.song)


# --- aggregate / track --------------------------------------------------------------------------
def aggregate_inputs(wildcards):
    songs = STAGES["aggregate"][wildcards.key]["songs"]
    return [f"{RESULTS}/fit/{wildcards.key}/{song}/explanation.json" for song in songs]


def point_spec(wildcards):
    return config["points"][wildcards.point]


def track_spec(wildcards):
    return {
        "point": wildcards.point,
        "tracking": config["tracking"],
        "fit": STAGES["track"][wildcards.point]["fit"],
        "evaluate": STAGES["track"][wildcards.point].get("evaluate"),
    }


def track_inputs(wildcards):
    track = STAGES["track"][wildcards.point]
    inputs = {
        "summary": f"{RESULTS}/aggregate/{track['fit']}/summary.json",
        "config": f"{RESULTS}/points/{wildcards.point}/config.yaml",
    }
    if track.get("evaluate"):
        inputs["metrics"] = [
            f"{RESULTS}/evaluate/{track['evaluate']}/{song}.json" for song in track["songs"]
        ]
    return inputs


def final_targets():
    targets = []
    for point_id, point in config["points"].items():
        targets.append(f"{RESULTS}/points/{point_id}/config.yaml")
        targets.append(f"{RESULTS}/aggregate/{point['keys']['fit']}/summary.json")
        if point["keys"].get("evaluate"):
            targets += [
                f"{RESULTS}/evaluate/{point['keys']['evaluate']}/{song}.json"
                for song in point["songs"]
            ]
        if config["tracking"].get("enabled", False):
            targets.append(f"{RESULTS}/track/{point_id}.json")
    return targets
