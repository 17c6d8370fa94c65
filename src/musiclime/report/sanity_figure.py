"""The sanity cascade's figure (Adebayo et al. 2018): rank correlation with the original
explanation against the depth of cascading randomisation (:mod:`musiclime.metrics.sanity`
computes the curves)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..metrics.sanity import SanityResult, cascade_curves, randomisable_layers, sanity_plot_path
from .plots import fit_tick_labels, new_figure, save_figure


def plot_sanity_cascade(results, path: str | os.PathLike | None = None,
                        layers: Sequence[str] | None = None, title: str | None = None
                        ) -> Figure:
    """Rank correlation with the original explanation (signed and of ``|w|``) against the
    cascade step, a dashed line at 0 (where a method that passes ends).

    ``results``: a :class:`SanityResult` or a metrics dict (one song's ``sanity_*`` keys), or a
    list of them (several songs: a thin line per song and their mean, bold). The x axis is the
    cascade depth (layers randomised), labelled with the deepest layer randomised when the
    layer names are known (from a result, or ``layers``: output first), else with the depth.
    Each curve's line has the gid ``sanity-curve`` (the per-song lines also
    ``sanity-song``).
    """
    items = [results] if isinstance(results, (SanityResult, Mapping)) else list(results)
    if not items:
        raise ValueError("no sanity results to plot")
    parsed = [cascade_curves(item) for item in items]
    names = list(layers) if layers is not None else next((p[2] for p in parsed if p[2]), None)
    depths = sorted({d for signed, absolute, _ in parsed for d in (*signed, *absolute)})
    fig = new_figure(figsize=(max(5.0, 1.2 + 0.55 * len(depths)), 3.6))
    ax = fig.subplots()
    styles = (("spearman", 0, "#b2182b", "Spearman(w, w₀)"),
              ("spearman_abs", 1, "#2166ac", "Spearman(|w|, |w₀|)"))
    for _, which, colour, text in styles:
        curves = [p[which] for p in parsed if p[which]]
        if not curves:
            continue
        if len(curves) > 1:
            for curve in curves:
                xs = sorted(curve)
                ax.plot(xs, [curve[x] for x in xs], color=colour, lw=0.7, alpha=0.35,
                        gid="sanity-curve sanity-song")
        mean = [np.nanmean([c[d] for c in curves if d in c]) if any(d in c for c in curves)
                else np.nan for d in depths]
        label = text if len(curves) == 1 else f"{text}, mean of {len(curves)} songs"
        ax.plot(depths, mean, color=colour, lw=2.0, marker="o", ms=4, label=label,
                gid="sanity-curve")
    ax.axhline(0.0, color="k", lw=0.8, ls="--")
    ax.set_ylim(min(-0.2, ax.get_ylim()[0]), 1.05)
    ticks = ["original" if d == 0 else (names[d - 1] if names and d <= len(names) else str(d))
             for d in depths]
    ax.set_xticks(depths, ticks, fontsize=7)
    ax.set_xlabel("layers randomised, from the output down (cumulative)" if names else
                  "layers randomised, from the output down (cumulative): depth", fontsize=8)
    ax.set_ylabel("rank correlation with the original", fontsize=8)
    ax.set_title(title or "Sanity check: cascading randomisation (Adebayo et al. 2018)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fit_tick_labels(ax)
    if path is not None:
        save_figure(fig, path)
    return fig


def write_sanity_figure(metrics: Mapping, metrics_path: str | os.PathLike, classifier,
                        song_id: str) -> None:
    """The cascade's figure of one song's metrics, next to its metrics JSON."""
    names = [layer.name for layer in randomisable_layers(classifier)]
    plot_sanity_cascade(metrics, sanity_plot_path(metrics_path), layers=names,
                        title=f"{song_id}: sanity cascade")
