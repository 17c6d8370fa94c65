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
    wildcard_constraints:
        key=SINGLE_FIT_KEYS,
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
    wildcard_constraints:
        key=SINGLE_EVALUATE_KEYS,
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


# Batches (workflow.batch, see src/musiclime/workflow/plan.py): one job per song fits every point
# that shares a prediction run, and one evaluates them, writing the per-point files above.
for _batch in STAGES["fit_batch"]:

    rule:
        name:
            f"fit_batch_{_batch[3:]}"
        input:
            unpack(lambda wildcards, b=_batch: fit_batch_inputs(b, wildcards)),
        output:
            **fit_batch_outputs(_batch),
        params:
            spec=fit_batch_spec(_batch),
            song=batch_song("fit", _batch),
        conda:
            "../envs/musiclime.yaml"
        log:
            f"{RESULTS}/logs/fit_batch/{_batch}/{{song}}.log",
        script:
            "../scripts/stage.py"


for _batch in STAGES["evaluate_batch"]:

    rule:
        name:
            f"evaluate_batch_{_batch[3:]}"
        input:
            unpack(lambda wildcards, b=_batch: evaluate_batch_inputs(b, wildcards)),
        output:
            **evaluate_batch_outputs(_batch),
        params:
            spec=evaluate_batch_spec(_batch),
            song=batch_song("evaluate", _batch),
        resources:
            gpu=PREDICT_GPU,
        conda:
            "../envs/musiclime.yaml"
        log:
            f"{RESULTS}/logs/evaluate_batch/{_batch}/{{song}}.log",
        script:
            "../scripts/stage.py"
