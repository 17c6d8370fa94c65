"""Rule aggregate_global -> musiclime.workflow.stages.aggregate_global (that module lists its library calls)."""
from musiclime.workflow.specs import AggregateSpec
from musiclime.workflow.stages import aggregate_global, job

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    aggregate_global(AggregateSpec.from_dict(smk.params.spec), smk.wildcards.key, list(smk.input),
                     smk.output.summary, smk.output.plots, smk.output.songs)
