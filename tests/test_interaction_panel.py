"""The explanation page's interaction panel (musiclime.report.page_interactions), in a real
headless Chromium.

The song and classifier are conftest's (``explain_whitebox``): 8 s, ten 0.8 s segments, the
tone in ``other`` during segment 3 (2.4-3.2 s) and the keyword on lyric line 1. Most tests put
chosen records of the JSON schema on a real explanation (:func:`with_interactions`), one of each
kind with known values, so the ordering, bars and every kind's playback are checked exactly;
:func:`test_a_real_interaction_run_plays_its_top_pair` renders an explanation made with
``explainer.interactions`` on and clicks its top pair.
"""

from __future__ import annotations

import copy
import re

import pytest
from conftest import KEYWORD_LINE, LYRIC_LINES, audio_state, explain_whitebox, needs_chromium

from musiclime.core.explanation import Explanation
from musiclime.report import render_explanation_page
from musiclime.report.page_interactions import interaction_records

NUM_SAMPLES = 400
#: the pairs put on the explanation: (feature names, value); one of each kind, and an audio
#: pair in two segments (played one after the other)
PAIRS = [(("other_T3", KEYWORD_LINE), 0.12),  # audio x lyrics: the two pieces of evidence
         (("vocals_T3", "other_T3"), -0.03),  # audio x audio, one segment: together
         ((LYRIC_LINES[0], KEYWORD_LINE), 0.05),  # lyrics x lyrics: outlined, no audio
         (("bass_T0", "other_T3"), 0.01)]  # audio x audio, two segments: one then the other
GAME = {"estimator": "injected", "budget": 64, "seed": 0, "rows_reused": 12,
        "rows_predicted": 52}


def with_interactions(exp: Explanation, pairs=PAIRS, game=GAME) -> Explanation:
    """``exp`` with interaction records of the JSON schema for its explained label (what the
    page reads: :meth:`Explanation.to_dict`), from ``(feature names, value)`` pairs."""
    index = {f.name: f.index for f in exp.features.features}
    records = []
    for names, value in pairs:
        i, j = (index[n] for n in names)
        kinds = sorted(exp.features[k].kind for k in (i, j))
        records.append({"features": [i, j], "names": list(names), "value": value,
                        "kind": "×".join(kinds)})
    injected = copy.copy(exp)
    plain = Explanation.to_dict

    def to_dict(num_features: int = 10) -> dict:
        d = plain(injected, num_features)
        d["explanations"][f"label_{exp.predicted_label}"]["interactions"] = records
        if game is not None:
            d["metadata"]["interaction_game"] = game
        return d

    injected.to_dict = to_dict
    return injected


@pytest.fixture(scope="module")
def explained(song):
    exp, factorized, _ = explain_whitebox(song, num_samples=NUM_SAMPLES, seed=0)
    return exp, factorized


@pytest.fixture(scope="module")
def page(explained, tmp_path_factory):
    exp, factorized = explained
    path = tmp_path_factory.mktemp("panel") / "explanation.html"
    path.write_text(render_explanation_page(with_interactions(exp), factorized),
                    encoding="utf-8")
    return path


def _rows(html: str) -> list[tuple[str, str, str, str]]:
    """(kind, first feature, second feature, value) of every row of the panel."""
    panel = html[html.index('id="interaction-pairs"'):]
    panel = panel[:panel.index("</table>")]
    return re.findall(r'<tr data-pair="\d+" data-kind="[^"]+"><td class="num">\d+</td>'
                      r'<td>([^<]+)</td><td class="feature" data-kind="\w+">([^<]+) <small'
                      r'.*?<td class="feature" data-kind="\w+">([^<]+) <small.*?'
                      r'<td class="num">([^<]+)</td>', panel)


