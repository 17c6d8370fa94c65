"""One explanation as a self-contained HTML page: ``explanation.html`` next to its JSON.

What the page shows, for the explained label (the predicted one unless told otherwise):

- the prediction (every class's probability) and the fit: weighted R² of the surrogate
  in-sample and held-out (never the first alone, :mod:`musiclime.fit_quality`), intercept,
  local prediction, ``num_samples``, modality, effective samples per feature; the kernel (its
  formula, width, distance scale, weight min/mean/max, effective samples
  ``(sum w)^2 / sum w^2``) and every explainer setting (``exp.params``), plus the
  explanation's warnings; a fit whose numbers mean nothing (``exp.fit_warnings``: more
  features than samples, a collapsed kernel, too few effective samples, all-zero weights)
  opens the page with a banner that says so;
- the stem x segment heatmap of the audio weights, with a play button on every cell that plays
  exactly that stem during that segment, and a button that plays the sum of the top-k positive
  audio components (audioLIME's listenable explanation, :func:`musiclime.listen.listenable_audio`)
  and one that plays the original mix;
- the ranked top features;
- the lyrics, each line (or word, for word units) highlighted by its weight: red positive, blue
  negative, opacity ``|w| / vmax``. Audio cells use the same colours and the same ``vmax`` (the
  largest |weight| of the label over both modalities), so colours compare across modalities.

Self-contained: CSS and JS are inline and audio is embedded as data URIs, so the file can be
mailed, attached to an MLflow run or opened offline. To keep it small, the audio is one mono
clip per stem (the player seeks to a cell's segment and stops at its end) plus the mix and the
top-k sum (trimmed to the span of its components), resampled to ``audio_rate`` (16 kHz) and
encoded as Ogg Vorbis (``codec="vorbis"``, 2-5 kB per second of clip: a 20 s song's page is
0.35 MB with tonal stems, 0.7 MB with broadband noise; a 4-minute demo song's 7.0 MB, a
10-minute one's 15.3 MB).
``codec="wav"`` (16-bit PCM, 32 kB per second at 16 kHz: 4.3 MB for a 20 s song) also plays in
browsers without Ogg Vorbis (older Safari). Without a song (``song=None``, e.g. re-rendering
from ``explanation.json``) the page has no audio and the lyrics are the explanation's units.

Long songs keep whole stems: the cells tile the song, so a clip per cell would embed the same
audio plus a Vorbis header per cell, and files beside the page would lose the single file.
Clips are encoded block by block (:func:`musiclime.audio.encode_audio`): one libsndfile call
with a whole stem crashes its Vorbis encoder past a minute or two of audio.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from ..core.explanation import Explanation
from ..core.lyrics import is_metadata_line
from ..io.audio import encode_audio, resample
from ..io.fileio import atomic_path
from . import listen
from .plots import explained_label, format_time, segment_spans

log = logging.getLogger(__name__)

PAGE_CODECS = ("vorbis", "wav")
_MIME = {"vorbis": "audio/ogg", "wav": "audio/wav"}
_FORMAT = {"vorbis": ("OGG", "VORBIS"), "wav": ("WAV", "PCM_16")}
_WORD = re.compile(r"\w+", re.UNICODE)
POSITIVE_RGB = (178, 24, 43)  # matplotlib RdBu's red end, as in the PNG figures
NEGATIVE_RGB = (33, 102, 172)  # its blue end


# --- audio ------------------------------------------------------------------------------------
def _vorbis_available() -> bool:
    return "VORBIS" in sf.available_subtypes("OGG")


def audio_data_uri(audio: np.ndarray, sample_rate: int, codec: str = "vorbis") -> str:
    """``data:audio/...;base64,...`` of a mono clip (clipped to [-1, 1])."""
    if codec not in PAGE_CODECS:
        raise ValueError(f"codec must be one of {PAGE_CODECS}, got {codec!r}")
    y = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    buf = io.BytesIO()
    # block by block: one libsndfile call with a whole long stem crashes the Vorbis encoder
    encode_audio(buf, y, sample_rate, *_FORMAT[codec])
    return f"data:{_MIME[codec]};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _page_clips(exp: Explanation, song, label: int, listen_top_k: int, codec: str,
                audio_rate: int) -> tuple[dict[str, str], dict]:
    """Data URIs of every stem, the mix and the top-k sum, and what the top-k clip holds
    (its component indices and the span in seconds it was trimmed to)."""
    fac = song.audio
    if fac.n_components != exp.features.n_audio:
        raise ValueError(f"the song's factorization has {fac.n_components} audio components "
                         f"but the explanation was made on {exp.features.n_audio}")
    rate = min(int(fac.sample_rate), int(audio_rate))

    def uri(y: np.ndarray) -> str:
        return audio_data_uri(resample(y, fac.sample_rate, rate), rate, codec)

    # the stems and the mix are the same for every explanation of a song: a fit job that
    # writes the pages of a whole sweep encodes them once (cached on the factorization)
    cache = fac.__dict__.setdefault("_page_clip_cache", {})
    key = (rate, codec)
    if key not in cache:
        stems = fac.feature_stems
        cache[key] = {f"stem-{i}": uri(stems[i]) for i in range(len(fac.feature_stem_names))}
        cache[key]["mix"] = uri(fac.mix)
    clips = dict(cache[key])
    top = listen.top_audio_components(exp, listen_top_k, label)
    topk = {"components": top, "start": 0.0, "end": 0.0}
    if top:
        spans = [fac.component_info(c)[2:] for c in top]
        a, b = min(s for s, _ in spans), max(e for _, e in spans)
        y = listen.listenable_audio(exp, fac, listen_top_k, label)[a:b]
        clips["topk"] = uri(y)
        topk.update(start=a / fac.sample_rate, end=b / fac.sample_rate)
    return clips, topk


# --- formatting -------------------------------------------------------------------------------
def _e(text) -> str:
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


def _table(rows: list[tuple[str, object]], cls: str = "kv") -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_value(v))}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>'


# --- sections ---------------------------------------------------------------------------------
def _prediction(exp: Explanation, label: int) -> str:
    rows = []
    for i, p in enumerate(exp.prediction):
        marks = []
        if i == exp.predicted_label:
            marks.append("predicted")
        if i == label:
            marks.append("explained")
        rows.append(
            f'<tr><th>{_e(exp.label_name(i))}</th><td class="num">{p:.4f}</td>'
            f'<td class="bar"><span style="width:{100 * p:.1f}%"></span></td>'
            f'<td class="mark">{_e(", ".join(marks))}</td></tr>')
    return f'<table class="prob" id="prediction">{"".join(rows)}</table>'


def _fit(exp: Explanation, label: int) -> str:
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
    return (f'<div id="fit"><h2>Fit</h2>{_table(rows + others)}</div>'
            f'<div id="kernel"><h2>Kernel</h2>{_table(kernel)}</div>')


def _fit_warnings_banner(exp: Explanation) -> str:
    """The banner of a fit whose numbers mean nothing (empty for a sound fit)."""
    found = exp.fit_warnings
    if not found:
        return ""
    items = "".join(f'<li data-code="{_e(w.code)}"><code>{_e(w.code)}</code>: {_e(w.message)}'
                    "</li>" for w in found)
    return ('<div class="fit-warnings" id="fit-warnings"><b>This fit means little: its R² and '
            f"weights are not evidence of what the classifier does</b><ul>{items}</ul></div>")


def _heatmap(exp: Explanation, label: int, vmax: float, with_audio: bool) -> str:
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
                     f'data-end="{end:.6f}" title="play the whole {_e(stem)} stem" '
                     f'aria-label="play {_e(stem)}">&#9654;</button> ') if with_audio else ""
        cells = [f'<th class="stem">{play_stem}{_e(stem)}</th>']
        for t, span in enumerate(spans):
            w = float(grid[s, t])
            name = f"{stem}_T{t}"
            style = f"background:{weight_colour(w, vmax)};color:{_text_colour(w, vmax)}"
            tip = f"{name}: weight {_num(w)}" + ("" if w == w else " (not perturbed)")
            button = ""
            if with_audio and span is not None:
                button = (f'<button class="play" data-clip="stem-{s}" '
                          f'data-start="{span[0]:.6f}" data-end="{span[1]:.6f}" '
                          f'aria-label="play {_e(name)}">&#9654;</button>')
            cells.append(f'<td class="cell" data-feature="{_e(name)}" data-weight="{w!r}" '
                         f'style="{style}" title="{_e(tip)}">{button}'
                         f'<span class="w">{_num(w)}</span></td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="heatmap" id="heatmap"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _legend(vmax: float) -> str:
    return (f'<div class="legend"><span>{_num(-vmax)}</span><span class="ramp"></span>'
            f'<span>{_num(vmax)}</span> <small>LIME weight: red for, blue against '
            f'the label; one scale for audio and lyrics</small></div>')


def _top_features(exp: Explanation, label: int, num_features: int, vmax: float,
                  with_audio: bool, stem_index: dict[str, int]) -> str:
    rows = []
    for rank, (idx, w) in enumerate(exp.ranked(label)[:num_features], start=1):
        f = exp.features[idx]
        play = ""
        if with_audio and f.kind == "audio" and f.start is not None:
            play = (f'<button class="play" data-clip="stem-{stem_index[f.stem]}" '
                    f'data-start="{f.start:.6f}" data-end="{f.end:.6f}" '
                    f'aria-label="play {_e(f.name)}">&#9654;</button>')
        width = 50 * min(1.0, abs(w) / vmax) if vmax > 0 else 0.0
        side = "left:50%" if w >= 0 else f"left:{50 - width:.1f}%"
        rows.append(
            f'<tr><td class="num">{rank}</td><td>{f.kind}</td>'
            f'<td class="feature">{_e(f.name)}</td><td class="num">{_num(w)}</td>'
            f'<td class="wbar"><span style="{side};width:{width:.1f}%;'
            f'background:{weight_colour(w, vmax) if w else "transparent"}"></span></td>'
            f"<td>{play}</td></tr>")
    return ('<table class="top" id="top-features"><thead><tr><th>#</th><th>type</th>'
            '<th>feature</th><th>weight</th><th></th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _lyrics(exp: Explanation, label: int, vmax: float, song) -> str:
    unit_weight: dict[int, float] = {}
    for idx, w in exp.weights(label).items():
        f = exp.features[idx]
        if f.kind == "lyrics" and f.unit_index is not None:
            unit_weight[f.unit_index] = w

    def span(text: str, unit: int | None, tag: str = "span", cls: str = "unit") -> str:
        if unit is None:
            return f'<{tag} class="{cls} muted">{_e(text)}</{tag}>'
        w = unit_weight.get(unit, float("nan"))
        tip = f"weight {_num(w)}" if w == w else "not perturbed"
        weight = f'<span class="lw">{_num(w)}</span>' if tag == "div" else ""
        return (f'<{tag} class="{cls}" data-unit="{unit}" data-weight="{w!r}" '
                f'style="background:{weight_colour(w, vmax)};color:{_text_colour(w, vmax)}" '
                f'title="{_e(tip)}">{weight}{_e(text)}</{tag}>')

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
                parts.append(_e(line[pos:m.start()]))
                parts.append(span(m.group(0), vocab.get(m.group(0).lower())))
                pos = m.end()
            parts.append(_e(line[pos:]))
            out.append(f'<div class="line">{"".join(parts) or "&nbsp;"}</div>')
    else:
        unit = 0
        for line in text.split("\n"):
            if line.strip() and not is_metadata_line(line):
                out.append(span(line, unit, "div", "line"))
                unit += 1
            else:
                out.append(f'<div class="line muted">{_e(line) or "&nbsp;"}</div>')
    if not unit_weight:
        out.insert(0, '<p class="note">lyrics not perturbed (modality: '
                      f'{_e(exp.modality)})</p>')
    return f'<div class="lyrics" id="lyrics">{"".join(out)}</div>'


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;
 max-width:1200px;padding:0 1em;color:#111}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .5em;
 border-bottom:1px solid #ddd}h3{font-size:1em;margin:.6em 0 .3em}
table{border-collapse:collapse}th,td{padding:2px 8px;text-align:left;vertical-align:middle}
table.kv th{font-weight:500;color:#444}table.kv td{font-family:ui-monospace,monospace}
.cols{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
.cols>div{flex:1 1 0;min-width:330px}table.kv td{white-space:normal;word-break:break-word}.num{text-align:right;
 font-family:ui-monospace,monospace}
table.prob td.bar{width:160px}td.bar span{display:block;height:12px;background:#555}
td.mark{color:#a33;font-size:.9em}
table.heatmap th{font-weight:500;text-align:center;font-size:.9em}
table.heatmap th.stem{text-align:left}table.heatmap td.cell{min-width:4.2em;height:2.4em;
 text-align:center;border:1px solid #eee;cursor:pointer;font-size:.8em;
 font-family:ui-monospace,monospace}
td.cell.playing,button.playing{outline:3px solid #f5a623}
button.play{border:1px solid #999;border-radius:3px;background:#fff;color:#111;
 cursor:pointer;font-size:.75em;padding:0 4px;margin-right:3px}
.legend{margin:.4em 0}.legend .ramp{display:inline-block;width:180px;height:10px;
 margin:0 6px;vertical-align:middle;background:linear-gradient(to right,
 rgb(33,102,172),#fff,rgb(178,24,43))}
.controls button{font-size:1em;padding:4px 10px;margin:0 .5em .4em 0;cursor:pointer}
table.top td.wbar{width:200px;position:relative}td.wbar span{position:absolute;top:30%;
 height:40%}
.lyrics .line{padding:1px 6px;margin:1px 0;border-radius:2px;white-space:pre-wrap}
.lyrics span.unit{border-radius:2px;padding:0 1px}.lyrics .lw{display:inline-block;
 width:5.5em;font-family:ui-monospace,monospace;font-size:.8em}
.muted{color:#888;font-style:italic}.note{color:#666}
.warnings{background:#fff4e5;border-left:4px solid #f5a623;padding:.4em 1em}
.fit-warnings{background:#fdecea;border-left:6px solid #b2182b;padding:.4em 1em;margin:.5em 0}
details{margin:.6em 0}summary{cursor:pointer;font-weight:500}
"""

