"""Fits that mean nothing say so (musiclime.core.fit_quality), and in-sample R^2 never stands alone.

The end-to-end cases run the real `musiclime explain` (oracle stems, the white-box classifier)
on the conftest song: 4 stems x 10 segments + 4 lyric lines = 44 features unless a case changes
that. Each case is one condition the fit must report, with the exact set of warning codes it
must produce in the JSON, on the page and on the console, and nothing else.
"""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
from conftest import KEYWORD_LINE, TONE_REFERENCE_ENERGY

from musiclime.cli import main
from musiclime.core.explanation import Explanation
from musiclime.core.fit_quality import (
    MIN_HELDOUT_ROWS,
    LabelQuality,
    cross_validated_r2,
    fit_warnings,
    fold_assignment,
    null_r2,
    weighted_r2,
)
from musiclime.report import render_explanation_page


# --- thresholds, on hand-made numbers --------------------------------------------------------
def _labels(weight: float = 0.1, r2: float = 0.9) -> dict[int, LabelQuality]:
    return {0: LabelQuality(insample_r2=r2, heldout_r2=0.5, heldout_note=None,
                            max_abs_weight=weight)}


@pytest.mark.parametrize("n, f, ess, weight, codes", [
    (1000, 44, 940.0, 0.1, []),                           # the defaults
    (64, 44, 88.0, 0.1, []),                              # exactly 2 per feature: no warning
    (64, 44, 60.0, 0.1, ["few_effective_samples"]),       # 1.36 per feature
    (44, 44, 43.0, 0.1, ["features_ge_samples"]),         # F = n: interpolates
    (32, 440, 30.9, 0.1, ["features_ge_samples"]),        # F > n (not also few_effective)
    (1000, 44, 9.9, 0.1, ["kernel_collapsed"]),           # < 10 and < 10% of n
    (1000, 44, 1.0, 0.0, ["kernel_collapsed", "zero_weights"]),
    (40, 3, 4.9, 0.1, ["few_effective_samples"]),         # < 10 but > 10% of n: not the kernel
    (50, 3, 4.9, 0.1, ["kernel_collapsed"]),              # < 10 and < 10% of n
    (500, 44, 60.0, 0.1, ["few_effective_samples"]),      # the kernel keeps 12%: say so
    (1000, 44, 940.0, 9e-7, ["zero_weights"]),
    (1000, 44, 940.0, 1e-6, []),
])
def test_each_condition_and_only_it(n, f, ess, weight, codes):
    found = fit_warnings("s", n, f, ess, _labels(weight), {0: "ai"}, kernel_width=0.25,
                         distance_scale=1.0)
    assert [w.code for w in found] == codes
    for w in found:
        assert w.message.startswith("song s: ") and "\n" not in w.message
        assert "explainer." in w.message  # says what to change


def test_messages_carry_the_numbers_and_the_way_out():
    [w] = fit_warnings("s", 32, 440, 30.9, _labels(r2=1.0), {0: "ai"})
    assert "440 features but only 32 samples" in w.message and "R^2 (1.000)" in w.message
    assert "explainer.num_samples to at least 880" in w.message
    [w] = fit_warnings("s", 64, 44, 60.0, _labels(), {0: "ai"})
    # E[R^2] of a 44-feature fit to noise on 60 samples: 44 / 59
    assert "about 0.75" in w.message and "at least 94" in w.message  # ceil(88 / (60 / 64))
    assert "kernel_width" not in w.message  # the kernel keeps 94%: more samples is the fix
    [w] = fit_warnings("s", 500, 44, 60.0, _labels(), {0: "ai"})
    assert "explainer.kernel_width (the kernel keeps 12% of the samples)" in w.message
    collapsed, zero = fit_warnings("s", 1000, 44, 1.0, _labels(0.0), {0: "ai"},
                                   kernel_width=1e-9, distance_scale=1.0)
    assert "1.0 effective samples of 1000" in collapsed.message
    assert "kernel_width 1e-09" in collapsed.message and "raise explainer.kernel_width" in \
        collapsed.message
    assert zero.label == 0 and "'ai'" in zero.message and "0.0e+00" in zero.message


def test_null_r2_is_features_over_effective_samples_minus_one():
    assert null_r2(44, 60.0) == pytest.approx(44 / 59)
    assert null_r2(44, 45.0) == 1.0 and null_r2(3, 1.0) == 1.0


