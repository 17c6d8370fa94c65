# Perturbation masks, batched inference (the costly stage; GPU when present), LIME fit and the
# quality metrics. Each rule runs workflow/scripts/stage.py -> musiclime.workflow.stages.<rule>.
# A fit (evaluate) job serves one song and every configuration fitted on one prediction run
# (workflow.batch; one configuration per job when it is false); its output is a record listing
# the explanation (metrics) files it wrote, at their per-configuration paths.


rule generate_masks:
    input:
        unpack(inputs("masks")),
    output:
        npy=layout.PATTERNS["masks"],
    params:
        spec=spec("masks"),
        song=song("masks"),
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["masks"],
    script:
        "../scripts/stage.py"


rule predict_masks:
    input:
        unpack(inputs("predict")),
    output:
        npz=layout.PATTERNS["predict"],
    params:
        spec=spec("predict"),
        song=song("predict"),
    resources:
        gpu=GPU,
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["predict"],
    script:
        "../scripts/stage.py"


rule fit_lime:
    input:
        unpack(inputs("fit")),
    output:
        record=layout.PATTERNS["fit_record"],
    params:
        spec=spec("fit"),
        song=song("fit"),
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["fit"],
    script:
        "../scripts/stage.py"


rule evaluate_explanations:
    input:
        unpack(inputs("evaluate")),
    output:
        record=layout.PATTERNS["evaluate_record"],
    params:
        spec=spec("evaluate"),
        song=song("evaluate"),
    resources:
        gpu=GPU,
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["evaluate"],
    script:
        "../scripts/stage.py"