# One <audio> per clip. A cell's button seeks its stem's clip to the segment's start and a
# timer pauses it at the segment's end; only one clip plays at a time. window.musiclimePlays
# records every play for tests and debugging.
_JS = """
(function () {
  var clips = {};
  document.querySelectorAll('audio[data-clip]').forEach(function (a) {
    clips[a.dataset.clip] = a;
    a.addEventListener('playing', function () { window.musiclimePlaying = a.dataset.clip; });
  });
  window.musiclimePlays = [];
  var current = null, timer = null, marked = [];
  function stop() {
    if (timer) { clearInterval(timer); timer = null; }
    if (current) { current.pause(); current = null; }
    marked.forEach(function (el) { el.classList.remove('playing'); });
    marked = [];
  }
  function play(button) {
    var clip = clips[button.dataset.clip];
    if (!clip) { return; }
    var start = parseFloat(button.dataset.start), end = parseFloat(button.dataset.end);
    stop();
    current = clip;
    clip.currentTime = start;
    marked = [button, button.closest('td.cell')].filter(Boolean);
    marked.forEach(function (el) { el.classList.add('playing'); });
    window.musiclimePlays.push({clip: button.dataset.clip, start: start, end: end});
    var started = clip.play();
    if (started && started.catch) {
      started.catch(function (err) { console.warn('musiclime: cannot play: ' + err); stop(); });
    }
    timer = setInterval(function () {
      if (clip.ended || clip.currentTime >= end) { stop(); }
    }, 25);
  }
  document.addEventListener('click', function (ev) {
    var button = ev.target.closest('button.play');
    if (!button) {
      var cell = ev.target.closest('td.cell');
      button = cell && cell.querySelector('button.play');
    }
    if (button) { ev.preventDefault(); play(button); }
    else if (ev.target.closest('button.stop')) { stop(); }
  });
})();
"""


