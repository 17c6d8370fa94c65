"""Rule fit_lime -> musiclime.workflow.stages.run_fit (that module lists its library calls)."""
from musiclime.io.dataset import SongRecord
from musiclime.workflow.specs import FitSpec
from musiclime.workflow.stages import job, run_fit

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    run_fit(FitSpec.from_dict(smk.params.spec), SongRecord.from_dict(smk.params.song),
            smk.input.segment, smk.input.table, smk.input.masks, smk.input.predict,
            smk.output.record)
