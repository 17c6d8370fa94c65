"""The per-song explanation page (musiclime.report.page), opened in a real headless Chromium.

The song (conftest ``write_song``): 8 s at 22050 Hz, a pure 880 Hz tone only in ``other``
during segment 3 (2.4-3.2 s) and the keyword on one lyric line; ``ToneKeywordClassifier``
looks only at those two, so ``other_T3`` and the keyword line are the top features.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``make system-deps``);
it is skipped, saying so, only where they are not installed. Set ``MUSICLIME_SCREENSHOTS`` to a
folder to keep the page's screenshot.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import (
    KEYWORD,
    KEYWORD_LINE,
    TONE_HZ,
    TONE_REFERENCE_ENERGY,
    audio_state,
    needs_chromium,
    write_song,
)

from musiclime.core.explainer import ExplainerConfig, MusicLIME, load_song
from musiclime.core.explanation import Explanation
from musiclime.io.audio import resample
from musiclime.models.separation import OracleSeparator
from musiclime.models.whitebox import ToneKeywordClassifier
from musiclime.report import render_explanation_page
from musiclime.report.explanation_files import write_explanation_files
from musiclime.report.listen import listenable_audio, top_audio_components
from musiclime.report.page import NEGATIVE_RGB, POSITIVE_RGB

NUM_SAMPLES = 400


def _explain(song, **cfg):
    start, end = song.tone_window
    clf = ToneKeywordClassifier(sample_rate=song.sample_rate, tone_hz=TONE_HZ, start=start,
                                end=end, keyword=KEYWORD,
                                reference_energy=TONE_REFERENCE_ENERGY)
    config = ExplainerConfig(num_samples=NUM_SAMPLES, seed=0, **cfg)
    s = load_song(song.audio_path, song.lyrics_path, OracleSeparator(), song.sample_rate,
                  config, stems_dir=song.stems_dir)
    return MusicLIME(clf, config, progress=False).explain(s), s


@pytest.fixture(scope="module")
def explained(song):
    return _explain(song)


@pytest.fixture(scope="module")
def files(explained, tmp_path_factory):
    exp, s = explained
    return write_explanation_files(exp, s, tmp_path_factory.mktemp("page"), listen_top_k=3)


# --- without a browser ------------------------------------------------------------------------
def _clips(page: str) -> dict[str, bytes]:
    return {m.group(1): base64.b64decode(m.group(3)) for m in re.finditer(
        r'<audio preload="auto" data-clip="([^"]+)" src="data:audio/(ogg|wav);base64,([^"]+)"',
        page)}


def test_page_is_written_with_the_other_files_and_is_self_contained(files, explained):
    exp, s = explained
    assert files.page == files.json.parent / "explanation.html"
    page = files.page.read_text(encoding="utf-8")
    # nothing is fetched: every src/href is a data URI or an in-page anchor
    refs = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), refs
    assert "<script src" not in page and "stylesheet" not in page
    clips = _clips(page)
    assert set(clips) == {"stem-0", "stem-1", "stem-2", "stem-3", "mix", "topk"}
    for name, data in clips.items():
        y, rate = sf.read(io.BytesIO(data), dtype="float32")
        assert rate == 16000, name  # min(song rate, 16 kHz), mono
        assert y.ndim == 1
    # 8 s song: four stems + mix + top-k as Ogg Vorbis, well under a megabyte
    assert files.page.stat().st_size < 400_000
    # one play button per heatmap cell and per stem row
    assert page.count('data-clip="stem-') >= 40 + 4


def test_wav_clips_are_the_stems_and_the_top_k_sum(explained):
    """With ``codec="wav"`` the clips decode to exactly what they should hold (16-bit)."""
    exp, s = explained
    clips = _clips(render_explanation_page(exp, s, codec="wav", audio_rate=22050))
    fac = s.audio
    for i in range(4):
        y, rate = sf.read(io.BytesIO(clips[f"stem-{i}"]), dtype="float32")
        assert rate == 22050
        np.testing.assert_allclose(y, fac.stems[i], atol=1 / 32767 + 1e-6)
    top = top_audio_components(exp, 3)
    a = min(fac.component_info(c)[2] for c in top)
    b = max(fac.component_info(c)[3] for c in top)
    y, _ = sf.read(io.BytesIO(clips["topk"]), dtype="float32")
    np.testing.assert_allclose(y, listenable_audio(exp, fac, 3)[a:b], atol=1 / 32767 + 1e-6)
    # a lower page rate resamples
    y16, rate = sf.read(io.BytesIO(_clips(render_explanation_page(
        exp, s, codec="wav"))["stem-3"]), dtype="float32")
    assert rate == 16000
    np.testing.assert_allclose(y16, resample(fac.stems[3], 22050, 16000), atol=1e-4)


def _weighted(page: str) -> list[tuple[float, str, str]]:
    """(weight, background, text) of every lyric unit element."""
    return [(float(w), bg, text) for w, bg, text in re.findall(
        r'data-unit="\d+" data-weight="([^"]+)" style="background:([^;]+);[^"]*" '
        r'title="[^"]*">(?:<span class="lw">[^<]*</span>)?([^<]*)<', page)]


def test_lyrics_are_highlighted_by_weight_word_units(tmp_path):
    song = write_song(tmp_path / "song", seconds=4.0, tone_segment=6)
    exp, s = _explain(song, lyrics_unit="word")
    page = render_explanation_page(exp, s)
    units = _weighted(page)
    # every word of the sung text is a highlighted span, in the order of the text
    words = [w for line in s.lyrics.text.split("\n") for w in re.findall(r"\w+", line)]
    assert [t for _, _, t in units] == words
    vmax = max(abs(w) for w in exp.weights().values())
    seen = set()
    for w, bg, text in units:
        rgb = POSITIVE_RGB if w > 0 else NEGATIVE_RGB
        assert bg == f"rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {abs(w) / vmax:.3f})", (text, w, bg)
        seen.add(np.sign(w))
    assert seen == {-1.0, 1.0}  # both colours occur
    robot = [bg for _, bg, t in units if t == KEYWORD]
    assert robot == [f"rgba({POSITIVE_RGB[0]}, {POSITIVE_RGB[1]}, {POSITIVE_RGB[2]}, "
                     f"{exp.weights()[exp.features.n_audio + s.lyrics.units.index(KEYWORD)] / vmax:.3f})"]


def test_page_from_the_json_alone_has_no_audio(files):
    exp = Explanation.load(files.json)
    page = render_explanation_page(exp)
    assert "<audio" not in page and 'class="play"' not in page
    assert "no audio on this page" in page
    assert [t for _, _, t in _weighted(page)] == [f.name for f in exp.features.features
                                                  if f.kind == "lyrics"]


def test_top_features_show_their_intervals_and_top_k_stability(explained):
    """Every top feature has its 90% interval (a line over the bar and the numbers); the two
    features the classifier reads are not faded, features whose interval crosses 0 are; the
    top-5 carry their probability of staying there. A record without uncertainty has none."""
    exp, s = explained
    page = render_explanation_page(exp, s)
    table = page[page.index('id="top-features"'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr( class=\"crosses-zero\"[^>]*)?><td class=\"num\">(\d+)</td>"
                      r".*?</tr>", table)
    assert len(rows) == 10 and table.count('class="ci"') == 10
    interval = exp.weight_uncertainty()
    for (faded, _), (idx, _) in zip(rows, exp.ranked()[:10], strict=True):
        lo, hi = interval[idx]["interval90"]
        assert bool(faded) == (lo <= 0 <= hi)
    assert not rows[0][0] and not rows[1][0] and rows[-1][0]  # tone and keyword stand out
    assert "P(top-5)" in table and table.count("</td><td>") >= 2
    old = Explanation.from_dict({**exp.to_dict()})
    old.uncertainty = {}
    assert 'class="ci"' not in render_explanation_page(old)


# --- in a real headless Chromium --------------------------------------------------------------
@needs_chromium
def test_page_in_headless_chromium(files, explained, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    exp, s = explained
    browser.get(files.page.as_uri())
    assert browser.title == f"{exp.song_id}: MusicLIME explanation"
    wait = WebDriverWait(browser, 10, poll_frequency=0.02)

    # the top features are listed and visible, by name
    top_name, _ = exp.top_features(k=1)[0]
    assert top_name == KEYWORD_LINE
    names = {e.text: e for e in browser.find_elements(By.CSS_SELECTOR, "#top-features td.feature")}
    assert names[KEYWORD_LINE].is_displayed() and names["other_T3"].is_displayed()
    # prediction, R², kernel, num_samples, settings are on the page in words
    body = browser.find_element(By.TAG_NAME, "body").text
    fit = exp.fits[0]
    for text in (f"{exp.prediction[0]:.4f}", f"{fit.score:.6g}", exp.kernel["formula"],
                 f"{exp.kernel['effective_samples']:.1f} of {NUM_SAMPLES}", "kernel_width",
                 "ridge_alpha", "num_samples", "modality"):
        assert text in body, text
    # the keyword line is red at full strength (it has the largest |weight|)
    line = browser.find_element(By.CSS_SELECTOR, ".lyrics .line[data-unit='1']")
    assert KEYWORD_LINE in line.text
    assert line.value_of_css_property("background-color") == "rgba(178, 24, 43, 1)"

    # clicking the heatmap cell of other_T3 plays the 'other' stem from 2.4 s and stops at 3.2 s
    cell = browser.find_element(By.CSS_SELECTOR, "#heatmap td.cell[data-feature='other_T3']")
    other = f"stem-{exp.features.stems.index('other')}"
    wait.until(lambda d: audio_state(d, other)["ready"] >= 1)
    cell.click()
    wait.until(lambda d: not audio_state(d, other)["paused"])
    first = audio_state(browser, other)
    wait.until(lambda d: audio_state(d, other)["time"] > first["time"] + 0.1)  # it advances
    assert 2.4 <= first["time"] < 3.2
    assert browser.execute_script("return window.musiclimePlaying") == other
    wait.until(lambda d: audio_state(d, other)["paused"])  # and stops at the segment's end
    assert 3.2 <= audio_state(browser, other)["time"] < 3.45

    # "play the top-k" plays the top-k clip
    browser.find_element(By.ID, "play-topk").click()
    wait.until(lambda d: not audio_state(d, "topk")["paused"]
               and audio_state(d, "topk")["time"] > 0.05)
    assert browser.execute_script("return window.musiclimePlays.map(p => p.clip)") == \
        [other, "topk"]
    browser.find_element(By.ID, "stop").click()
    wait.until(lambda d: audio_state(d, "topk")["paused"])

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1300, height + 40)
    browser.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "explanation_page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot of the explanation page: {shot}")
    if os.environ.get("MUSICLIME_SCREENSHOTS"):
        keep = Path(os.environ["MUSICLIME_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep / shot.name)
        print(f"kept a copy: {keep / shot.name}")


@needs_chromium
def test_error_bars_render_in_chromium(files, explained, browser):
    """The interval lines over the weight bars are drawn (visible, with a width), and rows whose
    interval crosses 0 are faded."""
    from selenium.webdriver.common.by import By

    exp, _ = explained
    browser.get(files.page.as_uri())
    bars = browser.find_elements(By.CSS_SELECTOR, "#top-features td.wbar span.ci")
    assert len(bars) == 10
    assert all(b.is_displayed() and b.size["width"] >= 1 and b.size["height"] >= 8 for b in bars)
    assert bars[0].value_of_css_property("border-left-color") == "rgba(34, 34, 34, 1)"
    faded = browser.find_elements(By.CSS_SELECTOR, "#top-features tr.crosses-zero td")
    assert faded and all(td.value_of_css_property("opacity") == "0.45" for td in faded)
    first = browser.find_element(By.CSS_SELECTOR, "#top-features tbody tr td")
    assert first.value_of_css_property("opacity") == "1"


@needs_chromium
def test_modality_bar_renders_in_chromium(files, explained, browser):
    """The modality bar is drawn above the prediction, each part as wide as its share: the tone
    and the keyword add up on the logit, so audio alone and lyrics alone each fill half."""
    from selenium.webdriver.common.by import By

    exp, _ = explained
    browser.get(files.page.as_uri())
    bar = browser.find_element(By.CSS_SELECTOR, "#modality .mbar")
    parts = {p.get_attribute("data-part"): p.size["width"]
             for p in bar.find_elements(By.CSS_SELECTOR, "span[data-part]")}
    expected = exp.modality_values().parts()
    assert expected["audio"] == pytest.approx(0.5, abs=0.02)
    for part, share in expected.items():
        assert parts[part] == pytest.approx(share * bar.size["width"], abs=2), part
    table = browser.find_element(By.ID, "prediction")
    assert bar.location["y"] < table.location["y"]
