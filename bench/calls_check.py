"""The calls benchmark's best method against the default, on the protocol's other two criteria:
planted-evidence recovery and white-box error must be no worse than the default's
(``bench/calls.py``'s report prints these lines before its last one)."""

from __future__ import annotations

import numpy as np

#: white-box error measures: name -> +1 where higher is better, -1 where lower is
MEASURES = {"spearman": 1, "top5_recall": 1, "l2": -1}


def evidence_worse(best: dict, default: dict, calls: list[int]) -> list[tuple[int, float]]:
    """``(calls, best - default)`` wherever the best method's evidence nP@5 is lower than the
    default's at the same count, both rounded to the two decimals the report prints."""
    out = []
    for n, b, d in zip(calls, best["evidence_np5"], default["evidence_np5"], strict=True):
        if np.isfinite(b) and np.isfinite(d) and round(b, 2) < round(d, 2):
            out.append((n, b - d))
    return out


def evidence_at_stable(st: dict, calls: list[int]) -> tuple[int | None, float]:
    """A method's evidence nP@5 at the first count of the grid that reaches its
    samples-to-stability (the budget its number stands for; ``None`` if never stable)."""
    n = next((c for c in st["calls"] if c >= st["median"]), None)
    return n, (st["evidence_np5"][calls.index(n)] if n is not None else float("nan"))


def whitebox_worse(best: dict, default: dict, error_calls: list[int]) -> list[str]:
    """``"<family> <measure> at N calls: best vs default"`` for every white-box error cell
    where the best method is worse than the default (rounded to two decimals)."""
    out = []
    for n in error_calls:
        eb, ed = best["errors"][str(n)], default["errors"][str(n)]
        for family in ed:
            for measure, sign in MEASURES.items():
                b, d = round(eb[family][measure], 2), round(ed[family][measure], 2)
                if sign * (b - d) < 0:
                    out.append(f"{family} {measure} at {n} calls: {b:.2f} vs {d:.2f}")
    return out


def against_default(name: str, baseline: str, summary: dict, white: dict, calls: list[int],
                    error_calls: list[int]) -> list[str]:
    """The report's lines: where ``name`` is worse than ``baseline`` in evidence (at equal
    calls) and in white-box error (every family and error count), or that it is nowhere."""
    ev = evidence_worse(summary[name], summary[baseline], calls)
    wb = (whitebox_worse(white[name], white[baseline], error_calls)
          if name in white and baseline in white else ["(not measured)"])
    lines = [f"best ({name}) against the default ({baseline}):"]
    lines.append("  evidence nP@5 at equal calls: " + (
        "no worse at any count" if not ev else
        "lower at " + ", ".join(f"{n} ({d:+.2f})" for n, d in ev)))
    (nb, eb), (nd, ed) = (evidence_at_stable(summary[m], calls) for m in (name, baseline))
    lines.append(f"  evidence nP@5 at each one's stable count: {eb:.2f} at {nb} calls against "
                 f"{ed:.2f} at {nd}")
    lines.append("  white-box error: " + ("no worse in any family, measure or count" if not wb
                                          else "worse in " + "; ".join(wb)))
    return lines
