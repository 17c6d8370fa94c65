# Audio and lyrics: decode, separate (once per song and separator), segment into features.
# Each rule runs workflow/scripts/<rule>.py -> musiclime.workflow.stages.<rule>.


rule decode_audio:
    input:
        unpack(decode_inputs),
    output:
        npz=layout.PATTERNS["decode"],
    params:
        spec=decode_spec,
        song=decode_song,
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["decode"],
    script:
        "../scripts/decode_audio.py"


rule separate_stems:
    input:
        unpack(separate_inputs),
    output:
        npz=layout.PATTERNS["separate"],
    params:
        spec=separate_spec,
        song=separate_song,
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["separate"],
    script:
        "../scripts/separate_stems.py"


rule segment_features:
    input:
        unpack(segment_inputs),
    output:
        npz=layout.PATTERNS["segment"],
        table=layout.PATTERNS["features"],
    params:
        spec=segment_spec,
        song=segment_song,
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["segment"],
    script:
        "../scripts/segment_features.py"
