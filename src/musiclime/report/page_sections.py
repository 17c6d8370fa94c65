"""The sections of the explanation page (:mod:`musiclime.report.page`), each an HTML fragment
with every text escaped: the prediction, the fit and kernel, the warnings, the stem x segment
heatmap, the ranked features, the highlighted lyrics, the player's buttons and the settings.
Weights are coloured by :func:`weight_colour`, one scale (``vmax``) for both modalities."""

from __future__ import annotations

import html
import math
import re

from ..core.explanation import Explanation
from ..core.lyrics import is_metadata_line
from .plots import MODALITY_COLOURS, format_time, segment_spans

_WORD = re.compile(r"\w+", re.UNICODE)
POSITIVE_RGB = (178, 24, 43)  # matplotlib RdBu's red end, as in the PNG figures
NEGATIVE_RGB = (33, 102, 172)  # its blue end


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def _num(w: float) -> str:
    if w != w:  # NaN
        return "n/a"
    return f"{w:+.3f}" if abs(w) >= 1e-3 or w == 0 else f"{w:+.1e}"


def weight_colour(weight: float, vmax: float) -> str:
    """``rgba(...)``: red for positive, blue for negative, opacity ``|w| / vmax``."""
    if weight != weight or vmax <= 0:
        return "transparent"
    r, g, b = POSITIVE_RGB if weight > 0 else NEGATIVE_RGB
    alpha = min(1.0, abs(weight) / vmax)
    return f"rgba({r}, {g}, {b}, {alpha:.3f})"


def _text_colour(weight: float, vmax: float) -> str:
    return "#fff" if weight == weight and vmax > 0 and abs(weight) / vmax > 0.55 else "#111"


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def kv_table(rows: list[tuple[str, object]], cls: str = "kv") -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_value(v))}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>'


# --- sections ---------------------------------------------------------------------------------
def prediction_table(exp: Explanation, label: int) -> str:
    rows = []
    for i, p in enumerate(exp.prediction):
        marks = []
        if i == exp.predicted_label:
            marks.append("predicted")
        if i == label:
            marks.append("explained")
        rows.append(
            f'<tr><th>{esc(exp.label_name(i))}</th><td class="num">{p:.4f}</td>'
            f'<td class="bar"><span style="width:{100 * p:.1f}%"></span></td>'
            f'<td class="mark">{esc(", ".join(marks))}</td></tr>')
    return f'<table class="prob" id="prediction">{"".join(rows)}</table>'


