"""Rule segment_features -> musiclime.workflow.stages.segment_features (that module lists its library calls)."""
from musiclime.io.dataset import SongRecord
from musiclime.workflow.specs import SegmentSpec
from musiclime.workflow.stages import job, segment_features

with job(snakemake) as smk:  # noqa: F821 (Snakemake injects `snakemake`)
    segment_features(SegmentSpec.from_dict(smk.params.spec),
                     SongRecord.from_dict(smk.params.song), smk.input.decoded, smk.input.stems,
                     smk.output.npz, smk.output.table)