def render_explanation_page(exp: Explanation, song=None, label: int | None = None,
                            listen_top_k: int = 3, num_features: int = 10,
                            codec: str = "vorbis", audio_rate: int = 16000) -> str:
    """The page as one HTML string (see the module docstring).

    ``song``: the :class:`~musiclime.explainer.Song` the explanation was made on (its audio
    factorization and lyrics); without it the page has no audio. ``codec``: ``vorbis`` or
    ``wav`` (falls back to ``wav`` when libsndfile cannot write Vorbis).
    """
    if codec not in PAGE_CODECS:
        raise ValueError(f"codec must be one of {PAGE_CODECS}, got {codec!r}")
    if codec == "vorbis" and not _vorbis_available():
        log.info("libsndfile cannot write Ogg Vorbis; the page embeds 16-bit WAV")
        codec = "wav"
    label = explained_label(exp, label)
    weights = np.array(list(exp.weights(label).values()), dtype=np.float64)
    vmax = float(np.max(np.abs(weights))) if weights.size else 0.0
    vmax = vmax or 1.0
    with_audio = song is not None and getattr(song, "audio", None) is not None
    clips, topk = (_page_clips(exp, song, label, listen_top_k, codec, audio_rate)
                   if with_audio else ({}, {"components": []}))
    stem_index = {s: i for i, s in enumerate(exp.features.stems)}

    audio_tags = "".join(f'<audio preload="auto" data-clip="{_e(name)}" src="{uri}"></audio>'
                         for name, uri in clips.items())
    controls = ""
    if with_audio:
        duration = song.audio.n_samples / song.audio.sample_rate
        label_weights = exp.weights(label)
        names = ", ".join(f"{exp.features[c].name} ({_num(label_weights[c])})"
                          for c in topk["components"])
        if "topk" in clips:
            top_button = (f'<button class="play" id="play-topk" data-clip="topk" '
                          f'data-start="0" data-end="{topk["end"] - topk["start"]:.6f}">'
                          f'&#9654; Play the top-{listen_top_k}</button>'
                          f'<small>sum of {_e(names)}, '
                          f'{format_time(topk["start"], True)}–{format_time(topk["end"], True)}'
                          '</small>')
        else:
            top_button = ('<button id="play-topk" disabled>no positive audio component'
                          '</button>')
        controls = (f'<div class="controls">{top_button}<br>'
                    f'<button class="play" id="play-mix" data-clip="mix" data-start="0" '
                    f'data-end="{duration:.6f}">&#9654; Play the original</button>'
                    '<button class="stop" id="stop">&#9632; Stop</button></div>')

    warnings = _fit_warnings_banner(exp)
    found = getattr(exp, "warnings", None) or []  # an explanation record may predate warnings
    if found:
        items = "".join(f"<li>{_e(w)}</li>" for w in found)
        warnings += f'<div class="warnings" id="warnings"><b>Warnings</b><ul>{items}</ul></div>'
    fit = exp.fits[label]
    summary = (f"predicted <b>{_e(exp.label_name(exp.predicted_label))}</b> "
               f"(p = {exp.prediction[exp.predicted_label]:.3f}); explained "
               f"<b>{_e(exp.label_name(label))}</b>: R² = {fit.score:.3f} in-sample, "
               f"{_e(exp.heldout_phrase(label))}, "
               f"kernel width = {_e(exp.kernel.get('width', 'n/a'))}, "
               f"n = {exp.num_samples}, modality = {_e(exp.modality)}")
    settings = _table(sorted((str(k), v) for k, v in exp.params.items()))
    extra = ""
    if exp.timings:
        extra += ("<details><summary>Timings (s)</summary>"
                  f"{_table(sorted((str(k), v) for k, v in exp.timings.items()))}</details>")
    if exp.song_info:
        extra += ("<details><summary>Song</summary>"
                  f"{_table(sorted((str(k), v) for k, v in exp.song_info.items()))}</details>")
    audio_note = ("" if with_audio else
                  '<p class="note">no audio on this page (rendered without the song)</p>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{_e(exp.song_id)}: MusicLIME explanation</title>
<style>{_CSS}</style></head>
<body>
<h1>{_e(exp.song_id)}: why '{_e(exp.label_name(label))}'?</h1>
<p class="summary">{summary}</p>
{warnings}
<div class="cols"><div><h2>Prediction</h2>{_prediction(exp, label)}</div>
{_fit(exp, label)}</div>
<h2>Audio: stem x segment</h2>
{audio_note}{controls}
{_heatmap(exp, label, vmax, with_audio)}
{_legend(vmax)}
<h2>Top features</h2>
{_top_features(exp, label, num_features, vmax, with_audio, stem_index)}
<h2>Lyrics ({_e(exp.features.lyrics_unit)} units)</h2>
{_lyrics(exp, label, vmax, song)}
<h2>Settings</h2>
<details open id="settings"><summary>Explainer settings (<code>exp.params</code>)</summary>
{settings}</details>
{extra}
<p class="note">musiclime explanation of {_e(exp.song_id)}, {_e(exp.timestamp)}</p>
{audio_tags}
<script>{_JS}</script>
</body></html>
"""


def write_explanation_page(exp: Explanation, song, path: str | os.PathLike,
                           **kwargs) -> Path:
    """Write :func:`render_explanation_page` atomically to exactly ``path``."""
    path = Path(path)
    page = render_explanation_page(exp, song, **kwargs)
    with atomic_path(path, ".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
