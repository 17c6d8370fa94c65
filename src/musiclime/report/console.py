"""The console summary of ``musiclime run``: one row per configuration, read from its result
files, the songs that failed, and where to look next."""

from __future__ import annotations

import sys
from pathlib import Path

from ..io import layout
from ..io.fileio import read_json


def plan_counts(points: list) -> str:
    """What a run of ``points`` (workflow ``PointSpec``) is about to do, counted as its summary
    table counts it (songs ok + failed per configuration): ``3 configuration(s) x 3 song(s) =
    9 song explanation(s), 1 song set aside (listed at the end)``."""
    per_point = [len(p.songs) + len(p.failed) for p in points]
    songs = {(p.dataset, s) for p in points for s in [*p.songs, *p.failed]}
    aside = {(p.dataset, s) for p in points for s in p.failed}
    if len(set(per_point)) == 1:
        text = (f"{len(points)} configuration(s) x {per_point[0]} song(s) = {sum(per_point)} "
                "song explanation(s)")
    else:
        text = (f"{len(points)} configuration(s), {sum(per_point)} song explanation(s) of "
                f"{len(songs)} song(s)")
    return text + (f", {len(aside)} song(s) set aside (listed at the end)" if aside else "")


def point_row(root: Path, point) -> dict:
    """The console's numbers of one configuration (a workflow ``PointSpec``), read from its
    result files."""
    values: dict[str, list[float]] = {"p5": [], "r2": [], "ess": [], "s": []}
    fit_warned = 0
    for song in point.songs:
        fit_rec = root / layout.path("fit_record", key=point.predict, batch=point.fit_batch,
                                     song=song)
        if not fit_rec.is_file():
            continue
        meta = read_json(root / read_json(fit_rec)["files"][point.fit])["metadata"]
        fit_warned += bool(meta.get("fit_warnings"))
        values["ess"].append(meta["kernel"]["effective_samples"])
        values["s"].append(sum(float(meta["timings"].get(k, 0.0))
                               for k in ("separate_s", "predict_total_s", "fit_s")))
        if not point.evaluate_batch:
            continue
        ev_rec = root / layout.path("evaluate_record", key=point.predict,
                                    batch=point.evaluate_batch, song=song)
        if ev_rec.is_file():
            m = read_json(root / read_json(ev_rec)["files"][point.evaluate])
            values["r2"].append(m.get("heldout_r2", float("nan")))
            values["p5"].append(m.get("evidence_precision_at_5_combined", float("nan")))

    def avg(xs):
        xs = [x for x in xs if isinstance(x, (int, float)) and x == x]
        return f"{sum(xs) / len(xs):.3g}" if xs else "-"

    return {"configuration": point.name or point.point_id,
            "songs ok": str(len(point.songs)), "failed": str(len(point.failed)),
            "evidence P@5": avg(values["p5"]), "R2 held-out": avg(values["r2"]),
            "eff. samples": avg(values["ess"]), "fit warnings": str(fit_warned),
            "compute s": f"{sum(values['s']):.0f}"}


def print_summary(root: Path, points: list, rc: int, wall_s: float, smk_log: Path,
                  tracked: list[str], tracking_problem: str | None) -> None:
    """The table of ``points``, the failed songs (stderr), the results root, the ``tracked``
    lines (where the MLflow runs are) or why tracking is pending, and Snakemake's status."""
    rows = [point_row(root, p) for p in points]
    if rows:
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in rows[0]}
        print("\n" + "  ".join(c.ljust(w) for c, w in widths.items()))
        for r in rows:
            print("  ".join(r[c].ljust(w) for c, w in widths.items()))
    failed = {s: r for p in points for s, r in p.failed.items()}
    if failed:
        print(f"{len(failed)} song(s) failed:", file=sys.stderr)
        for song, reason in sorted(failed.items()):
            print(f"  {song}: {reason}", file=sys.stderr)
    print(f"done in {wall_s:.0f}s; results: {root} (`musiclime where PATH` explains a path)")
    for line in tracked:
        print(line)
    if not tracked and tracking_problem:
        print(f"tracking pending: {tracking_problem}. Explanations and global tables are "
              "computed; when the tracking server is back, run the same `musiclime run` "
              "command again (or `musiclime track` with the same overrides) to record them.",
              file=sys.stderr)
    if rc != 0:
        print(f"snakemake exited with {rc}: see {smk_log} and the logs under {root / 'logs'}; "
              "everything finished is kept and a rerun continues where it stopped",
              file=sys.stderr)
