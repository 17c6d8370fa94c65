"""The hard planted corpus (musiclime_demo.hard) and its cue detector (musiclime.models.cues):
real renders, real files read back with musiclime's own loaders, a real `musiclime explain`."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musiclime.cli import main
from musiclime.config import build_classifier, compose_config
from musiclime.core.explainer import ExplainerConfig, load_song
from musiclime.core.explanation import Explanation
from musiclime.core.factorization import segment_bounds
from musiclime.core.lyrics import LineUnits
from musiclime.io.audio import load_audio
from musiclime.metrics.evaluate import MetricSettings, evaluate_explanation
from musiclime.metrics.evidence import audio_evidence
from musiclime.models.cues import TONE_WEIGHTS, TONES, CueDetectorClassifier
from musiclime.models.separation import OracleSeparator
from musiclime_demo.corpus import STEMS
from musiclime_demo.hard import generate_hard_corpus, render_hard_song
from musiclime_demo.hard_check import problems_of
from musiclime_demo.hard_plan import Event, HardCorpusError

RATE = 22050  # the cue detector's rate: musiclime decodes and composes at it


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two 20 s songs: song 0's pair is two stems, song 1's a stem and a lyric line."""
    out = tmp_path_factory.mktemp("hard")
    generate_hard_corpus(out, n_short=2, n_long=0, seed=0)
    return out


def evidence_of(corpus: Path, song: str) -> dict:
    return json.loads((corpus / "songs" / f"{song}.evidence.json").read_text())


def song_files(corpus: Path, song: str) -> list[Path]:
    songs = corpus / "songs"
    return sorted([*songs.glob(f"{song}.*.*"), *songs.glob(f"{song}.wav"),
                   *songs.glob(f"{song}.txt"), *(songs / f"{song}.stems").glob("*.wav")])