def fit_tables(exp: Explanation, label: int) -> str:
    fit = exp.fits[label]
    k = exp.kernel
    ess = k.get("effective_samples")
    quality = exp.fit_quality
    folds = f"{quality.heldout_folds}-fold CV, " if quality is not None else ""
    rows = [
        ("explained label", exp.label_name(label)),
        ("R² in-sample (weighted)", fit.score),
        (f"R² held-out ({folds}weighted)", exp.heldout_text(label)),
        ("intercept", fit.intercept),
        ("surrogate at the original", fit.local_pred),
        ("classifier's probability", exp.prediction[label]),
        ("num_samples", exp.num_samples),
        ("modality", exp.modality),
        ("features perturbed", f"{len(exp.columns)} (of {exp.features.n_audio} audio + "
                               f"{exp.features.n_lyrics} lyric {exp.features.lyrics_unit}s)"),
    ]
    if quality is not None:
        rows.append(("effective samples per feature",
                     f"{quality.effective_samples_per_feature:.2g} (warn below "
                     f"{quality.thresholds.get('min_samples_per_feature', 2):g})"))
    from ..core.targets import fitted_target

    params = exp.params or {}
    surrogate = f"{params.get('estimator', 'lime_ridge')} on the {fitted_target(params, label)}"
    if params.get("target") == "auto":
        surrogate += " (target=auto: the scale with the higher R²)"
    rows.insert(2, ("surrogate", surrogate))
    if params.get("sampler", "bernoulli") != "bernoulli":
        rows.append(("sampler", params["sampler"]))
    auto = params.get("auto")
    if isinstance(auto, dict):
        rows.append(("num_samples=auto", f"stopped at {auto['calls']} of {auto['budget']}: "
                     f"bootstrap top-{auto['top_k']} Jaccard {auto['stability']:.2f} "
                     f"(target {auto['target']:.2f}"
                     + (")" if auto["reached"] else ", NOT reached)")))
    kernel = [
        ("formula", k.get("formula", "n/a")),
        ("kernel width", k.get("width", "n/a")),
        ("distance scale", k.get("distance_scale", "n/a")),
        ("weight min / mean / max", " / ".join(f"{k[x]:.4g}" for x in
                                               ("weight_min", "weight_mean", "weight_max")
                                               if x in k)),
        ("distance min / mean / max", " / ".join(f"{k[x]:.4g}" for x in
                                                 ("distance_min", "distance_mean",
                                                  "distance_max") if x in k)),
        ("effective samples", "n/a" if ess is None else
         f"{ess:.1f} of {exp.num_samples} ({100 * ess / max(1, exp.num_samples):.0f}%)"),
    ]
    others = [(f"R² for '{exp.label_name(lb)}'",
               f"{_value(f.score)} in-sample, {exp.heldout_phrase(lb)}")
              for lb, f in exp.fits.items() if lb != label]
    return (f'<div id="fit"><h2>Fit</h2>{kv_table(rows + others)}</div>'
            f'<div id="kernel"><h2>Kernel</h2>{kv_table(kernel)}</div>')


def fit_warnings_banner(exp: Explanation) -> str:
    """The banner of a fit whose numbers mean nothing (empty for a sound fit)."""
    found = exp.fit_warnings
    if not found:
        return ""
    items = "".join(f'<li data-code="{esc(w.code)}"><code>{esc(w.code)}</code>: {esc(w.message)}'
                    "</li>" for w in found)
    return ('<div class="fit-warnings" id="fit-warnings"><b>This fit means little: its R² and '
            f"weights are not evidence of what the classifier does</b><ul>{items}</ul></div>")


