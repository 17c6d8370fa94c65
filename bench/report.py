"""The table ``bench/run.py`` prints: one line per measured number, with its goal and whether
it was met."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cases import GiB, reference_bytes  # noqa: E402


def table(results: dict) -> str:
    lines = []

    def row(case, metric, value, goal="", met=None):
        mark = "" if met is None else ("MET" if met else "MISSED")
        lines.append(f"{case:<9} {metric:<58} {value:>22} {goal:>10} {mark:>7}")

    lines.append(f"{'case':<9} {'metric':<58} {'value':>22} {'goal':>10} {'':>7}")
    lines.append("-" * 110)
    for r in results.get("e2e", {}).get("rows", []):
        ml, ref = r["musiclime"], r.get("reference", {})
        tag = f"{r['classifier']} n={r['num_samples']} @{r['rate'] // 1000}k"
        if "error" in ml:
            row("e2e", f"{tag}: musiclime failed", "error")
            continue
        row("e2e", f"{tag}: musiclime wall s / peak RSS MB",
            f"{ml['wall_s']:.1f} / {ml['peak_rss_mb']:.0f}")
        row("e2e", f"{tag}: musiclime classifier s (share)",
            f"{ml['classifier_s']:.1f} ({ml['classifier_s'] / ml['wall_s']:.0%})")
        if "skipped" in ref:
            gib = reference_bytes(r["num_samples"], results["settings"]["seconds"], r["rate"])
            row("e2e", f"{tag}: reference skipped (waveforms {gib / GiB:.1f} GiB)", "-")
        elif "error" in ref:
            row("e2e", f"{tag}: reference failed", "error")
        elif ref:
            row("e2e", f"{tag}: reference wall s / peak RSS MB",
                f"{ref['wall_s']:.1f} / {ref['peak_rss_mb']:.0f}")
            row("e2e", f"{tag}: reference classifier s (share)",
                f"{ref['classifier_s']:.1f} ({ref['classifier_s'] / ref['wall_s']:.0%})")
            row("e2e", f"{tag}: speed-up (ref/musiclime wall)", f"{r['speedup']:.2f}x")
            row("e2e", f"{tag}: memory (ref/musiclime peak RSS)", f"{r['memory_ratio']:.2f}x")
            agree = next(iter(r.get("agreement", {}).values()), None)
            if agree:
                row("e2e", f"{tag}: weights ref vs musiclime (pearson, top-5)",
                    f"{agree['pearson']:.4f}, {agree['top5_overlap']}/5")
    ov = results.get("overhead")
    if ov:
        row("overhead", f"predict total / classifier ({ov['classifier']}, n={ov['num_samples']})",
            f"{ov['ratio']:.3f}", "<= 1.10", ov["ratio"] <= 1.10)
        row("overhead", "  of which compose s / lyrics s / other s",
            f"{ov['compose_s']:.2f} / {ov['lyrics_compose_s']:.3f} / {ov['other_s']:.2f}")
    mem = results.get("memory")
    if mem and "max_over_min" in mem:
        peaks = " / ".join(f"{r['peak_rss_mb']:.0f}" for r in mem["rows"])
        ns = "/".join(str(r["num_samples"]) for r in mem["rows"])
        row("memory", f"musiclime peak RSS MB at n={ns}", peaks)
        row("memory", "max/min peak RSS", f"{mem['max_over_min']:.3f}", "<= 1.10",
            mem["max_over_min"] <= 1.10)
        row("memory", "  peak RSS growth during the explanation, MB",
            " / ".join(f"{x:.0f}" for x in mem["explain_increment_mb"]))
    for sw in results.get("sweep", []):
        if "error" in sw:
            row("sweep", f"{sw['method']}: failed", "error")
            continue
        row("sweep", f"{sw['method']}: grid s / largest single point s",
            f"{sw['grid_s']:.1f} / {sw['single_s']:.1f}")
        row("sweep", f"{sw['method']}: grid / single", f"{sw['ratio']:.3f}x", "<= 1.3",
            sw["ratio"] <= 1.3)
        if "naive_ratio" in sw:
            row("sweep", f"{sw['method']}: naive re-execution / single",
                f"{sw['naive_ratio']:.2f}x", "(~5x)")
    for r in results.get("reuse", {}).values():
        extra = f", {r['unique_rows']}/{r['rows']} distinct" if "unique_rows" in r else ""
        row("reuse", f"{r['flag']} ({r['modality']}{extra}): off s / on s",
            f"{r['off_s']:.2f} / {r['on_s']:.2f}")
        row("reuse", f"{r['flag']} ({r['modality']}) speed-up", f"{r['speedup']:.2f}x")
    return "\n".join(lines)
