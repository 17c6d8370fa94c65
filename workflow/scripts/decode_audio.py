"""Rule decode_audio -> musiclime.workflow.stages.decode_audio (that module lists its library calls)."""
from musiclime.io.dataset import SongRecord
from musiclime.workflow.specs import DecodeSpec
from musiclime.workflow.stages import decode_audio, job

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    decode_audio(DecodeSpec.from_dict(smk.params.spec), SongRecord.from_dict(smk.params.song),
                 smk.output.npz)
