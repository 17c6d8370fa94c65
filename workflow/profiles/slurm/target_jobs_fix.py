# sitecustomize.py of SLURM jobs (see `precommand` in config.yaml): parse the quoted,
# comma-holding wildcard values of `--target-jobs` (snakemake/snakemake#2366).
import sys

if "--target-jobs" in sys.argv:
    import re

    import snakemake.target_jobs
    from snakemake_interface_executor_plugins.utils import TargetSpec

    def parse_target_jobs_cli_args(args):
        """`rule:key="a,b",song=x` -> TargetSpec("rule", {"key": "a,b", "song": "x"})"""
        if args is None:
            return None
        specs = []
        for entry in args:
            rule, _, wildcards = entry.partition(":")
            pairs = re.findall(r'(\w+)=("[^"]*"|[^,]*)(?:,|$)', wildcards)
            specs.append(TargetSpec(rule, {k: v.strip("'\"") for k, v in pairs}))
        return specs

    snakemake.target_jobs.parse_target_jobs_cli_args = parse_target_jobs_cli_args
