# musiclime workflow: decode -> separate -> segment -> masks -> predict -> fit -> evaluate
#                     -> aggregate -> track
#
#   musiclime run [overrides]              # compose with Hydra, plan, run this workflow
#   musiclime run -m explainer.kernel_width=0.1,0.25,1 explainer.num_samples=500,1000
#   snakemake --cores 2                    # the default configuration, planned here
#   snakemake --cores 2 --config demo_assets=1 -- demo_assets   # rebuild the demo corpus+models
#
# Every rule runs workflow/scripts/stage.py -> musiclime.workflow.stages (docs/workflow.md).
# Outputs live under <results_root>/<stage>/<name~value parts>/ (`musiclime where PATH`).
from snakemake.utils import min_version

min_version("8.0")


include: "workflow/rules/common.smk"


if not DEMO_ASSETS:

    workdir: PLAN.results_root


report: "workflow/report/workflow.rst"


# Light rules run on the submit host under a cluster executor (no queue round trip); tracking
# also needs to reach the MLflow server from there. No effect on a local run.
localrules:
    all,
    freeze_config,
    track_mlflow,


rule all:
    default_target: True
    input:
        final_targets(),


include: "workflow/rules/audio.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/global.smk"


if DEMO_ASSETS:

    include: "workflow/rules/demo.smk"
