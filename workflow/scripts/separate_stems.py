"""Rule separate_stems -> musiclime.workflow.stages.separate_stems (that module lists its library calls)."""
from musiclime.workflow.specs import SeparateSpec, SongSource
from musiclime.workflow.stages import job, separate_stems

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    separate_stems(SeparateSpec.from_dict(smk.params.spec), SongSource.from_dict(smk.params.song),
                   smk.input.decoded, smk.output.npz)
