# Global per-class aggregation, the frozen config of each point, and MLflow tracking.


rule aggregate_global:
    input:
        aggregate_inputs,
    output:
        summary=f"{RESULTS}/aggregate/{{key}}/summary.json",
        plots=report(
            directory(f"{RESULTS}/aggregate/{{key}}/plots"),
            patterns=["{name}.png"],
            caption="../report/global.rst",
            category="Global",
        ),
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/aggregate/{{key}}.log",
    script:
        "../scripts/stage.py"


rule freeze_config:
    output:
        yaml=f"{RESULTS}/points/{{point}}/config.yaml",
    params:
        point=point_spec,
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/points/{{point}}.log",
    script:
        "../scripts/stage.py"


rule track_mlflow:
    input:
        unpack(track_inputs),
    output:
        json=f"{RESULTS}/track/{{point}}.json",
    params:
        spec=track_spec,
    resources:
        mlflow=1,
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{RESULTS}/logs/track/{{point}}.log",
    script:
        "../scripts/stage.py"