def heatmap(exp: Explanation, label: int, vmax: float, with_audio: bool) -> str:
    grid = exp.audio_weight_grid(label)
    spans = segment_spans(exp)
    precise = any(s is not None and s[1] - s[0] < 5.0 for s in spans)
    head = ['<th class="corner">stem \\ segment</th>']
    for t, span in enumerate(spans):
        when = "" if span is None else \
            f"<br><small>{format_time(span[0], precise)}–{format_time(span[1], precise)}</small>"
        head.append(f"<th>T{t}{when}</th>")
    rows = []
    for s, stem in enumerate(exp.features.stems):
        end = max((sp[1] for sp in spans if sp is not None), default=0.0)
        play_stem = (f'<button class="play" data-clip="stem-{s}" data-start="0" '
                     f'data-end="{end:.6f}" title="play the whole {esc(stem)} stem" '
                     f'aria-label="play {esc(stem)}">&#9654;</button> ') if with_audio else ""
        cells = [f'<th class="stem">{play_stem}{esc(stem)}</th>']
        for t, span in enumerate(spans):
            w = float(grid[s, t])
            name = f"{stem}_T{t}"
            style = f"background:{weight_colour(w, vmax)};color:{_text_colour(w, vmax)}"
            tip = f"{name}: weight {_num(w)}" + ("" if w == w else " (not perturbed)")
            button = ""
            if with_audio and span is not None:
                button = (f'<button class="play" data-clip="stem-{s}" '
                          f'data-start="{span[0]:.6f}" data-end="{span[1]:.6f}" '
                          f'aria-label="play {esc(name)}">&#9654;</button>')
            cells.append(f'<td class="cell" data-feature="{esc(name)}" data-weight="{w!r}" '
                         f'style="{style}" title="{esc(tip)}">{button}'
                         f'<span class="w">{_num(w)}</span></td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="heatmap" id="heatmap"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def legend(vmax: float) -> str:
    return (f'<div class="legend"><span>{_num(-vmax)}</span><span class="ramp"></span>'
            f'<span>{_num(vmax)}</span> <small>LIME weight: red for, blue against '
            f'the label; one scale for audio and lyrics</small></div>')


def _interval_bar(lo: float, hi: float, vmax: float) -> str:
    """The 90% interval as a line over the weight bar (same scale: 50% = 0)."""
    def at(v: float) -> float:
        return min(100.0, max(0.0, 50 + 50 * v / vmax))

    left, right = at(lo), at(hi)
    return (f'<span class="ci" style="left:{left:.1f}%;width:{max(right - left, 0.3):.1f}%">'
            "</span>")


def top_features(exp: Explanation, label: int, num_features: int, vmax: float,
                 with_audio: bool, stem_index: dict[str, int]) -> str:
    """The top features by |weight|, each with its bar, its nominal 90% interval (a line over
    the bar; a faded row when the interval crosses 0) and, for the top-k, the probability that
    it stays in the top-k (:mod:`musiclime.core.uncertainty`)."""
    uncertainty, stability = exp.weight_uncertainty(label), exp.topk_stability(label)
    k = exp.uncertainty[label].k if label in exp.uncertainty else 0
    rows = []
    for rank, (idx, w) in enumerate(exp.ranked(label)[:num_features], start=1):
        f = exp.features[idx]
        play = ""
        if with_audio and f.kind == "audio" and f.start is not None:
            play = (f'<button class="play" data-clip="stem-{stem_index[f.stem]}" '
                    f'data-start="{f.start:.6f}" data-end="{f.end:.6f}" '
                    f'aria-label="play {esc(f.name)}">&#9654;</button>')
        width = 50 * min(1.0, abs(w) / vmax) if vmax > 0 else 0.0
        side = "left:50%" if w >= 0 else f"left:{50 - width:.1f}%"
        lo, hi = uncertainty.get(idx, {}).get("interval90", (float("nan"),) * 2)
        known = math.isfinite(lo) and math.isfinite(hi)
        crosses = known and lo <= 0 <= hi
        bar = _interval_bar(lo, hi, vmax) if known and vmax > 0 else ""
        interval = (f"[{_num(lo)}, {_num(hi)}]" if known
                    else "unbounded" if idx in uncertainty else "")
        p = stability.get(idx)
        faded = ' class="crosses-zero" title="its 90% interval crosses 0"' if crosses else ""
        rows.append(
            f'<tr{faded}>'
            f'<td class="num">{rank}</td><td>{f.kind}</td>'
            f'<td class="feature">{esc(f.name)}</td><td class="num">{_num(w)}</td>'
            f'<td class="wbar"><span style="{side};width:{width:.1f}%;'
            f'background:{weight_colour(w, vmax) if w else "transparent"}"></span>{bar}</td>'
            f'<td class="num interval">{interval}</td>'
            f'<td class="num">{"" if p is None or p != p else f"{p:.2f}"}</td>'
            f"<td>{play}</td></tr>")
    note = (f'<p class="note">line over a bar: nominal 90% interval of the weight; faded: the '
            f"interval crosses 0; P(top-{k}): probability of staying in the top-{k} with "
            "other masks</p>" if uncertainty else "")
    return ('<table class="top" id="top-features"><thead><tr><th>#</th><th>type</th>'
            f'<th>feature</th><th>weight</th><th></th><th>{"90% interval" if uncertainty else ""}</th>'
            f'<th>{f"P(top-{k})" if uncertainty else ""}</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{note}')


def lyrics(exp: Explanation, label: int, vmax: float, song) -> str:
    unit_weight: dict[int, float] = {}
    for idx, w in exp.weights(label).items():
        f = exp.features[idx]
        if f.kind == "lyrics" and f.unit_index is not None:
            unit_weight[f.unit_index] = w

    def span(text: str, unit: int | None, tag: str = "span", cls: str = "unit") -> str:
        if unit is None:
            return f'<{tag} class="{cls} muted">{esc(text)}</{tag}>'
        w = unit_weight.get(unit, float("nan"))
        tip = f"weight {_num(w)}" if w == w else "not perturbed"
        weight = f'<span class="lw">{_num(w)}</span>' if tag == "div" else ""
        return (f'<{tag} class="{cls}" data-unit="{unit}" data-weight="{w!r}" '
                f'style="background:{weight_colour(w, vmax)};color:{_text_colour(w, vmax)}" '
                f'title="{esc(tip)}">{weight}{esc(text)}</{tag}>')

    kind = exp.features.lyrics_unit
    text = getattr(getattr(song, "lyrics", None), "text", None)
    out = []
    if text is None:  # no song: the explanation's own units
        units = [(f.unit_index, f.name) for f in exp.features.features if f.kind == "lyrics"]
        if kind == "word":
            out.append('<div class="line">' + " ".join(span(t, u) for u, t in units) + "</div>")
        else:
            out.extend(span(t, u, "div", "line") for u, t in units)
    elif kind == "word":
        vocab = {w: i for i, w in enumerate(song.lyrics.units)}
        for line in text.split("\n"):
            parts, pos = [], 0
            for m in _WORD.finditer(line):
                parts.append(esc(line[pos:m.start()]))
                parts.append(span(m.group(0), vocab.get(m.group(0).lower())))
                pos = m.end()
            parts.append(esc(line[pos:]))
            out.append(f'<div class="line">{"".join(parts) or "&nbsp;"}</div>')
    else:
        unit = 0
        for line in text.split("\n"):
            if line.strip() and not is_metadata_line(line):
                out.append(span(line, unit, "div", "line"))
                unit += 1
            else:
                out.append(f'<div class="line muted">{esc(line) or "&nbsp;"}</div>')
    if not unit_weight:
        out.insert(0, '<p class="note">lyrics not perturbed (modality: '
                      f'{esc(exp.modality)})</p>')
    return f'<div class="lyrics" id="lyrics">{"".join(out)}</div>'



def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.0f}%"


