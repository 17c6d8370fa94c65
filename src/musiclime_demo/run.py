"""``make demo``: generate the demo corpus's test songs (once) and run the default workflow.

    python -m musiclime_demo.run [--songs 8] [--cores 2] [extra Hydra overrides ...]

It runs the default configuration (separator=demo, model=demo, explainer defaults) through
Snakemake on the first ``--songs`` songs of the demo test split, logs to the embedded MLflow
store and prints where everything is.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

from musiclime.config import repo_root

log = logging.getLogger(__name__)


def ensure_test_split(out_dir: Path, workers: int) -> Path:
    from .corpus import generate_corpus

    manifest = out_dir / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("split") == "test"]
        if rows and all((manifest.parent / r["audio_path"]).is_file() for r in rows):
            log.info("reusing the demo corpus at %s (%d test songs)", out_dir, len(rows))
            return manifest
    log.info("generating the demo corpus's test split into %s", out_dir)
    return generate_corpus(out_dir, splits=("test",), workers=workers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=8, help="test songs to explain (default 8)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--data", default=str(repo_root() / "data" / "demo"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from musiclime.workflow.runner import run_workflow

    t0 = time.perf_counter()
    manifest = ensure_test_split(Path(args.data), args.cores)
    overrides = [f"dataset.manifest={manifest}", "dataset.split=test",
                 f"dataset.limit={args.songs}", *args.overrides]
    rc = run_workflow(overrides, cores=args.cores)
    print(f"demo finished in {time.perf_counter() - t0:.0f}s with exit code {rc}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
