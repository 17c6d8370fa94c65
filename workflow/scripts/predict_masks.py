"""Rule predict_masks -> musiclime.workflow.stages.predict_masks (that module lists its library calls)."""
from musiclime.io.dataset import SongRecord
from musiclime.workflow.specs import PredictSpec
from musiclime.workflow.stages import job, predict_masks

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    predict_masks(PredictSpec.from_dict(smk.params.spec), SongRecord.from_dict(smk.params.song),
                  smk.input.segment, smk.input.masks, smk.output.npz)