def modality_bar(exp: Explanation, label: int) -> str:
    """The modality game of ``label`` (:mod:`musiclime.core.modality`): a bar of what the audio
    does alone, the lyrics alone and the two together, with the exact Shapley values and
    shares in words; a note for a record without a game."""
    game = exp.modality_values(label)
    if game is None:
        return ('<div class="modality" id="modality"><p class="note">no modality game in this '
                'record (explained before musiclime played it)</p></div>')
    parts = game.parts()
    values = {"audio": game.audio_alone, "lyrics": game.lyrics_alone,
              "interaction": game.interaction}
    names = {"audio": "audio alone", "lyrics": "lyrics alone", "interaction": "together"}
    spans = "".join(
        f'<span class="m-{k}" data-part="{k}" style="width:{100 * parts[k]:.2f}%;'
        f'background:{MODALITY_COLOURS[k]}" title="{esc(names[k])}: {_num(values[k])} '
        f'({_pct(parts[k])})"></span>' for k in parts if parts[k] == parts[k])
    legend = " ".join(
        f'<span class="sw" style="background:{MODALITY_COLOURS[k]}"></span>{esc(names[k])} '
        f'{_num(values[k])} ({_pct(parts[k])})' for k in parts)
    rows = exp.modality_game.rows
    predicted = sum(r is None for r in rows)
    empty = "" if spans else '<span class="muted">no modality changes the probability</span>'
    return (
        f'<div class="modality" id="modality"><b>Modality</b> (P({esc(exp.label_name(label))}),'
        ' exact 2-player game audio x lyrics)'
        f'<div class="mbar">{spans}{empty}</div><div class="mlegend">{legend}</div>'
        f'<small>Shapley values: audio {_num(game.shapley_audio)} (share '
        f'{_pct(game.share_audio)}), lyrics {_num(game.shapley_lyrics)} '
        f'({_pct(game.share_lyrics)}); interaction {_num(game.interaction)} '
        f'({_pct(game.share_interaction)} of the effects). v(audio+lyrics) = {game.full:.4f}, '
        f'v(audio) = {game.audio:.4f}, v(lyrics) = {game.lyrics:.4f}, v(none) = '
        f'{game.none:.4f}; {len(rows) - predicted} of the 4 rows reused from the masks, '
        f'{predicted} predicted for the game.</small></div>')


