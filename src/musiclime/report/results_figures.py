"""Figures of the results page, drawn from MLflow runs (never by hand): ``musiclime results``.

Two sources, both MLflow stores:

- **the calls benchmark** (``bench/calls.py --mlflow URI``: experiment ``musiclime-calls``, one
  run per method and call count, tag ``musiclime.bench=calls``; :func:`collect_calls` keeps the
  newest run of each): *stability vs calls* (the median over songs of the mean pairwise top-5
  Jaccard over mask seeds, per method; stable = at or above 0.8 from that count on) and *error
  vs calls* (the normalised L2 distance of a method's weights to the exact Shapley values of the
  white-box games, per game family; lower is better);
- **a sweep's child runs** (:func:`musiclime.report.results_table.collect_runs`, e.g. the sweep of
  ``config/sweep/calls.yaml``): *kernel width* (held-out R² and effective samples / num_samples
  by kernel width; the kernel is ``w = sqrt(exp(-(distance_scale * d)^2 / kernel_width^2))``
  with ``d`` the mask's cosine distance to the all-ones mask) and the *sanity cascade* (Adebayo
  et al. 2018, :func:`musiclime.metrics.sanity.plot_sanity_cascade`, one curve per
  configuration).

Every ``plot_*`` function returns a Figure and writes a PNG only when given a ``path``; every
``*_caption`` function returns the one line that says what the figure shows, computed from the
same rows; the calls benchmark's are in :mod:`~musiclime.report.calls_figures`, the sweep's
in :mod:`~musiclime.report.sweep_figures`. This module is the page: :func:`write_figures`
draws those with data into :func:`figures_dir` and returns the page's markdown; a figure
without data becomes a one-line note naming the runs that draw it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .calls_figures import (  # noqa: F401 (the calls figures' names, public here too)
    BASELINE,
    CALLS_EXPERIMENT,
    STABLE_JACCARD,
    calls_to_stable,
    collect_calls,
    drawn_methods,
    error_caption,
    first_stable,
    has_errors,
    has_stability,
    plot_error_vs_calls,
    plot_stability_vs_calls,
    stability_caption,
)
from .sweep_figures import (  # noqa: F401 (the sweep figures' names, public here too)
    has_kernel_widths,
    has_sanity,
    kernel_width_caption,
    plot_kernel_width,
    plot_sanity,
    sanity_caption,
    sanity_records,
)


@dataclass(frozen=True)
class PageFigure:
    """One figure of the page: its file name, title, which data it reads (``"calls"`` or
    ``"sweep"``), whether that data can draw it, how to draw and caption it, and the note when
    it cannot."""

    name: str
    title: str
    source: str
    available: Callable[[pd.DataFrame], bool]
    plot: Callable[..., Figure]
    caption: Callable[[pd.DataFrame], str]
    missing: str


_BENCH = ("run `python bench/calls.py --mlflow URI` with the tracking URI this page reads "
          "(`musiclime results --calls-uri`, default its own store)")
_SWEEP = ("`musiclime run sweep=calls dataset.limit=4 results_root=results/calls`, then "
          "`musiclime results --results-root results/calls`")

PAGE_FIGURES = (
    PageFigure("stability_vs_calls", "Stability vs classifier calls", "calls", has_stability,
               plot_stability_vs_calls, stability_caption,
               f"no runs of the calls benchmark (MLflow experiment `{CALLS_EXPERIMENT}`): "
               f"{_BENCH}."),
    PageFigure("error_vs_calls", "Error vs classifier calls on the white-box games", "calls",
               has_errors, plot_error_vs_calls, error_caption,
               "no white-box errors (`wb_<family>_l2`) in the calls benchmark's runs: "
               f"{_BENCH}."),
    PageFigure("kernel_width", "Kernel width: held-out R² and effective samples", "sweep",
               has_kernel_widths, plot_kernel_width, kernel_width_caption,
               "needs child runs at two or more kernel widths with held-out R^2: " + _SWEEP + "."),
    PageFigure("sanity_cascade", "Sanity cascade", "sweep", has_sanity, plot_sanity,
               sanity_caption,
               "needs child runs with `metrics.sanity=true` (a torch classifier): " + _SWEEP
               + "."),
)


def figures_dir(markdown_path: str | os.PathLike) -> Path:
    """Where the page's PNGs go: ``<page stem>_figures/`` beside it
    (``docs/results/calls.md`` -> ``docs/results/calls_figures/``)."""
    markdown_path = Path(markdown_path)
    return markdown_path.parent / f"{markdown_path.stem}_figures"


def write_figures(markdown_path: str | os.PathLike, sweep: pd.DataFrame | None,
                  calls: pd.DataFrame | None, folder: str | os.PathLike | None = None) -> str:
    """Draw every figure of :data:`PAGE_FIGURES` that its data allows as
    ``<folder>/<name>.png`` (default :func:`figures_dir` of ``markdown_path``) and return the
    markdown: per figure a heading, the image by its path relative to the page, and its
    caption; a figure without data gets its note instead (and an earlier PNG of it is
    removed, so the folder holds what the page shows)."""
    markdown_path = Path(markdown_path)
    folder = Path(folder) if folder is not None else figures_dir(markdown_path)
    data = {"calls": calls if calls is not None else pd.DataFrame(),
            "sweep": sweep if sweep is not None else pd.DataFrame()}
    out = ["The stability and error figures are drawn from the calls benchmark's MLflow runs "
           f"(experiment `{CALLS_EXPERIMENT}`, the newest run per method and call count), the "
           "kernel-width and sanity figures from this sweep's child runs.", ""]
    for spec in PAGE_FIGURES:
        df = data[spec.source]
        png = folder / f"{spec.name}.png"
        out += [f"### {spec.title}", ""]
        if df.empty or not spec.available(df):
            png.unlink(missing_ok=True)
            out += [f"*Not drawn:* {spec.missing}", ""]
            continue
        spec.plot(df, path=png)
        rel = Path(os.path.relpath(png, markdown_path.parent)).as_posix()
        out += [f"![{spec.title}]({rel})", "", spec.caption(df), ""]
    return "\n".join(out)