# --- held-out R^2 ----------------------------------------------------------------------------
def test_folds_are_seeded_balanced_and_keep_fixed_rows_and_pairs():
    a = fold_assignment(103, seed=7, fixed_rows=1)
    assert np.array_equal(a, fold_assignment(103, seed=7, fixed_rows=1))  # deterministic
    assert not np.array_equal(a, fold_assignment(103, seed=8, fixed_rows=1))
    assert a[0] == -1 and (a[1:] >= 0).all()
    assert sorted(np.bincount(a[1:])) == [20, 20, 20, 21, 21]  # 102 rows in 5 folds
    paired = fold_assignment(42, seed=0, fixed_rows=2, paired=True)
    assert list(paired[:2]) == [-1, -1]
    assert all(paired[i] == paired[i + 1] for i in range(2, 42, 2))  # a mask and its complement
    assert fold_assignment(1 + MIN_HELDOUT_ROWS - 1, seed=0) is None  # too few to hold out
    assert fold_assignment(1 + MIN_HELDOUT_ROWS, seed=0) is not None


def test_held_out_r2_of_a_mean_predictor_by_hand():
    """A surrogate that predicts its training mean: each held-out row's prediction is the mean
    of the other folds' rows (and row 0), so the pooled R^2 can be computed by hand."""
    rng = np.random.default_rng(0)
    n = 21
    masks = (rng.random((n, 3)) < 0.5).astype(np.uint8)
    masks[0] = 1
    y = rng.normal(size=n)
    w = rng.random(n)
    folds = fold_assignment(n, seed=0)

    def fit(rows_masks, rows):
        assert rows[0] == 0 and np.array_equal(rows_masks, masks[rows])  # row 0 always trains
        return float(y[rows].mean()), np.zeros(3)

    r2, note = cross_validated_r2(masks, y, w, fit, folds)
    held = np.flatnonzero(folds >= 0)
    pred = np.array([y[folds != folds[i]].mean() for i in held])
    ybar = np.sum(w[held] * y[held]) / np.sum(w[held])
    expected = 1 - np.sum(w[held] * (y[held] - pred) ** 2) / np.sum(w[held] * (y[held] - ybar) ** 2)
    assert note is None and r2 == pytest.approx(expected, rel=1e-12)
    assert r2 < 0  # predicting a mean from other rows never beats the held-out rows' own mean


def test_held_out_r2_is_one_for_an_exact_linear_surrogate_and_na_when_it_cannot_be():
    rng = np.random.default_rng(1)
    masks = (rng.random((60, 4)) < 0.5).astype(np.uint8)
    masks[0] = 1
    y = 0.3 + masks @ np.array([0.5, -0.2, 0.0, 0.1])

    def ols(rows_masks, rows):
        design = np.c_[np.ones(len(rows)), rows_masks]
        coef = np.linalg.lstsq(design, y[rows], rcond=None)[0]
        return coef[0], coef[1:]

    folds = fold_assignment(60, seed=0)
    assert cross_validated_r2(masks, y, np.ones(60), ols, folds)[0] == pytest.approx(1.0)
    assert cross_validated_r2(masks, y, np.ones(60), ols, None) == (None, "too few samples")
    weights = np.zeros(60)
    weights[0] = 1.0  # a collapsed kernel: only row 0, which is never held out
    assert cross_validated_r2(masks, y, weights, ols, folds) == (
        None, "the kernel leaves no weight on the held-out samples")
    assert weighted_r2(np.full(5, 0.3), np.zeros(5), np.ones(5))[1] == \
        "the classifier's output does not vary over the held-out samples"


# --- end to end: `musiclime explain` ----------------------------------------------------------
LONG_LYRICS = "\n".join([KEYWORD_LINE] + [f"walking down the road number {i}"
                                          for i in range(399)]) + "\n"

#: (case, overrides, lyrics (None: the song's), the warning codes it must give, exactly)
CASES = [
    ("healthy", ["explainer.num_samples=400"], None, set()),
    ("400_lyric_lines_32_samples", ["explainer.num_samples=32"], LONG_LYRICS,
     {"features_ge_samples"}),
    ("kernel_width_1e-9", ["explainer.num_samples=200", "explainer.kernel_width=1e-9"], None,
     {"kernel_collapsed", "zero_weights"}),
    # 250 segments (1004 features) shows what temporal_segments=1000 does at a quarter of the
    # cost: the heatmap's tick labels alone take ~40 s at 1000 segments on 2 cores
    ("250_segments", ["explainer.num_samples=200", "explainer.temporal_segments=250"], None,
     {"features_ge_samples"}),
    ("64_samples_44_features", ["explainer.num_samples=64"], None, {"few_effective_samples"}),
]


