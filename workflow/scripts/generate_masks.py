"""Rule generate_masks -> musiclime.workflow.stages.generate_masks (that module lists its library calls)."""
from musiclime.io.dataset import SongRecord
from musiclime.workflow.specs import MasksSpec
from musiclime.workflow.stages import generate_masks, job

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    generate_masks(MasksSpec.from_dict(smk.params.spec), SongRecord.from_dict(smk.params.song),
                   smk.input.table, smk.output.npy)
