"""Rule separate_stems -> musiclime.workflow.stages.separate_stems (that module lists its library calls)."""
from musiclime.io.dataset import SongRecord
from musiclime.workflow.specs import SeparateSpec
from musiclime.workflow.stages import job, separate_stems

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    separate_stems(SeparateSpec.from_dict(smk.params.spec), SongRecord.from_dict(smk.params.song),
                   smk.input.decoded, smk.output.npz)