def test_panel_lists_the_pairs_by_absolute_value(explained, page):
    html = page.read_text(encoding="utf-8")
    assert _rows(html) == [
        ("audio×lyrics", "other_T3", KEYWORD_LINE, "+0.120"),
        ("lyrics×lyrics", LYRIC_LINES[0], KEYWORD_LINE, "+0.050"),
        ("audio×audio", "vocals_T3", "other_T3", "-0.030"),
        ("audio×audio", "bass_T0", "other_T3", "+0.010")]
    assert "estimator injected, budget 64, seed 0; 12 rows reused" in html
    # between the top features and the lyrics
    assert html.index('id="top-features"') < html.index('id="interactions"') \
        < html.index('id="lyrics"')
    # the largest value fills half the bar (red), the negative one points left (blue)
    assert 'style="left:50%;width:50.0%;background:rgba(178, 24, 43, 1.000)"' in html
    assert 'style="left:37.5%;width:12.5%;background:rgba(33, 102, 172, 0.250)"' in html


def test_without_interactions_there_is_no_panel(explained):
    """No records, or an empty list: the page is exactly the page without the panel (WAV
    clips: Ogg streams get a random serial number)."""
    exp, factorized = explained
    plain = render_explanation_page(exp, factorized, codec="wav")
    assert 'id="interactions"' not in plain and "button.pair" not in plain
    assert render_explanation_page(with_interactions(exp, pairs=[], game=None), factorized,
                                   codec="wav") == plain
    assert interaction_records(exp, exp.predicted_label) == ([], None)


def test_without_audio_lyric_pairs_still_highlight(explained):
    """A page without the song keeps the panel: lyric pairs outline their units; the audio
    pairs have no button (nothing to play)."""
    exp, _ = explained
    html = render_explanation_page(with_interactions(exp))
    buttons = re.findall(r'<button class="pair" data-pair="(\d+)" data-steps="([^"]*)" '
                         r'data-units="([^"]*)"', html)
    assert buttons == [("1", "[]", "1"), ("2", "[]", "0 1")]


def _playing(driver, css: str) -> list[str]:
    return driver.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll(arguments[0] + '.playing'),"
        " function (e) { return e.dataset.unit || e.dataset.feature || e.dataset.pair; });", css)


