"""Rule evaluate_explanations -> musiclime.workflow.stages.evaluate_explanations (that module lists its library calls)."""
from musiclime.workflow.specs import EvaluateSpec, SongSource
from musiclime.workflow.stages import evaluate_explanations, job

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    evaluate_explanations(EvaluateSpec.from_dict(smk.params.spec),
                          SongSource.from_dict(smk.params.song), smk.input.segment,
                          smk.input.fit_record, smk.output.record)
