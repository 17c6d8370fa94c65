"""The figure contract (musiclime.report.plots, musiclime.report.global_plots).

Every plot function returns a Figure and writes a file only when given a path; titles carry p,
R², the kernel width and n; ``vmax`` fixes the colour scale; segment labels of a long song do
not overlap (measured on the Agg renderer); global plots use plain words and one scale per
panel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from musiclime.core.aggregate import COLUMNS
from musiclime.core.explanation import Explanation
from musiclime.core.factorization import AudioFactorization
from musiclime.core.features import FeatureTable
from musiclime.core.lyrics import LineUnits
from musiclime.core.surrogate import LabelFit
from musiclime.report.global_plots import (
    IMPORTANCE_LABELS,
    plot_global,
    plot_heatmaps,
    plot_top_bars,
)
from musiclime.report.plots import (
    _overlapping,
    fit_caption,
    format_time,
    new_figure,
    plot_audio_heatmap,
    plot_lyrics_bars,
)

STEMS = ("vocals", "drums", "bass", "other")
LYRICS = "first line\nsecond line\n[Chorus]\nthird line\n"


def synthetic_explanation(seconds: float = 195.0, segments: int = 10, rate: int = 100,
                          seed: int = 0) -> Explanation:
    """An explanation of a ``seconds``-long song, built without a classifier: the feature table
    comes from a real factorization (at a low rate, so a 195 s song is small), the weights are
    random, the fit numbers are chosen."""
    n = int(seconds * rate)
    rng = np.random.default_rng(seed)
    stems = {s: rng.standard_normal(n).astype(np.float32) for s in STEMS}
    mix = np.sum(list(stems.values()), axis=0)
    fac = AudioFactorization.from_stems(mix, stems, rate, segments=segments)
    table = FeatureTable.build(fac, LineUnits(LYRICS))
    weights = rng.normal(0, 0.1, len(table))
    weights[5] = 0.5  # the largest |w| is an audio feature
    return Explanation(
        song_id="long_song", class_names=["ai", "human"], modality="both", features=table,
        columns=list(range(len(table))),
        fits={0: LabelFit(label=0, intercept=0.1, weights=weights, score=0.912,
                          local_pred=0.8)},
        prediction=[0.803, 0.197], num_samples=1000,
        kernel={"width": 0.25, "distance_scale": 1.0, "formula": "w = ...",
                "weight_min": 0.1, "weight_mean": 0.5, "weight_max": 1.0,
                "effective_samples": 940.0})


@pytest.fixture(scope="module")
def long_exp() -> Explanation:
    return synthetic_explanation()


def _title(fig: Figure) -> str:
    return fig.axes[0].get_title()


@pytest.mark.parametrize("plot", [plot_audio_heatmap, plot_lyrics_bars])
def test_returns_a_figure_and_writes_only_given_a_path(plot, long_exp, tmp_path,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = plot(long_exp)
    assert isinstance(fig, Figure)
    assert list(tmp_path.iterdir()) == []  # nothing written without a path
    fig = plot(long_exp, tmp_path / "sub" / "fig.png")  # the old positional call still works
    assert isinstance(fig, Figure)
    assert (tmp_path / "sub" / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["fig.png"]  # no temp files


@pytest.mark.parametrize("plot", [plot_audio_heatmap, plot_lyrics_bars])
def test_titles_carry_p_r2_kernel_width_and_n(plot, long_exp):
    title = _title(plot(long_exp))
    for part in ("p=0.80", "R²=0.91", "kernel width=0.25", "n=1000", "'ai'"):
        assert part in title, (part, title)
    assert fit_caption(long_exp) == "p=0.80  R²=0.91  kernel width=0.25  n=1000"


def test_vmax_fixes_the_colour_scale(long_exp):
    im = plot_audio_heatmap(long_exp).axes[0].images[0]
    assert im.get_clim() == pytest.approx((-0.5, 0.5))  # default: this song's largest |w|
    im = plot_audio_heatmap(long_exp, vmax=2.0).axes[0].images[0]
    assert im.get_clim() == (-2.0, 2.0)
    assert plot_lyrics_bars(long_exp, vmax=2.0).axes[0].get_xlim() == (-2.0, 2.0)


def _visible_tick_labels(ax):
    return [tick.label1 for tick in ax.xaxis.get_major_ticks()
            if tick.label1.get_visible() and tick.label1.get_text()]


@pytest.mark.parametrize("segments", [10, 40, 120])
def test_time_labels_of_a_long_song_do_not_overlap(segments):
    exp = synthetic_explanation(195.0, segments)
    fig = plot_audio_heatmap(exp)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = _visible_tick_labels(ax)
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    for a, b in zip(boxes, boxes[1:], strict=False):
        assert b.x0 >= a.x1, f"tick labels overlap: {a} and {b}"
    # every label is inside the figure, and at least every other one of 10 is shown
    width, height = fig.canvas.get_width_height()
    assert all(b.x0 >= 0 and b.x1 <= width for b in boxes)
    assert len(labels) >= min(segments, 10) // 2
    texts = [tick.label1.get_text() for tick in ax.xaxis.get_major_ticks()]
    assert texts[0] == "T0\n0:00–0:20" if segments == 10 else texts[0].startswith("T0\n0:00")
    assert texts[-1].endswith(("–3:15", "–3:15.0"))


def test_the_overlap_measure_sees_overlapping_labels():
    """The check above can fail: crowded labels, left as they are, are reported."""
    fig = new_figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.set_xticks(range(10), [f"T{t}\n{format_time(19.5 * t)}–{format_time(19.5 * t + 19.5)}"
                              for t in range(10)])
    fig.canvas.draw()
    assert _overlapping(ax.get_xticklabels(), fig.canvas.get_renderer())


def test_format_time():
    assert format_time(0) == "0:00"
    assert format_time(195) == "3:15"
    assert format_time(59.7) == "1:00"
    assert format_time(2.45, precise=True) == "0:02.5"
    assert format_time(119.97, precise=True) == "2:00.0"


# --- global figures -------------------------------------------------------------------------
def _global_table(kind: str) -> pd.DataFrame:
    """Class ``ai`` has importances ~20x those of ``human`` (few human songs)."""
    rows = []
    keys = (["vocals_T0", "drums_T1", "bass_T2", "other_T3"] if kind == "audio"
            else ["la la", "robot", "night"])
    for cls, scale, n in (("ai", 1.0, 12), ("human", 0.05, 2)):
        for i, key in enumerate(keys):
            v = scale * (len(keys) - i)
            rows.append({"class": cls, "feature": key, "kind": kind, "lime_importance": v,
                         "avg_importance": v / 2, "hw_importance": v * 0.9, "count": n,
                         "entropy": 0.5, "n_songs_class": n})
    return pd.DataFrame(rows, columns=COLUMNS)


def test_global_bars_have_one_x_scale_per_panel_and_plain_labels():
    df = _global_table("audio")
    fig = plot_top_bars(df, importance="hw_importance", top_k=3, what="audio features")
    assert isinstance(fig, Figure)
    ai, human = fig.axes
    assert ai.get_xlim() == pytest.approx((0.0, 1.05 * 3.6))
    assert human.get_xlim() == pytest.approx((0.0, 1.05 * 0.18))
    assert human.get_xlabel() == "homogeneity-weighted importance"
    suptitle = fig.get_suptitle()
    assert "homogeneity-weighted importance" in suptitle and "entropy" in suptitle
    assert "hw_importance" not in suptitle + ai.get_xlabel()
    shared = plot_top_bars(df, importance="hw_importance", top_k=3, vmax=4.0)
    assert [ax.get_xlim() for ax in shared.axes] == [(0.0, 4.0), (0.0, 4.0)]


def test_global_heatmaps_have_one_colour_scale_per_panel():
    df = _global_table("audio")
    fig = plot_heatmaps(df, importance="lime_importance")
    panels = [ax for ax in fig.axes if ax.images]
    assert [p.images[0].get_clim() for p in panels] == [pytest.approx((0, 4.0)),
                                                        pytest.approx((0, 0.2))]
    assert "stem x segment" in fig.get_suptitle()
    assert "stem_segment" not in fig.get_suptitle()
    assert panels[0].get_title() == "ai (12 songs)"
    shared = plot_heatmaps(df, importance="lime_importance", vmax=5.0)
    assert {ax.images[0].get_clim() for ax in shared.axes if ax.images} == {(0.0, 5.0)}


def test_plot_global_writes_the_three_files(tmp_path):
    tables = {"stem_segment": _global_table("audio"), "lyrics_text": _global_table("lyrics")}
    paths = plot_global(tables, tmp_path, importance="avg_importance", top_k=2)
    assert [p.name for p in paths] == ["global_heatmap_avg_importance.png",
                                       "global_top_audio.png", "global_top_lyrics.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    assert set(IMPORTANCE_LABELS) == {"lime_importance", "avg_importance", "hw_importance"}
