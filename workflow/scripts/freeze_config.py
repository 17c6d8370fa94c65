"""Rule freeze_config -> musiclime.workflow.stages.freeze_config (that module lists its library calls)."""
from musiclime.workflow.specs import PointSpec
from musiclime.workflow.stages import freeze_config, job

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    freeze_config(PointSpec.from_dict(smk.params.point), smk.output.yaml)
