"""Rule track_mlflow -> musiclime.workflow.stages.track_mlflow (that module lists its library calls)."""
from musiclime.workflow.specs import Plan, PointSpec
from musiclime.workflow.stages import job, track_mlflow

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    track_mlflow(PointSpec.from_dict(smk.params.point), Plan.from_dict(smk.config),
                 smk.input.config, smk.output.json)
