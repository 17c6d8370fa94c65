# Global per-class aggregation, the frozen config of each point, and MLflow tracking.
# Each rule runs workflow/scripts/stage.py -> musiclime.workflow.stages.<rule>.


rule aggregate_global:
    input:
        aggregate_inputs,
    output:
        summary=layout.PATTERNS["summary"],
        plots=report(
            directory(layout.PATTERNS["plots"]),
            patterns=["{name}.png"],
            caption="../report/global.rst",
            category="Global importances",
            labels=report_labels("global importances"),
        ),
        songs=report(
            layout.PATTERNS["songs_table"],
            caption="../report/songs.rst",
            category="Songs",
            labels=report_labels("per-song results"),
        ),
    params:
        spec=spec("aggregate"),
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["aggregate"],
    script:
        "../scripts/stage.py"


rule freeze_config:
    output:
        yaml=layout.PATTERNS["point_config"],
    params:
        point=spec("points"),
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["point_config"],
    script:
        "../scripts/stage.py"


rule track_mlflow:
    input:
        unpack(track_inputs),
    output:
        json=layout.PATTERNS["track"],
    params:
        point=spec("points"),
    resources:
        mlflow=1,
    conda:
        "../envs/musiclime.yaml"
    log:
        layout.LOG_PATTERNS["track"],
    script:
        "../scripts/stage.py"
