"""``musiclime run``: compose with Hydra, plan, open the MLflow parent run, run Snakemake."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

from ..config import repo_root
from ..fileio import write_json
from . import layout
from .plan import plan_from_overrides
from .specs import Invocation, Plan, TrackingSettings
from .tracking import (
    code_version,
    end_run,
    ensure_experiment,
    start_parent_run,
    tracking_uri,
    ui_command,
)

log = logging.getLogger(__name__)


def snakemake_command(plan_path: Path, results_root: Path, cores: int, dry_run: bool = False,
                      extra: list[str] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo_root() / "Snakefile"),
           "--directory", str(results_root), "--configfile", str(plan_path),
           "--cores", str(cores), "--resources", "mlflow=1", "--keep-going",
           "--rerun-incomplete"]
    if dry_run:
        cmd.append("--dry-run")
    return cmd + list(extra or [])


def write_plan(plan: Plan, prefix: str = "plan") -> Path:
    data = plan.to_dict()
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return write_json(Path(plan.results_root) / "plans" / f"{prefix}-{digest[:12]}.json", data)


def prepare(overrides: list[str], multirun: bool = False, dry_run: bool = False
            ) -> tuple[Plan, Path]:
    """Compose and plan every point; create the MLflow store and parent run; write the plan."""
    import torch

    plan, points = plan_from_overrides(list(overrides), multirun=multirun)
    root = Path(plan.results_root)
    root.mkdir(parents=True, exist_ok=True)
    parent = uri = None
    if plan.tracking.enabled and not dry_run:
        uri = tracking_uri(plan.tracking, root)
        exp_id = ensure_experiment(uri, plan.tracking.experiment, root)
        name = " ".join(overrides) or "defaults"
        tags = {"musiclime.code_version": code_version(), "musiclime.n_points": str(len(points)),
                "musiclime.overrides": name, "musiclime.multirun": str(bool(multirun))}
        parent = start_parent_run(uri, exp_id, f"run: {name}"[:250], tags)
    plan.invocation = Invocation(parent_run_id=parent, tracking_uri=uri,
                                 gpu=1 if torch.cuda.is_available() else 0)
    return plan, write_plan(plan)


def run_workflow(overrides: list[str], multirun: bool = False, cores: int = 2,
                 dry_run: bool = False, extra: list[str] | None = None) -> int:
    plan, plan_path = prepare(overrides, multirun, dry_run)
    root = Path(plan.results_root)
    cmd = snakemake_command(plan_path, root, cores, dry_run, extra)
    log.info("%d configuration(s); running %s", len(plan.points), " ".join(cmd))
    rc = subprocess.call(cmd)
    inv = plan.invocation
    if inv.parent_run_id:
        end_run(inv.tracking_uri, inv.parent_run_id, ok=rc == 0)
    print(f"\nresults: {root}")
    for pid, point in plan.points.items():
        print(f"  {pid}: {' '.join(point.overrides) or '(defaults)'}\n"
              f"      explanations: {root / 'fit' / point.fit}\n"
              f"      global tables: {root / layout.aggregate_dir(point.fit)}")
    if inv.parent_run_id:
        print(f"MLflow parent run {inv.parent_run_id} in {inv.tracking_uri}")
        print(f"open it with: {ui_command(inv.tracking_uri, root)}")
    if rc != 0:
        print(f"snakemake exited with {rc}: see the logs under {root / 'logs'}; songs that "
              "finished are kept and a rerun continues where it stopped", file=sys.stderr)
    return rc


def report_workflow(overrides: list[str], multirun: bool = False,
                    out: str | Path | None = None) -> int:
    """Write Snakemake's HTML report for the outputs of a (finished) run or sweep."""
    plan, _ = plan_from_overrides(list(overrides), multirun=multirun)
    plan.tracking = TrackingSettings(enabled=False)
    root = Path(plan.results_root)
    out = Path(out) if out else root / "report.html"
    cmd = snakemake_command(write_plan(plan, "report"), root, 1,
                            extra=["--report", str(out.resolve())])
    rc = subprocess.call(cmd)
    if rc == 0:
        print(f"report: {out}")
    return rc