def warnings_section(exp: Explanation) -> str:
    """The fit's banner and the explanation's own warnings (empty when there are none)."""
    out = fit_warnings_banner(exp)
    found = getattr(exp, "warnings", None) or []  # an explanation record may predate warnings
    if found:
        items = "".join(f"<li>{esc(w)}</li>" for w in found)
        out += f'<div class="warnings" id="warnings"><b>Warnings</b><ul>{items}</ul></div>'
    return out


def summary(exp: Explanation, label: int) -> str:
    """The line under the title: the prediction, the explained label and the fit in brief."""
    fit = exp.fits[label]
    return (f"predicted <b>{esc(exp.label_name(exp.predicted_label))}</b> "
            f"(p = {exp.prediction[exp.predicted_label]:.3f}); explained "
            f"<b>{esc(exp.label_name(label))}</b>: R² = {fit.score:.3f} in-sample, "
            f"{esc(exp.heldout_phrase(label))}, "
            f"kernel width = {esc(exp.kernel.get('width', 'n/a'))}, "
            f"n = {exp.num_samples}, modality = {esc(exp.modality)}")


def settings(exp: Explanation) -> str:
    return kv_table(sorted((str(k), v) for k, v in exp.params.items()))


def details(exp: Explanation) -> str:
    """The timings and the song's information, folded."""
    out = ""
    if exp.timings:
        out += ("<details><summary>Timings (s)</summary>"
                f"{kv_table(sorted((str(k), v) for k, v in exp.timings.items()))}</details>")
    if exp.song_info:
        out += ("<details><summary>Song</summary>"
                f"{kv_table(sorted((str(k), v) for k, v in exp.song_info.items()))}</details>")
    return out


def audio_tags(clips: dict[str, str]) -> str:
    return "".join(f'<audio preload="auto" data-clip="{esc(name)}" src="{uri}"></audio>'
                   for name, uri in clips.items())


def audio_controls(exp: Explanation, song, label: int, clips: dict[str, str], topk: dict,
                   listen_top_k: int) -> str:
    """The buttons that play the top-k sum (or say there is none) and the original, and stop."""
    duration = song.audio.n_samples / song.audio.sample_rate
    label_weights = exp.weights(label)
    names = ", ".join(f"{exp.features[c].name} ({_num(label_weights[c])})"
                      for c in topk["components"])
    if "topk" in clips:
        top_button = (f'<button class="play" id="play-topk" data-clip="topk" '
                      f'data-start="0" data-end="{topk["end"] - topk["start"]:.6f}">'
                      f'&#9654; Play the top-{listen_top_k}</button>'
                      f'<small>sum of {esc(names)}, '
                      f'{format_time(topk["start"], True)}–{format_time(topk["end"], True)}'
                      '</small>')
    else:
        top_button = ('<button id="play-topk" disabled>no positive audio component'
                      '</button>')
    return (f'<div class="controls">{top_button}<br>'
            f'<button class="play" id="play-mix" data-clip="mix" data-start="0" '
            f'data-end="{duration:.6f}">&#9654; Play the original</button>'
            '<button class="stop" id="stop">&#9632; Stop</button></div>')
