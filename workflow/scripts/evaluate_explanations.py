"""Rule evaluate_explanations -> musiclime.workflow.stages.evaluate_explanations (that module lists its library calls)."""
from musiclime.io.dataset import SongRecord
from musiclime.workflow.specs import EvaluateSpec
from musiclime.workflow.stages import evaluate_explanations, job

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    evaluate_explanations(EvaluateSpec.from_dict(smk.params.spec),
                          SongRecord.from_dict(smk.params.song), smk.input.segment,
                          smk.input.fit_record, smk.output.record)
