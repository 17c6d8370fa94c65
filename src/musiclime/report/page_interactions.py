"""The explanation page's interaction panel (:mod:`musiclime.report.page`): the explained
label's top pairs of features, each with its interaction value and a button that plays it.

The panel reads the explanation's JSON view (:meth:`Explanation.to_dict`), the contract
between the explainer and every reader of ``explanation.json``: per explained label,
``explanations.label_<i>.interactions`` is a list of
``{"features": [i, j], "names": [...], "value": float, "kind": "audio×lyrics", ...}``
(``i``, ``j`` index the feature table), and ``metadata.interaction_game`` says how the values
were estimated (``estimator``, ``budget``, ``seed``, ``rows_reused``, ``rows_predicted``).
Each pair's names and kinds are read from the feature table (the record's ``names`` and
``kind`` repeat them for readers without it). Without records (interactions off, or a record
written before them) there is no panel at all, nor its style or script.

A pair plays the way a single feature does (a stem clip seeked to its segment and stopped at
the segment's end; no extra audio is embedded):

- audio x audio: both stem-segment pieces, in song order. Stems share their segments, so two
  pieces either share a segment (both stems sound together over it) or are disjoint (one
  after the other; the song between them is skipped);
- audio x lyrics: the stem-segment piece, while the lyric unit is outlined in the lyrics;
- lyrics x lyrics: both lyric units are outlined (no audio) until the next play or *Stop*.

The pair's heatmap cells are outlined too. Colours: red for a positive value (the pair moves
the label's output more together than the sum of the two alone), blue for a negative one, on
the panel's own scale (the largest |value| shown), since a pair's value is not a LIME weight.
"""

from __future__ import annotations

import json

from ..core.explanation import Explanation
from .page_sections import _num, esc, weight_colour

PAIR_KINDS = ("audio×audio", "audio×lyrics", "lyrics×lyrics")


def interaction_records(exp: Explanation, label: int) -> tuple[list[dict], dict | None]:
    """``label``'s interaction records sorted by |value| (largest first, then by feature
    indices) and the explanation's ``interaction_game``; ``([], None)`` without any."""
    record = exp.to_dict()
    entry = record["explanations"].get(f"label_{label}", {})
    pairs = [p for p in entry.get("interactions") or [] if p.get("features")]
    pairs.sort(key=lambda p: (-abs(float(p["value"])), [int(i) for i in p["features"]]))
    return pairs, record["metadata"].get("interaction_game") or None


def _pieces(features, stem_index: dict[str, int]) -> list[list[dict]]:
    """What a pair's button plays: steps played in order, each a list of stem-segment pieces
    ``{"clip", "start", "end"}`` played together."""
    audio = sorted((f for f in features if f.kind == "audio" and f.start is not None),
                   key=lambda f: (f.start, f.index))
    steps: list[list[dict]] = []
    for f in audio:
        piece = {"clip": f"stem-{stem_index[f.stem]}", "start": round(f.start, 6),
                 "end": round(f.end, 6)}
        if steps and steps[-1][0]["start"] == piece["start"]:
            steps[-1].append(piece)  # same segment: the two stems sound together
        else:
            steps.append([piece])
    return steps


def _button(rank: int, features, with_audio: bool, stem_index: dict[str, int]) -> str:
    """The pair's button: it plays the pair's audio (and outlines its lyrics and cells), or,
    for two lyric units or a page without audio, only outlines; none for an audio pair on a
    page without audio."""
    lyric_units = [str(f.unit_index) for f in features
                   if f.kind == "lyrics" and f.unit_index is not None]
    steps = _pieces(features, stem_index) if with_audio else []
    if not steps and not lyric_units:
        return ""
    names = " and ".join(f.name for f in features)
    label, symbol = ((f"play {names} together", "&#9654;") if steps
                     else (f"highlight {names}", "&#9673;"))
    cells = " ".join(f.name for f in features if f.kind == "audio")
    return (f'<button class="pair" data-pair="{rank}" data-steps="{esc(json.dumps(steps))}" '
            f'data-units="{" ".join(lyric_units)}" data-cells="{esc(cells)}" '
            f'aria-label="{esc(label)}" title="{esc(label)}">{symbol}</button>')


def _kind(features) -> str:
    return "×".join(sorted(f.kind for f in features))


def interaction_panel(exp: Explanation, label: int, with_audio: bool,
                      stem_index: dict[str, int]) -> str:
    """The panel (empty when ``label`` has no interaction records; see the module
    docstring)."""
    pairs, game = interaction_records(exp, label)
    if not pairs:
        return ""
    vmax = max(abs(float(p["value"])) for p in pairs) or 1.0
    rows = []
    for rank, pair in enumerate(pairs, start=1):
        i, j = (int(x) for x in pair["features"])
        if not (0 <= i < len(exp.features) and 0 <= j < len(exp.features)):
            raise ValueError(f"interaction {pair!r} names a feature outside the explanation's "
                             f"{len(exp.features)} features")
        features = [exp.features[i], exp.features[j]]
        value = float(pair["value"])
        width = 50 * min(1.0, abs(value) / vmax)
        side = "left:50%" if value >= 0 else f"left:{50 - width:.1f}%"
        names = "".join(f'<td class="feature" data-kind="{f.kind}">{esc(f.name)} '
                        f'<small class="muted">{f.kind}</small></td>' for f in features)
        rows.append(
            f'<tr data-pair="{rank}" data-kind="{esc(_kind(features))}">'
            f'<td class="num">{rank}</td><td>{esc(_kind(features))}</td>{names}'
            f'<td class="num">{_num(value)}</td>'
            f'<td class="wbar"><span style="{side};width:{width:.1f}%;'
            f'background:{weight_colour(value, vmax) if value else "transparent"}"></span></td>'
            f"<td>{_button(rank, features, with_audio, stem_index)}</td></tr>")
    how = ""
    if game:
        reused, predicted = game.get("rows_reused"), game.get("rows_predicted")
        how = (f'<small>estimator {esc(game.get("estimator", "n/a"))}, budget '
               f'{esc(game.get("budget", "n/a"))}, seed {esc(game.get("seed", "n/a"))}'
               + (f"; {esc(reused)} rows reused from the masks, {esc(predicted)} predicted "
                  "for the pairs" if reused is not None or predicted is not None else "")
               + "</small>")
    note = ('<p class="note">value: what the pair adds together beyond the two alone (red: '
            f'more, blue: less; bars on this panel\'s scale, |value| up to {_num(vmax)}). '
            "&#9654;: plays the pair's stem-segments (one segment: together; two: one after "
            "the other) and outlines its lyrics; &#9673;: outlines both lyric units.</p>")
    return (f'<h2>Interactions</h2><div class="interactions" id="interactions">{how}'
            '<table class="top pairs" id="interaction-pairs"><thead><tr><th>#</th>'
            '<th>kind</th><th>feature</th><th>feature</th><th>value</th><th></th><th></th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>{note}</div>')
