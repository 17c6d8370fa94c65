# Perturbation masks, batched inference (the costly stage; GPU when present), LIME fit.


rule generate_masks:
    input:
        unpack(masks_inputs),
    output:
        npy=f"{RESULTS}/masks/{{key}}/{{song}}.npy",
    params:
        spec=masks_spec,
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/masks/{{key}}/{{song}}.log",
    script:
        "../scripts/stage.py"


rule predict_masks:
    input:
        unpack(predict_inputs),
    output:
        npz=f"{RESULTS}/predict/{{key}}/{{song}}.npz",
    params:
        spec=predict_spec,
    resources:
        gpu=PREDICT_GPU,
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/predict/{{key}}/{{song}}.log",
    script:
        "../scripts/stage.py"


rule fit_lime:
    input:
        unpack(fit_inputs),
    output:
        json=f"{RESULTS}/fit/{{key}}/{{song}}/explanation.json",
        heatmap=report(
            f"{RESULTS}/fit/{{key}}/{{song}}/audio_heatmap.png",
            caption="../report/heatmap.rst",
            category="Songs",
            subcategory="{song}",
        ),
        lyrics=report(
            f"{RESULTS}/fit/{{key}}/{{song}}/lyrics.png",
            caption="../report/lyrics.rst",
            category="Songs",
            subcategory="{song}",
        ),
        listen=f"{RESULTS}/fit/{{key}}/{{song}}/listen_top.wav",
    params:
        spec=fit_spec,
        song=fit_song,
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/fit/{{key}}/{{song}}.log",
    script:
        "../scripts/stage.py"


rule evaluate_explanation:
    input:
        unpack(evaluate_inputs),
    output:
        json=f"{RESULTS}/evaluate/{{key}}/{{song}}.json",
    params:
        spec=evaluate_spec,
        song=evaluate_song,
    resources:
        gpu=PREDICT_GPU,
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/evaluate/{{key}}/{{song}}.log",
    script:
        "../scripts/stage.py"
