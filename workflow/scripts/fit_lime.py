"""Rule fit_lime -> musiclime.workflow.stages.fit_lime (that module lists its library calls)."""
from musiclime.io.dataset import SongRecord
from musiclime.workflow.specs import FitSpec
from musiclime.workflow.stages import fit_lime, job

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    fit_lime(FitSpec.from_dict(smk.params.spec), SongRecord.from_dict(smk.params.song),
             smk.input.segment, smk.input.table, smk.input.masks, smk.input.predict,
             smk.output.record)
