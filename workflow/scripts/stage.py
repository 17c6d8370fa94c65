# Thin glue: every rule runs this script, which hands Snakemake's job to musiclime.
from musiclime.workflow.stages import run_snakemake_job

run_snakemake_job(snakemake)  # noqa: F821 (injected by Snakemake)
