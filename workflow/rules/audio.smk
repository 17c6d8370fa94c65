# Audio and lyrics: decode, separate (once per song and separator), segment into features.


rule decode_audio:
    input:
        unpack(decode_inputs),
    output:
        npz=f"{RESULTS}/decode/{{key}}/{{song}}.npz",
    params:
        spec=decode_spec,
        song=decode_song,
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/decode/{{key}}/{{song}}.log",
    script:
        "../scripts/stage.py"


rule separate_stems:
    input:
        unpack(separate_inputs),
    output:
        npz=f"{RESULTS}/separate/{{key}}/{{song}}.npz",
    params:
        spec=separate_spec,
        song=separate_song,
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/separate/{{key}}/{{song}}.log",
    script:
        "../scripts/stage.py"


rule segment_features:
    input:
        unpack(segment_inputs),
    output:
        npz=f"{RESULTS}/segment/{{key}}/{{song}}.npz",
        table=f"{RESULTS}/segment/{{key}}/{{song}}.features.json",
    params:
        spec=segment_spec,
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/segment/{{key}}/{{song}}.log",
    script:
        "../scripts/stage.py"