@needs_chromium
def test_clicking_a_pair_plays_it_in_chromium(explained, page, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    exp, _ = explained
    stems = exp.features.stems
    other, vocals, bass = (f"stem-{stems.index(s)}" for s in ("other", "vocals", "bass"))
    browser.get(page.as_uri())
    wait = WebDriverWait(browser, 10, poll_frequency=0.02)
    wait.until(lambda d: all(audio_state(d, c)["ready"] >= 1 for c in (other, vocals, bass)))

    def pair(rank: int):
        return browser.find_element(By.CSS_SELECTOR, f'button.pair[data-pair="{rank}"]')

    # audio x lyrics: the 'other' stem plays over segment 3 while the keyword line is outlined
    assert pair(1).get_attribute("aria-label") == f"play other_T3 and {KEYWORD_LINE} together"
    pair(1).click()
    wait.until(lambda d: not audio_state(d, other)["paused"])
    first = audio_state(browser, other)
    assert 2.4 <= first["time"] < 3.2
    assert _playing(browser, ".lyrics .line") == ["1"]
    line = browser.find_element(By.CSS_SELECTOR, ".lyrics .line[data-unit='1']")
    assert KEYWORD_LINE in line.text
    assert line.value_of_css_property("outline-color") == "rgba(245, 166, 35, 1)"
    assert _playing(browser, "#heatmap td.cell") == ["other_T3"]
    wait.until(lambda d: audio_state(d, other)["time"] > first["time"] + 0.1)  # it advances
    wait.until(lambda d: audio_state(d, other)["paused"])  # and stops at the segment's end
    assert 3.2 <= audio_state(browser, other)["time"] < 3.45
    assert _playing(browser, ".lyrics .line") == []

    # audio x audio in one segment: both stems play together over 2.4-3.2 s
    pair(3).click()
    wait.until(lambda d: not audio_state(d, other)["paused"]
               and not audio_state(d, vocals)["paused"])
    both = [audio_state(browser, c)["time"] for c in (other, vocals)]
    assert all(2.4 <= t < 3.2 for t in both) and abs(both[0] - both[1]) < 0.15
    assert sorted(_playing(browser, "#heatmap td.cell")) == ["other_T3", "vocals_T3"]
    wait.until(lambda d: audio_state(d, other)["paused"] and audio_state(d, vocals)["paused"])

    # audio x audio in two segments: bass over 0-0.8 s, then other over 2.4-3.2 s
    pair(4).click()
    wait.until(lambda d: not audio_state(d, bass)["paused"])
    assert audio_state(browser, bass)["time"] < 0.8 and audio_state(browser, other)["paused"]
    wait.until(lambda d: not audio_state(d, other)["paused"])
    assert audio_state(browser, bass)["paused"]
    assert 0.8 <= audio_state(browser, bass)["time"] < 1.05
    assert 2.4 <= audio_state(browser, other)["time"] < 3.2
    # a heatmap cell stops the pair and plays alone
    browser.find_element(By.CSS_SELECTOR, "#heatmap td.cell[data-feature='drums_T5']").click()
    drums = f"stem-{stems.index('drums')}"
    wait.until(lambda d: not audio_state(d, drums)["paused"])
    assert audio_state(browser, other)["paused"] and _playing(browser, "tr") == []

    # lyrics x lyrics: both lines outlined, nothing plays; a second click clears them
    pair(2).click()
    assert sorted(_playing(browser, ".lyrics .line")) == ["0", "1"]
    assert audio_state(browser, drums)["paused"]
    assert all(audio_state(browser, f"stem-{i}")["paused"] for i in range(len(stems)))
    pair(2).click()
    assert _playing(browser, ".lyrics .line") == []

    plays = browser.execute_script("return window.musiclimePlays.map(p => p.clip)")
    assert plays == [other, f"{vocals}+{other}", f"{bass}+{other}", drums, ""]
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


@needs_chromium
def test_a_real_interaction_run_plays_its_top_pair(song, tmp_path, browser):
    """The panel of an explanation whose interactions the explainer estimated (shapiq's
    regression FSII over the white-box classifier): its rows are the JSON's pairs in order, and
    clicking the top audio pair plays its stems over its segments."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    exp, factorized, _ = explain_whitebox(song, num_samples=NUM_SAMPLES, seed=0,
                                          interactions="regression_fsii",
                                          interaction_budget=1200)
    records = exp.to_dict()["explanations"][f"label_{exp.predicted_label}"]["interactions"]
    assert len(records) == 10
    path = tmp_path / "explanation.html"
    path.write_text(render_explanation_page(exp, factorized), encoding="utf-8")
    html = path.read_text(encoding="utf-8")
    assert "estimator regression_fsii, budget 1200, seed 0" in html
    assert [(r[1], r[2]) for r in _rows(html)] == [tuple(r["names"]) for r in records]
    rank, first = next((i + 1, r) for i, r in enumerate(records) if "audio" in r["kind"])
    audio = [exp.features[i] for i in first["features"] if exp.features[i].kind == "audio"]
    clips = {f"stem-{exp.features.stems.index(f.stem)}" for f in audio}
    browser.get(path.as_uri())
    wait = WebDriverWait(browser, 10, poll_frequency=0.02)
    wait.until(lambda d: all(audio_state(d, c)["ready"] >= 1 for c in clips))
    browser.find_element(By.CSS_SELECTOR, f'button.pair[data-pair="{rank}"]').click()
    wait.until(lambda d: any(not audio_state(d, c)["paused"] for c in clips))
    playing = [c for c in clips if not audio_state(browser, c)["paused"]]
    spans = [(f.start, f.end) for f in audio]
    assert any(a - 0.05 <= audio_state(browser, c)["time"] < b + 0.05
               for c in playing for a, b in spans)
