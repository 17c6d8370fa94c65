"""Global aggregation of local explanations (musiclime.core.aggregate / aggregate_plots).

The expected numbers below are worked out by hand from the weights in ``_corpus`` (the
arithmetic is in the comments), not by re-running the module's formulas.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from musiclime.core.aggregate import (
    COLUMNS,
    ROLLUPS,
    aggregate,
    aggregate_all,
    feature_key,
    load_explanations,
    write_tables,
)
from musiclime.core.explanation import Explanation
from musiclime.core.features import Feature, FeatureTable
from musiclime.core.surrogate import LabelFit
from musiclime.report.global_plots import plot_global, write_global

CLASSES = ["pop", "rock", "jazz"]  # jazz: never predicted
STEMS = ["vocals", "drums"]
# audio component order as in factorization: for each segment t, for each stem s
AUDIO = [("vocals", 0), ("drums", 0), ("vocals", 1), ("drums", 1)]


def _table(lines: list[str], unit: str = "line") -> FeatureTable:
    feats = [Feature(index=i, name=f"{s}_T{t}", kind="audio", stem=s, segment=t,
                     start=5.0 * t, end=5.0 * (t + 1)) for i, (s, t) in enumerate(AUDIO)]
    for u, text in enumerate(lines):
        feats.append(Feature(index=len(AUDIO) + u, name=text, kind="lyrics", unit_index=u))
    return FeatureTable(features=feats, n_audio=len(AUDIO), n_lyrics=len(lines),
                        lyrics_unit=unit, sample_rate=16000, stems=list(STEMS), n_segments=2)


def _exp(song_id: str, prediction: list[float], lines: list[str],
         fits: dict[int, list[float]], unit: str = "line") -> Explanation:
    table = _table(lines, unit)
    label_fits = {label: LabelFit(label=label, intercept=0.1, weights=np.asarray(w, float),
                                  score=0.9, local_pred=0.5) for label, w in fits.items()}
    for w in fits.values():
        assert len(w) == len(table)
    return Explanation(song_id=song_id, class_names=list(CLASSES), modality="both",
                       features=table, columns=list(range(len(table))), fits=label_fits,
                       prediction=prediction, num_samples=64, kernel={})


def _corpus() -> list[Explanation]:
    #          vocals_T0 drums_T0 vocals_T1 drums_T1 | lyric lines
    a = _exp("A", [0.8, 0.15, 0.05], ["Hello World", "la la", " hello world "], {
        0: [0.09, 0.16, -0.30, 0.11, 0.10, -0.20, 0.15],
        1: [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0],  # not the predicted label: ignored
    })
    b = _exp("B", [0.6, 0.3, 0.1], ["la la", "Goodbye"], {
        0: [0.16, -0.50, 0.00, 0.25, 0.36, 0.04],
    })
    c = _exp("C", [0.2, 0.7, 0.1], ["Goodbye", "Hello world"], {
        1: [0.04, 0.64, -0.10, 0.36, 0.25, -0.40],
        0: [7.0, 7.0, 7.0, 7.0, 7.0, 7.0],  # not the predicted label: ignored
    })
    # predicted rock, but only pop was explained: skipped
    d = _exp("D", [0.2, 0.7, 0.1], ["Goodbye"], {0: [1.0, 1.0, 1.0, 1.0, 1.0]})
    return [a, b, c, d]


# H of (5/7, 2/7) = -(5/7 log2 5/7 + 2/7 log2 2/7)
H_5_2 = 0.863120568566631
# H of (1/3, 2/3)
H_1_2 = 0.9182958340544896


def _rows(df: pd.DataFrame) -> dict[tuple[str, str], dict]:
    return {(r["class"], r["feature"]): r for r in df.to_dict("records")}


def _check(df: pd.DataFrame, expected: dict, entropy: dict):
    rows = _rows(df)
    assert set(rows) == set(expected)
    for key, (lime, avg, hw, count) in expected.items():
        r = rows[key]
        assert r["lime_importance"] == pytest.approx(lime, abs=1e-12), key
        assert r["avg_importance"] == pytest.approx(avg, abs=1e-12), key
        assert r["hw_importance"] == pytest.approx(hw, abs=1e-12), key
        assert r["count"] == count, key
        assert r["entropy"] == pytest.approx(entropy[key[1]], abs=1e-12), key
        assert r["n_songs_class"] == {"pop": 2, "rock": 1}[key[0]]


def test_stem_segment_by_hand():
    df = aggregate(_corpus(), "stem_segment")
    assert list(df.columns) == COLUMNS
    assert set(df["kind"]) == {"audio"}
    # pop (A, B): vocals_T0 .09+.16=.25 -> I .5, AVG .125 (2 songs)
    #             drums_T0 .16 (B's -.5 dropped) -> I .4, AVG .16 (1 song)
    #             vocals_T1 -.30 / 0.00 -> no positive weight, no row
    #             drums_T1 .11+.25=.36 -> I .6, AVG .18
    # rock (C): vocals_T0 .04 -> I .2; drums_T0 .64 -> I .8; drums_T1 .36 -> I .6
    # H: vocals_T0 (.5,.2) -> (5/7,2/7) = .86312 (Hmin); drums_T0 (.4,.8) -> .91830;
    #    drums_T1 (.6,.6) -> 1 (Hmax)
    # factor drums_T0 = 1 - (.9182958 - .8631206) / (1 - .8631206) = .5969061
    f = 0.596906088006969
    expected = {
        ("pop", "vocals_T0"): (0.5, 0.125, 0.5, 2),
        ("pop", "drums_T0"): (0.4, 0.16, 0.4 * f, 1),
        ("pop", "drums_T1"): (0.6, 0.18, 0.0, 2),
        ("rock", "vocals_T0"): (0.2, 0.04, 0.2, 1),
        ("rock", "drums_T0"): (0.8, 0.64, 0.8 * f, 1),
        ("rock", "drums_T1"): (0.6, 0.36, 0.0, 1),
    }
    _check(df, expected, {"vocals_T0": H_5_2, "drums_T0": H_1_2, "drums_T1": 1.0})
    assert df["hw_importance"].tolist()[2] == pytest.approx(0.23876243520278762)  # pop drums_T0
    # sorted by class index, then lime_importance descending
    assert list(zip(df["class"], df["feature"], strict=True)) == [
        ("pop", "drums_T1"), ("pop", "vocals_T0"), ("pop", "drums_T0"),
        ("rock", "drums_T0"), ("rock", "drums_T1"), ("rock", "vocals_T0")]


def test_stem_by_hand():
    df = aggregate(_corpus(), "stem")
    # within-song sums first: A drums = .16 + .11 = .27, B drums = .25 (-.5 dropped)
    # pop vocals: A .09, B .16 -> .25 -> I .5, AVG .125; pop drums .27+.25=.52 -> I .7211103,
    #   AVG .26 (2 songs)
    # rock vocals .04 -> I .2; rock drums .64+.36 = 1.0 -> I 1.0
    # H vocals (.5,.2) = .86312 (Hmin, factor 1); H drums (.7211103, 1.0) = .9809757 (Hmax,
    #   factor 0)
    expected = {
        ("pop", "vocals"): (0.5, 0.125, 0.5, 2),
        ("pop", "drums"): (0.7211102550927979, 0.26, 0.0, 2),
        ("rock", "vocals"): (0.2, 0.04, 0.2, 1),
        ("rock", "drums"): (1.0, 1.0, 0.0, 1),
    }
    _check(df, expected, {"vocals": H_5_2, "drums": 0.9809756942666346})


def test_segment_by_hand():
    df = aggregate(_corpus(), "segment")
    # pop T0: A .09+.16=.25, B .16 -> .41 -> I .6403124, AVG .205
    # pop T1: A .11 (-.30 dropped), B .25 (0.00 dropped) -> .36 -> I .6, AVG .18
    # rock T0: .04+.64 = .68 -> I .8246211; rock T1: .36 -> I .6
    # H T0 (.6403124, .8246211) = .9885514 (Hmin, factor 1); H T1 (.6, .6) = 1 (Hmax, 0)
    expected = {
        ("pop", "T0"): (0.6403124237432849, 0.205, 0.6403124237432849, 2),
        ("pop", "T1"): (0.6, 0.18, 0.0, 2),
        ("rock", "T0"): (0.8246211251235321, 0.68, 0.8246211251235321, 1),
        ("rock", "T1"): (0.6, 0.36, 0.0, 1),
    }
    _check(df, expected, {"T0": 0.9885514125056987, "T1": 1.0})


def test_lyrics_text_by_hand():
    df = aggregate(_corpus(), "lyrics_text")
    assert set(df["kind"]) == {"lyrics"}
    # text keys are lower-cased and stripped: A's "Hello World" and " hello world " are one
    # key, summed within A: .10 + .15 = .25 -> I .5, AVG .25 (1 song)
    # pop "la la": A -.20 dropped, B .36 -> I .6; pop "goodbye": B .04 -> I .2
    # rock "goodbye": C .25 -> I .5; rock "hello world" -.40 -> no row
    # H: "hello world", "la la" used by pop only -> 0 (Hmin, factor 1);
    #    "goodbye" (.2, .5) -> (2/7, 5/7) = .86312 (Hmax, factor 0)
    expected = {
        ("pop", "la la"): (0.6, 0.36, 0.6, 1),
        ("pop", "hello world"): (0.5, 0.25, 0.5, 1),
        ("pop", "goodbye"): (0.2, 0.04, 0.0, 1),
        ("rock", "goodbye"): (0.5, 0.25, 0.0, 1),
    }
    _check(df, expected, {"hello world": 0.0, "la la": 0.0, "goodbye": H_5_2})


def test_lyrics_position_by_hand():
    df = aggregate(_corpus(), "lyrics_position")
    # pop L0: A .10, B .36 -> .46 -> I .6782330, AVG .23; L1: A -.20, B .04 -> I .2;
    #     L2: A .15 -> I .3872983, AVG .15
    # rock L0: C .25 -> I .5; L1: -.40 -> no row
    # H L0 (.6782330, .5) = .9834298 (Hmax, factor 0); L1, L2 pop only -> 0 (Hmin, factor 1)
    expected = {
        ("pop", "L0"): (0.6782329983125268, 0.23, 0.0, 2),
        ("pop", "L2"): (0.3872983346207417, 0.15, 0.3872983346207417, 1),
        ("pop", "L1"): (0.2, 0.04, 0.2, 1),
        ("rock", "L0"): (0.5, 0.25, 0.0, 1),
    }
    _check(df, expected, {"L0": 0.983429833342083, "L1": 0.0, "L2": 0.0})


def test_avg_count_present():
    df = aggregate(_corpus(), "stem_segment", avg_count="present")
    rows = _rows(df)
    # pop drums_T0: sum .16 over the 2 pop songs that perturbed it -> AVG .08
    assert rows["pop", "drums_T0"]["count"] == 2
    assert rows["pop", "drums_T0"]["avg_importance"] == pytest.approx(0.08)
    assert rows["pop", "drums_T0"]["lime_importance"] == pytest.approx(0.4)
    # vocals_T1 has no positive weight anywhere: rows with I = AVG = HW = 0, entropy NaN
    for cls, n in (("pop", 2), ("rock", 1)):
        r = rows[cls, "vocals_T1"]
        assert r["count"] == n
        assert r["lime_importance"] == 0.0 and r["avg_importance"] == 0.0
        assert r["hw_importance"] == 0.0 and np.isnan(r["entropy"])
    # Hmin/Hmax unaffected: drums_T0 keeps its factor
    assert rows["pop", "drums_T0"]["hw_importance"] == pytest.approx(0.23876243520278762)
    with pytest.raises(ValueError):
        aggregate(_corpus(), "stem", avg_count="sometimes")


def test_skipped_songs_are_counted_and_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="musiclime.core.aggregate"):
        tables = aggregate_all(_corpus())
    assert set(tables) == set(ROLLUPS)
    warnings = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "D" in warnings[0].getMessage()
    # rock has 1 contributing song (C), not 2 (D is skipped); jazz never appears
    for df in tables.values():
        assert set(df.loc[df["class"] == "rock", "n_songs_class"]) == {1}
        assert "jazz" not in set(df["class"])


def test_entropy_edge_cases():
    # song 1 (pop): vocals_T0 .25, drums_T0 .25; song 2 (rock): drums_T0 .25
    s1 = _exp("s1", [0.9, 0.1, 0.0], [], {0: [0.25, 0.25, 0.0, 0.0]})
    s2 = _exp("s2", [0.1, 0.9, 0.0], [], {1: [0.0, 0.25, 0.0, 0.0]})
    rows = _rows(aggregate([s1, s2], "stem_segment"))
    # vocals_T0: pop only -> H 0 = Hmin -> factor 1 -> HW = I = .5
    assert rows["pop", "vocals_T0"]["entropy"] == 0.0
    assert rows["pop", "vocals_T0"]["hw_importance"] == pytest.approx(0.5)
    # drums_T0: pop .5, rock .5 -> H 1 = Hmax -> factor 0; a third class (jazz) with p = 0
    # does not change H
    assert rows["pop", "drums_T0"]["entropy"] == pytest.approx(1.0)
    assert rows["rock", "drums_T0"]["entropy"] == pytest.approx(1.0)
    assert rows["rock", "drums_T0"]["hw_importance"] == 0.0
    # Hmax == Hmin (every key used by one class only): factor 1
    rows = _rows(aggregate([s1], "stem_segment"))
    assert rows["pop", "vocals_T0"]["hw_importance"] == pytest.approx(0.5)
    assert rows["pop", "drums_T0"]["hw_importance"] == pytest.approx(0.5)


def test_word_units_and_keys():
    w = _exp("w", [0.9, 0.1, 0.0], ["Love", "you", "LOVE"],
             {0: [0.0, 0.0, 0.0, 0.0, 0.3, -0.1, 0.06]}, unit="word")
    text = _rows(aggregate([w], "lyrics_text"))
    # the word "love" twice in the song: .3 + .06 = .36 -> I .6; "you" negative -> no row
    assert set(text) == {("pop", "love")}
    assert text["pop", "love"]["lime_importance"] == pytest.approx(0.6)
    # positions are for line units only
    assert aggregate([w], "lyrics_position").empty
    assert list(aggregate([w], "lyrics_position").columns) == COLUMNS
    assert feature_key(w.features[4], "stem", "word") is None
    assert feature_key(w.features[3], "stem_segment", "word") == "drums_T1"
    with pytest.raises(ValueError):
        aggregate([w], "instrument")


def test_mismatched_class_names():
    a = _corpus()[0]
    b = _corpus()[1]
    b.class_names = ["x", "y", "z"]
    with pytest.raises(ValueError, match="class_names"):
        aggregate([a, b], "stem")


def test_deterministic_order_ties_by_name():
    s = _exp("s", [0.9, 0.1, 0.0], [], {0: [0.25, 0.25, 0.25, 0.25]})
    df = aggregate([s], "stem_segment")
    assert df["feature"].tolist() == ["drums_T0", "drums_T1", "vocals_T0", "vocals_T1"]
    assert aggregate([s], "stem_segment").equals(df)


def test_write_tables_and_plots(tmp_path):
    tables = aggregate_all(_corpus())
    paths = write_tables(tables, tmp_path / "out")
    assert [p.name for p in paths] == [f"global_{r}.csv" for r in ROLLUPS]
    for p in paths:
        df = pd.read_csv(p, keep_default_na=False)
        assert list(df.columns) == COLUMNS
        assert len(df) == len(tables[p.stem.removeprefix("global_")])
    pngs = plot_global(tables, tmp_path / "out", importance="hw_importance", top_k=2)
    assert {p.name for p in pngs} == {"global_heatmap_hw_importance.png",
                                      "global_top_audio.png", "global_top_lyrics.png"}
    for p in pngs:
        assert p.exists() and p.stat().st_size > 0
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # no temporary files left behind
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    # empty tables still give (placeholder) figures
    empty = {r: df.iloc[0:0] for r, df in tables.items()}
    for p in plot_global(empty, tmp_path / "empty", importance="lime_importance"):
        assert p.stat().st_size > 0
    with pytest.raises(ValueError):
        plot_global(tables, tmp_path, importance="weight")


def test_aggregate_dir(tmp_path):
    paths = []
    for exp in _corpus():
        paths.append(exp.save_json(tmp_path / "exp" / f"{exp.song_id}.json"))
    loaded = load_explanations(paths)
    assert [e.song_id for e in loaded] == ["A", "B", "C", "D"]
    summary = write_global(paths, tmp_path / "global")
    assert summary["n_songs"] == 4 and summary["n_songs_used"] == 3
    assert summary["skipped"] == ["D"]
    assert summary["n_songs_per_class"] == {"pop": 2, "rock": 1, "jazz": 0}
    for f in summary["files"]:
        assert (tmp_path / "global" / f.split("/")[-1]).stat().st_size > 0
    assert len(summary["files"]) == len(ROLLUPS) + 1 + 3 + 1 + 1  # + modality csv, png
    saved = json.loads((tmp_path / "global" / "global_summary.json").read_text())
    assert saved["n_songs_per_class"] == summary["n_songs_per_class"]
    # the tables from JSON round-tripped explanations equal those from the objects
    df = pd.read_csv(tmp_path / "global" / "global_stem_segment.csv")
    ref = aggregate(_corpus(), "stem_segment")
    assert df["feature"].tolist() == ref["feature"].tolist()
    np.testing.assert_allclose(df["hw_importance"], ref["hw_importance"], rtol=1e-9)
