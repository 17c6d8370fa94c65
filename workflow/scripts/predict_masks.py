"""Rule predict_masks -> musiclime.workflow.stages.run_predict (that module lists its library calls)."""
from musiclime.io.dataset import SongRecord
from musiclime.workflow.specs import PredictSpec
from musiclime.workflow.stages import job, run_predict

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    run_predict(PredictSpec.from_dict(smk.params.spec), SongRecord.from_dict(smk.params.song),
                smk.input.segment, smk.input.masks, smk.output.npz)