def test_same_seed_same_files_other_seed_other_song(corpus, tmp_path):
    generate_hard_corpus(tmp_path / "again", n_short=1, n_long=0, seed=0)
    first, again = song_files(corpus, "hard_0000"), song_files(tmp_path / "again", "hard_0000")
    assert len(first) == 7 and [p.name for p in first] == [p.name for p in again]
    for a, b in zip(first, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    other, _ = render_hard_song(0, seed=1)
    mix, _ = sf.read(corpus / "songs" / "hard_0000.wav", dtype="float32")
    assert not np.array_equal(other.mix, mix)


def test_files_and_lyrics_read_back_as_annotated(corpus):
    rows = (corpus / "manifest.csv").read_text().splitlines()
    assert rows[0].startswith("song_id,split,label") and len(rows) == 3
    for song in ("hard_0000", "hard_0001"):
        ev = evidence_of(corpus, song)
        stems = {s: sf.read(corpus / "songs" / f"{song}.stems" / f"{s}.wav",
                            dtype="float32")[0] for s in STEMS}
        mix, sr = sf.read(corpus / "songs" / f"{song}.wav", dtype="float32")
        assert sr == 44100 and np.array_equal(mix, sum(stems.values()))  # exact, 16-bit grid
        units = LineUnits((corpus / "songs" / f"{song}.txt").read_text()).units
        assert units == [s["text"] for s in ev["line_spans"]]
        for entry in ev["lyrics"] + [d for d in ev["decoys"] if "unit_index" in d]:
            assert units[entry["unit_index"]] == entry["text"]
        keywords = ("neon", "chrome", "signal")
        cue_lines = {e["unit_index"] for e in ev["lyrics"]}
        for i, line in enumerate(units):  # a keyword is on its cue line and nowhere else
            has = any(re.search(rf"\b{k}\b", line) for k in keywords)
            assert has == (i in cue_lines), line


def test_off_grid_spans_straddle_the_default_grid(corpus):
    for song in ("hard_0000", "hard_0001"):
        ev = evidence_of(corpus, song)
        frames = sf.info(corpus / "songs" / f"{song}.wav").frames
        n = int(round(frames * RATE / 44100))
        bounds = [a / RATE for a, _ in segment_bounds(n, RATE, 10)][1:]
        seg = bounds[0]
        assert ev["grid"]["boundaries"][1:-1] == pytest.approx(bounds, abs=1e-3)
        spans = [a for a in ev["audio"] if a["kind"] == "off_grid"]
        assert spans
        for a in spans:
            length = a["end"] - a["start"]
            assert length < 0.5 * seg
            inside = [b for b in bounds if a["start"] < b < a["end"]]
            assert len(inside) == 1, a  # straddles exactly one boundary
            b = inside[0]
            assert min(b - a["start"], a["end"] - b) >= 0.25 * length
        # decoys share no time with a cue, and no default-grid segment with a cue of any stem
        # (a separator leaks a cue into the other stems of its segment)
        cues = [(a["start"], a["end"]) for a in ev["audio"]]
        for d in (d for d in ev["decoys"] if "stem" in d):
            assert all(d["end"] <= s or d["start"] >= e for s, e in cues)
            cue_segments = {t for s, e in cues for t in range(10)
                            if min(e, (t + 1) * seg) > max(s, t * seg)}
            assert not any(t in cue_segments for t in range(10)
                           if min(d["end"], (t + 1) * seg) > max(d["start"], t * seg))


def test_interacting_pairs_are_annotated_as_pairs(corpus):
    flavours = set()
    for song in ("hard_0000", "hard_0001"):
        ev = evidence_of(corpus, song)
        assert len(ev["pairs"]) == 1
        pair = ev["pairs"][0]
        members = [e for e in ev["audio"] + ev["lyrics"] if e.get("pair") == pair["pair"]]
        assert len(members) == len(pair["members"]) == 2
        assert all(m["kind"] == "interacting" for m in members)
        audio = [m for m in members if "stem" in m]
        if len(audio) == 2:  # two stems over one span
            flavours.add("stems")
            assert audio[0]["stem"] != audio[1]["stem"]
            assert (audio[0]["start"], audio[0]["end"]) == (audio[1]["start"], audio[1]["end"])
            assert {m["cue"] for m in audio} == {"pair_a", "pair_b"}
        else:  # a stem and a lyric line
            flavours.add("lyric")
            line = next(m for m in members if "unit_index" in m)
            assert audio[0]["cue"] == "gated" and "signal" in line["text"]
        for m in members:  # removing one member removes the pair; alone it counts for ~nothing
            assert m["effect"]["logit"] == pytest.approx(pair["effect"]["logit"], abs=0.05)
            assert abs(m["effect"]["alone_logit"]) < 0.05
    assert flavours == {"stems", "lyric"}


def _logit(clf, stems: dict[str, np.ndarray], lines: list[str], cut=None, drop=()) -> float:
    """The detector's logit for the song's stems (``cut``: silence ``(stem, start, end)``
    spans, as a LIME mask silences a stem) and its lines but those in ``drop``."""
    stems = {s: x.copy() for s, x in stems.items()}
    for stem, start, end in cut or ():
        stems[stem][max(0, int((start - 0.05) * RATE)):int((end + 0.05) * RATE)] = 0
    text = "\n".join(line for i, line in enumerate(lines) if i not in drop)
    audio = torch.from_numpy(sum(stems.values()).astype(np.float64)[None])
    return float(clf.logit([text], audio)[0])


@pytest.mark.parametrize("song", ["hard_0000", "hard_0001"])
def test_the_detector_responds_to_each_cue_by_its_planted_effect_and_not_to_decoys(corpus,
                                                                                   song):
    clf = build_classifier(compose_config(["model=cues"]))
    ev = evidence_of(corpus, song)
    stems = {s: load_audio(corpus / "songs" / f"{song}.stems" / f"{s}.wav", RATE)[0]
             for s in STEMS}
    lines = [s["text"] for s in ev["line_spans"]]
    full = _logit(clf, stems, lines)
    assert 1 / (1 + math.exp(-full)) == pytest.approx(ev["check"]["p_full"], abs=1e-3)
    for a in ev["audio"]:
        planned = a["effect"]["planned_logit"]
        drop = full - _logit(clf, stems, lines, [(a["stem"], a["start"], a["end"])])
        assert drop == pytest.approx(planned, abs=0.05 * planned + 0.03), a
    for line in ev["lyrics"]:  # a keyword counts exactly; a gate by its tone's energy
        planned = line["effect"]["planned_logit"]
        drop = full - _logit(clf, stems, lines, drop={line["unit_index"]})
        tol = 1e-9 if line["kind"] == "weak" else 0.05 * planned + 0.03
        assert drop == pytest.approx(planned, abs=tol), line
    for d in ev["decoys"]:
        cut = [(d["stem"], d["start"], d["end"])] if "stem" in d else []
        drop = full - _logit(clf, stems, lines, cut, {d.get("unit_index")})
        assert abs(drop) < 0.01, d
    weak = [a for a in ev["audio"] + ev["lyrics"] if a["kind"] == "weak"]
    assert weak and all(0.005 <= w["effect"]["prob"] <= 0.1 for w in weak)
    strong = next(a for a in ev["audio"] if a["kind"] == "off_grid")
    assert strong["effect"]["prob"] > 0.2


def test_a_pair_counts_only_together(corpus):
    clf = CueDetectorClassifier()
    ev = evidence_of(corpus, "hard_0000")
    stems = {s: load_audio(corpus / "songs" / "hard_0000.stems" / f"{s}.wav", RATE)[0]
             for s in STEMS}
    lines = [s["text"] for s in ev["line_spans"]]
    a, b = [(m["stem"], m["start"], m["end"]) for m in ev["audio"] if m.get("pair")]
    full, without_a, without_b = (_logit(clf, stems, lines, cut) for cut in ([], [a], [b]))
    without_both = _logit(clf, stems, lines, [a, b])
    planned = ev["pairs"][0]["effect"]["planned_logit"]
    assert full - without_a == pytest.approx(planned, rel=0.05, abs=0.03)
    assert full - without_b == pytest.approx(planned, rel=0.05, abs=0.03)
    assert abs(without_a - without_both) < 0.03 and abs(without_b - without_both) < 0.03


def test_the_model_config_builds_the_detector_the_corpus_was_checked_with():
    built = build_classifier(compose_config(["model=cues"]))
    default = CueDetectorClassifier()
    assert isinstance(built, CueDetectorClassifier) and built.sample_rate == RATE
    for key in ("tones", "tone_weights", "pairs", "keywords", "gates", "bias",
                "reference_amplitude", "hop"):
        assert getattr(built, key) == getattr(default, key), key


def test_a_cue_that_misses_its_effect_or_a_decoy_that_counts_fails_loudly():
    decoy = Event("decoy", "noise", None, "drums", 1.0, 2.0, effect={"logit": 0.3, "prob": 0.05})
    weak = Event("weak", "weak", "tone:weak", "bass", 3.0, 4.0, planned=0.3,
                 effect={"logit": 0.1, "prob": 0.02})
    problems = problems_of([decoy, weak], {"background_logit": 0.0})
    assert len(problems) == 2
    assert problems[0].startswith("decoy noise in drums") and "planned +0.3000" in problems[1]
    # a detector in the decoys' noise band hears them (and the music): the check refuses it
    hears_noise = CueDetectorClassifier(tones={**TONES, "trap": 1000.0},
                                        tone_weights={**TONE_WEIGHTS, "trap": 1.0})
    with pytest.raises(HardCorpusError, match="decoy|music"):
        render_hard_song(0, seed=0, classifier=hears_noise)


def test_explain_on_a_hard_song_localises_the_cues_and_skips_the_decoys(corpus, tmp_path):
    song = corpus / "songs" / "hard_0000"
    out = tmp_path / "explain"
    rc = main(["explain", f"{song}.wav", "--lyrics", f"{song}.txt", "--out", str(out),
               "--quiet", "separator=oracle", "model=cues", "explainer.num_samples=300"])
    assert rc == 0
    exp = Explanation.load(out / "explanation.json")
    assert exp.class_names[exp.predicted_label] == "ai"
    loaded = load_song(f"{song}.wav", f"{song}.txt", OracleSeparator(), RATE, ExplainerConfig(),
                       stems_dir=f"{song}.stems")
    ev = evidence_of(corpus, "hard_0000")
    settings = MetricSettings(random_orderings=2, curve_points=5, sufficiency_ks=(5,),
                              heldout_masks=20, stability_seeds=0)
    metrics = evaluate_explanation(exp, loaded, CueDetectorClassifier(), evidence=ev,
                                   settings=settings)
    assert metrics["localisation_pointing"] == 1.0
    assert metrics["localisation_auc"] > 0.8 and metrics["evidence_auroc_audio"] > 0.9
    weights = exp.fits[exp.predicted_label].weights
    top5 = {int(exp.columns[i]) for i in np.argsort(-np.asarray(weights))[:5]}
    decoys = audio_evidence(exp.features, [d for d in ev["decoys"] if "stem" in d])
    assert decoys and not top5 & decoys


@pytest.mark.slow
def test_a_song_of_real_length_explained_with_40_segments(tmp_path):
    generate_hard_corpus(tmp_path / "long", n_short=0, n_long=1, seed=0)
    song = tmp_path / "long" / "songs" / "hard_0000"
    ev = json.loads(Path(f"{song}.evidence.json").read_text())
    assert 180 <= ev["duration"] <= 240 and len(ev["audio"]) >= 6
    out = tmp_path / "explain"
    rc = main(["explain", f"{song}.wav", "--lyrics", f"{song}.txt", "--out", str(out),
               "--quiet", "separator=oracle", "model=cues", "explainer.num_samples=300",
               "explainer.temporal_segments=40", "explainer.modality=audio"])
    assert rc == 0
    exp = Explanation.load(out / "explanation.json")
    assert len(exp.columns) == 160
    from musiclime.metrics.localisation import localisation

    loc = localisation(exp, ev)
    assert loc["localisation_pointing"] == 1.0 and loc["localisation_auc"] > 0.7
