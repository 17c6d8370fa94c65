"""Markdown tables of the results pages (``musiclime results``)."""

from __future__ import annotations

import math

import pandas as pd


def fmt(v) -> str:
    """A cell: floats to 3 significant digits, NaN as ``n/a``."""
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.3g}"
    return str(v)


def md_table(df: pd.DataFrame) -> str:
    """``df`` as a GitHub markdown table, its columns as the header."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])
