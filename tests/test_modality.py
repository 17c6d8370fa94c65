"""The modality game (musiclime.core.modality): exact Shapley values of audio and lyrics and their
interaction, from four classifier rows, on white-box classifiers whose answer is known by
construction (GroundTruthGame run as a real classifier on a real composed song)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from musiclime import ExplainerConfig, MusicLIME, factorize
from musiclime.core.aggregate import modality_table
from musiclime.core.explainer import fit_explanation, make_masks, predict_song
from musiclime.core.explanation import Explanation
from musiclime.core.inference import Predictions
from musiclime.core.masks import MaskLayout
from musiclime.core.modality import (
    COALITIONS,
    ModalityValues,
    coalition_masks,
    reusable_rows,
)
from musiclime.models.groundtruth import GameClassifier, GroundTruthGame, ThresholdGroup
from musiclime.report.global_plots import write_global
from musiclime.report.page import render_explanation_page
from musiclime.tracking.log import song_metrics

RATE = 4000
N_AUDIO, N_LYRICS = 4, 4  # one segment x four stems, four lyric lines
LYRIC_COLUMN = N_AUDIO + 1  # "second line"
AUDIO_COLUMN = 2  # bass_T0


@pytest.fixture(scope="module")
def wb_song():
    rng = np.random.default_rng(0)
    stems = {s: (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32)
             for s in ("vocals", "drums", "bass", "other")}
    mix = np.sum(list(stems.values()), axis=0).astype(np.float32)
    lyrics = "first line\nsecond line\n[Chorus]\nthird line\nfourth line"
    s = factorize(mix, stems, RATE, lyrics, ExplainerConfig(temporal_segments=1), song_id="wb")
    assert (s.feature_table.n_audio, s.feature_table.n_lyrics) == (N_AUDIO, N_LYRICS)
    return s


class CountingClassifier(GameClassifier):
    """A GameClassifier that counts the rows it is asked to predict."""

    def __init__(self, song, game):
        super().__init__(song, game)
        self.rows = 0

    def predict_proba(self, lyrics, audio):
        self.rows += len(lyrics)
        return super().predict_proba(lyrics, audio)


def _game(coef: dict[int, float] | None = None, groups=(), bias: float = 0.1):
    c = np.zeros(N_AUDIO + N_LYRICS)
    for j, a in (coef or {}).items():
        c[j] = a
    return GroundTruthGame(coef=c, bias=bias, groups=list(groups))


#: white-box classifiers and their game by construction: (phi_audio, phi_lyrics, interaction)
WHITE_BOXES = {
    "lyrics only": (_game({LYRIC_COLUMN: 0.6}), (0.0, 0.6, 0.0)),
    "audio only": (_game({AUDIO_COLUMN: 0.5}), (0.5, 0.0, 0.0)),
    # an AND of one stem-segment and one lyric line: only both together move the output
    "both together": (_game(groups=[ThresholdGroup((AUDIO_COLUMN, LYRIC_COLUMN), 2, 0.7)]),
                      (0.35, 0.35, 0.7)),
    # all three at once: additive parts plus the AND, each gain split as Shapley says
    "mixed": (_game({AUDIO_COLUMN: 0.2, LYRIC_COLUMN: -0.1},
                    [ThresholdGroup((0, 6), 2, 0.4)]), (0.4, 0.1, 0.4)),
}


def _explain(song, game, **cfg):
    config = ExplainerConfig(temporal_segments=1, num_samples=cfg.pop("num_samples", 40),
                             seed=0, **cfg)
    clf = CountingClassifier(song, game)
    return MusicLIME(clf, config, progress=False).explain(song), clf


# --- the formulas ------------------------------------------------------------------------------
def test_shapley_values_interaction_and_shares_by_hand():
    v = ModalityValues(full=0.9, audio=0.6, lyrics=0.3, none=0.1)
    assert v.shapley_audio == pytest.approx(0.5 * ((0.6 - 0.1) + (0.9 - 0.3)))
    assert v.shapley_lyrics == pytest.approx(0.5 * ((0.3 - 0.1) + (0.9 - 0.6)))
    assert v.shapley_audio + v.shapley_lyrics == pytest.approx(0.9 - 0.1)  # efficiency
    assert v.interaction == pytest.approx(0.9 - 0.6 - 0.3 + 0.1)
    assert v.share_audio == pytest.approx(0.55 / 0.8) and v.share_lyrics == pytest.approx(
        0.25 / 0.8)
    assert v.parts() == pytest.approx({"audio": 0.5 / 0.8, "lyrics": 0.2 / 0.8,
                                       "interaction": 0.1 / 0.8})
    # negative Shapley values count by their size (MM-SHAP)
    neg = ModalityValues(full=0.2, audio=0.2, lyrics=0.6, none=0.6)
    assert neg.shapley_audio == pytest.approx(-0.4) and neg.share_audio == pytest.approx(1.0)
    # nothing moves: no share to give (NaN, and null in the JSON), values exactly 0
    flat = ModalityValues(0.3, 0.3, 0.3, 0.3)
    assert math.isnan(flat.share_audio) and math.isnan(flat.share_interaction)
    assert flat.as_dict()["share_audio"] is None and flat.as_dict()["interaction"] == 0.0


def test_coalition_masks_and_the_rows_each_layout_can_reuse():
    both = MaskLayout(2, 1, "both")
    assert coalition_masks(both).tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 1], [0, 0, 0]]
    masks = np.array([[1, 1, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0]], dtype=np.uint8)
    assert reusable_rows(masks, both) == [0, 3, None, 2]
    # modality=audio keeps the lyrics whole: only the coalitions with lyrics on are mask rows
    audio = MaskLayout(2, 1, "audio")
    assert reusable_rows(np.array([[1, 1], [0, 0]]), audio) == [0, None, 1, None]
    lyrical = MaskLayout(2, 1, "lyrical")
    assert reusable_rows(np.array([[1], [0]]), lyrical) == [0, 1, None, None]
    # no lyric units: lyrics on and off are the same input
    assert reusable_rows(np.array([[1, 1], [0, 0]]), MaskLayout(2, 0, "both")) == [0, 0, 1, 1]


# --- exact on white boxes ----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(WHITE_BOXES))
def test_exact_on_white_box_classifiers(wb_song, name):
    song = wb_song
    game, (phi_a, phi_l, inter) = WHITE_BOXES[name]
    exp, _ = _explain(song, game)
    v = exp.modality_values(0)
    full = game(np.ones((1, 8)))[0]
    assert (v.full, v.none) == pytest.approx((full, 0.1), abs=1e-12)
    assert v.full == exp.prediction[0]  # the explained prediction, read from the masks' row 0
    assert (v.shapley_audio, v.shapley_lyrics, v.interaction) == pytest.approx(
        (phi_a, phi_l, inter), abs=1e-12)
    shares = {"lyrics only": (0.0, 0.0), "audio only": (1.0, 0.0), "both together": (0.5, 1.0),
              "mixed": (0.8, 0.4 / 0.7)}[name]
    assert (v.share_audio, v.share_interaction) == pytest.approx(shares, abs=1e-12)
    # the other class's game is the mirror image
    other = exp.modality_values(1)
    assert other.shapley_audio == pytest.approx(-phi_a, abs=1e-12)
    metrics = song_metrics(exp)
    assert metrics["modality_share_audio"] == pytest.approx(shares[0], abs=1e-12)
    assert metrics["modality_interaction"] == pytest.approx(inter, abs=1e-12)


@pytest.mark.parametrize("modality", ["audio", "lyrical"])
def test_the_game_is_the_songs_whatever_the_explanation_perturbs(wb_song, modality):
    song = wb_song
    game, expected = WHITE_BOXES["mixed"]
    exp, clf = _explain(song, game, modality=modality)
    v = exp.modality_values(0)
    assert (v.shapley_audio, v.shapley_lyrics, v.interaction) == pytest.approx(expected,
                                                                                abs=1e-12)
    assert clf.rows <= exp.num_samples + 4


# --- cost: at most 4 rows, none where the masks hold them; the masks' predictions untouched -----
def test_at_most_four_extra_rows_and_the_fit_is_unchanged(wb_song):
    song = wb_song
    game, _ = WHITE_BOXES["mixed"]
    config = ExplainerConfig(temporal_segments=1, num_samples=40, seed=0)
    masks, layout = make_masks(song.feature_table, config)
    without, with_game = CountingClassifier(song, game), CountingClassifier(song, game)
    plain = predict_song(without, song, masks, layout, config, progress=False,
                         modality_game=False)
    played = predict_song(with_game, song, masks, layout, config, progress=False)
    assert plain.modality is None
    assert np.array_equal(plain.probs, played.probs)  # bit for bit: the game is not a mask row
    extra = with_game.rows - without.rows
    assert extra == played.modality.predicted_rows <= 4
    assert played.modality.rows[0] == 0  # the all-ones row is reused
    exp, _ = _explain(song, game)
    ref = fit_explanation(song.song_id, song.feature_table, layout, masks, plain.probs,
                          plain.class_names, config)
    assert np.array_equal(exp.fits[0].weights, ref.fits[0].weights)


@pytest.mark.parametrize(("sampler", "num_samples", "extra"),
                         [("paired", 40, 2), ("bernoulli", 256, 0)])
def test_rows_the_sampler_drew_are_reused(wb_song, sampler, num_samples, extra):
    """paired draws the all-zeros row second; 256 masks over 8 features enumerate them all."""
    song = wb_song
    game, _ = WHITE_BOXES["both together"]
    exp, clf = _explain(song, game, sampler=sampler, num_samples=num_samples)
    assert exp.modality_game.predicted_rows == extra
    assert clf.rows <= exp.num_samples + extra
    assert exp.modality_values(0).interaction == pytest.approx(0.7, abs=1e-12)


def test_num_samples_auto_plays_the_game_once(wb_song):
    game, expected = WHITE_BOXES["mixed"]
    exp, clf = _explain(wb_song, game, num_samples="auto", auto_block=16, auto_budget=64,
                        auto_top_k=3, auto_target=1.0)
    assert len(exp.params["auto"]["trace"]) > 1  # several blocks, one game
    assert clf.rows == exp.params["auto"]["calls"] + exp.modality_game.predicted_rows
    v = exp.modality_values(0)
    assert (v.shapley_audio, v.shapley_lyrics, v.interaction) == pytest.approx(expected,
                                                                                abs=1e-12)


# --- both doors: the predict stage's file carries the game to the fit stage -------------------
def test_the_predictions_file_carries_the_game_to_the_fit(wb_song, tmp_path):
    song = wb_song
    game, _ = WHITE_BOXES["both together"]
    config = ExplainerConfig(temporal_segments=1, num_samples=40, seed=0)
    masks, layout = make_masks(song.feature_table, config)
    preds = predict_song(GameClassifier(song, game), song, masks, layout, config,
                         progress=False)
    preds.save(tmp_path / "predict.npz")
    loaded = Predictions.load(tmp_path / "predict.npz")
    assert np.array_equal(loaded.modality.probs, preds.modality.probs)
    assert loaded.modality.rows == preds.modality.rows
    # what the workflow's fit stage does (stages.run_fit), without a classifier
    fitted = fit_explanation(song.song_id, song.feature_table, layout, masks, loaded.probs,
                             loaded.class_names, config, modality_game=loaded.modality)
    explained, _ = _explain(song, game)
    assert fitted.to_dict()["explanations"] == explained.to_dict()["explanations"]
    # an older predictions file (no game) still loads, and its explanation has none
    with np.load(tmp_path / "predict.npz") as z:
        old = {k: z[k] for k in z.files if not k.startswith("modality_")}
    np.savez(tmp_path / "old.npz", **old)
    assert Predictions.load(tmp_path / "old.npz").modality is None


def test_json_round_trip_and_old_records(wb_song, tmp_path):
    song = wb_song
    game, _ = WHITE_BOXES["mixed"]
    exp, _ = _explain(song, game, target="logit")
    path = exp.save_json(tmp_path / "explanation.json")
    data = json.loads(path.read_text())
    record = data["explanations"]["label_0"]["modality"]
    assert record["scale"] == "probability"
    assert record["shapley_audio"] == pytest.approx(0.4, abs=1e-12)
    assert set(record["values"]) == set(COALITIONS)
    assert record["logit"]["scale"] == "logit"  # the surrogate was fitted on the logit
    assert data["metadata"]["modality_game"]["mask_rows"][0] == 0
    back = Explanation.load(path)
    assert np.array_equal(back.modality_game.probs, exp.modality_game.probs)
    assert back.to_dict() == exp.to_dict()
    # a record written before the game existed
    del data["metadata"]["modality_game"]
    for entry in data["explanations"].values():
        del entry["modality"]
    old = Explanation.from_dict(data)
    assert old.modality_game is None and old.modality_values() is None
    assert "modality_share_audio" not in song_metrics(old)
    assert "no modality game" in render_explanation_page(old)


def test_page_shows_the_modality_bar(wb_song):
    song = wb_song
    game, _ = WHITE_BOXES["both together"]
    exp, _ = _explain(song, game)
    page = render_explanation_page(exp)
    bar = page[page.index('<div class="modality" id="modality">'):]
    bar = bar[:bar.index("</small></div>")]
    assert page.index('id="modality"') < page.index('id="prediction"')  # near the top
    assert 'data-part="interaction" style="width:100.00%' in bar
    assert 'data-part="audio" style="width:0.00%' in bar
    assert "audio +0.350 (share 50%)" in bar and "interaction +0.700" in bar


def test_global_modality_table_and_figure_per_class(wb_song, tmp_path):
    song = wb_song
    paths = []
    boxes = {**WHITE_BOXES, "weak lyrics": (_game({LYRIC_COLUMN: 0.3}, bias=0.05), None)}
    for name, (game, _) in boxes.items():
        exp, _ = _explain(song, game)
        exp.song_id = name.replace(" ", "_")
        paths.append(exp.save_json(tmp_path / "exp" / f"{exp.song_id}.json"))
    exps = [Explanation.load(p) for p in paths]
    table = modality_table(exps)
    assert table["class"].tolist() == ["target", "rest"]  # "weak lyrics" is predicted "rest"
    by_class = {c: [e for e in exps if e.predicted_label == i]
                for i, c in enumerate(exps[0].class_names)}
    for row in table.to_dict("records"):
        members = by_class[row["class"]]
        assert row["n_songs"] == len(members)
        assert row["interaction"] == pytest.approx(
            np.mean([e.modality_values().interaction for e in members]), abs=1e-12)
        assert row["share_audio"] == pytest.approx(
            np.mean([e.modality_values().share_audio for e in members]), abs=1e-12)
        parts = row["part_audio"] + row["part_lyrics"] + row["part_interaction"]
        assert parts == pytest.approx(1.0)
    summary = write_global(paths, tmp_path / "global")
    names = {p.rsplit("/", 1)[-1] for p in summary["files"]}
    assert {"global_modality.csv", "global_modality.png"} <= names
    assert (tmp_path / "global" / "global_modality.png").stat().st_size > 0


class SilenceIntolerant(GameClassifier):
    """NaN for an input with no lyrics and the audio all off (the game's ``none`` row; the masks
    below never draw it)."""

    def predict_proba(self, lyrics, audio):
        probs = super().predict_proba(lyrics, audio)
        silent = self.audio_masks(audio.numpy()).sum(axis=1) == 0
        probs[silent & (np.array([t.strip() for t in lyrics]) == "")] = np.nan
        return probs


def test_a_classifier_that_rejects_the_games_inputs_loses_only_the_game(wb_song, caplog):
    game, _ = WHITE_BOXES["mixed"]
    config = ExplainerConfig(temporal_segments=1, num_samples=40, seed=1)
    exp = MusicLIME(SilenceIntolerant(wb_song, game), config, progress=False).explain(wb_song)
    masks, _ = make_masks(wb_song.feature_table, config)
    assert masks.sum(axis=1).min() > 0
    assert exp.modality_game is None and exp.fits[0].weights.any()
    assert "no modality game" in caplog.text
