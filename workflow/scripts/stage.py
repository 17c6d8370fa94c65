"""Every rule's script: musiclime.workflow.stages.run_rule calls the stage function of the rule
(that module lists the rule -> function -> library calls)."""
from musiclime.workflow.stages import job, run_rule

with job(snakemake):  # noqa: F821 (Snakemake injects `snakemake`)
    run_rule(snakemake)  # noqa: F821