@pytest.mark.parametrize("case, overrides, lyrics, codes", CASES, ids=[c[0] for c in CASES])
def test_explain_reports_each_meaningless_fit(case, overrides, lyrics, codes, short_song,
                                              tmp_path, capsys, caplog):
    lyrics_path = short_song.lyrics_path
    if lyrics is not None:
        lyrics_path = tmp_path / "lyrics.txt"
        lyrics_path.write_text(lyrics, encoding="utf-8")
    out = tmp_path / "out"
    start, end = short_song.tone_window
    with caplog.at_level(logging.WARNING, logger="musiclime.core.explainer"):
        rc = main(["explain", str(short_song.audio_path), "--lyrics", str(lyrics_path),
                   "--stems", str(short_song.stems_dir), "--out", str(out), "--quiet",
                   "separator=oracle", "model=whitebox", f"model.start={start}",
                   f"model.end={end}", f"model.reference_energy={TONE_REFERENCE_ENERGY}",
                   *overrides])
    assert rc == 0
    console = capsys.readouterr().out
    data = json.loads((out / "explanation.json").read_text())
    meta = data["metadata"]
    exp = Explanation.load(out / "explanation.json")
    label = exp.predicted_label

    # the JSON: the warnings with a code and a message, and the diagnostics behind them
    assert {w["code"] for w in meta["fit_warnings"]} == codes
    assert len(meta["fit_warnings"]) == len(codes)
    quality = meta["fit_quality"]
    assert quality["n_features"] == len(exp.columns)
    assert quality["n_samples"] == exp.num_samples
    assert quality["effective_samples"] == pytest.approx(exp.kernel["effective_samples"])
    assert quality["labels"][str(label)]["insample_r2"] == pytest.approx(exp.fits[label].score)
    assert [w.code for w in exp.fit_warnings] == [w["code"] for w in meta["fit_warnings"]]
    # the old keys are all still there (readers of the reference JSON are unaffected)
    assert {"warnings", "kernel", "prediction", "explanation_params"} <= set(meta)

    # logged as warnings, one line each
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for w in meta["fit_warnings"]:
        assert w["message"] in logged

    # the page: a banner naming every condition, and none for a sound fit
    page = (out / "explanation.html").read_text(encoding="utf-8")
    banner = re.search(r'<div class="fit-warnings" id="fit-warnings">(.*?)</div>', page, re.S)
    if codes:
        assert banner is not None
        assert set(re.findall(r'data-code="(\w+)"', banner.group(1))) == codes
    else:
        assert banner is None and 'id="fit-warnings"' not in page
    held = exp.heldout_text(label)
    assert f"R² = {exp.fits[label].score:.3f} in-sample" in page
    assert exp.heldout_phrase(label) in page and "R² held-out (5-fold CV, weighted)" in page

    # the console: both R^2 side by side, and each warning
    line = console.splitlines()[0]
    assert f"surrogate R^2={exp.fits[label].score:.3f} in-sample, " in line
    assert exp.heldout_phrase(label) in line
    assert ("(5-fold CV)" in line) == (not held.startswith("n/a"))
    assert set(re.findall(r"^  fit warning \[(\w+)\]: ", console, re.M)) == codes

    heldout = quality["labels"][str(label)]["heldout_r2"]
    if case == "healthy":
        assert heldout is not None and heldout > 0.5 and held == f"{heldout:.3f}"
        top2 = {name for name, _ in exp.top_features(label, k=2)}
        assert top2 == {short_song.tone_feature, KEYWORD_LINE}
    if case == "400_lyric_lines_32_samples":
        # in-sample looks perfect; held-out tells the truth
        assert exp.fits[label].score > 0.99
        assert heldout is not None and heldout < exp.fits[label].score - 0.2
    if case == "kernel_width_1e-9":
        assert heldout is None and held.startswith("n/a (the kernel leaves no weight")


def test_an_old_record_without_diagnostics_still_loads_and_renders(tmp_path, short_song):
    """Explanations written before fit_quality existed: no banner, held-out "n/a"."""
    from musiclime.core.explainer import ExplainerConfig, MusicLIME, load_song
    from musiclime.models.separation import OracleSeparator
    from musiclime.models.whitebox import ToneKeywordClassifier

    config = ExplainerConfig(num_samples=32)
    song = load_song(short_song.audio_path, short_song.lyrics_path, OracleSeparator(),
                     short_song.sample_rate, config, stems_dir=short_song.stems_dir)
    exp = MusicLIME(ToneKeywordClassifier(), config, progress=False).explain(song)
    d = exp.to_dict()
    assert d["metadata"]["fit_warnings"]  # 32 samples for 44 features
    for key in ("fit_quality", "fit_warnings"):
        del d["metadata"][key]
    old = Explanation.from_dict(d)
    assert old.fit_quality is None and old.fit_warnings == []
    assert old.heldout_text() == "n/a (not computed)"
    page = render_explanation_page(old)
    assert 'id="fit-warnings"' not in page and "held-out n/a (not computed)" in page
