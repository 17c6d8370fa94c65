# Audio and lyrics: decode, separate (once per song and separator), segment into features.
# Each rule runs workflow/scripts/stage.py -> musiclime.workflow.stages.<rule>.


rule decode_audio:
    input:
        unpack(inputs("decode")),
    output:
        npz=layout.PATTERNS["decode"],
    params:
        spec=spec("decode"),
        song=song("decode"),
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["decode"],
    script:
        "../scripts/stage.py"


rule separate_stems:
    input:
        unpack(inputs("separate")),
    output:
        npz=layout.PATTERNS["separate"],
    params:
        spec=spec("separate"),
        song=song("separate"),
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["separate"],
    script:
        "../scripts/stage.py"


rule segment_features:
    input:
        unpack(inputs("segment")),
    output:
        npz=layout.PATTERNS["segment"],
        table=layout.PATTERNS["features"],
    params:
        spec=spec("segment"),
        song=song("segment"),
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["segment"],
    script:
        "../scripts/stage.py"
