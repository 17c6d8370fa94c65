"""The explanation page's fixed text (:mod:`musiclime.report.page`): its HTML skeleton, its
stylesheet and its player script, all inlined so the page is one self-contained file.

:data:`PAGE_TEMPLATE` is filled with :meth:`str.format`; its fields are the page's sections,
already escaped HTML.
"""

from __future__ import annotations

PAGE_CSS = """
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
td.wbar span.ci{top:calc(50% - 5px);height:10px;box-sizing:border-box;border-left:2px solid #222;
 border-right:2px solid #222;background:linear-gradient(#222,#222) center/100% 2px no-repeat}
tr.crosses-zero td{opacity:.45}td.interval{font-size:.85em;color:#444}
.lyrics .line{padding:1px 6px;margin:1px 0;border-radius:2px;white-space:pre-wrap}
.lyrics span.unit{border-radius:2px;padding:0 1px}.lyrics .lw{display:inline-block;
 width:5.5em;font-family:ui-monospace,monospace;font-size:.8em}
.muted{color:#888;font-style:italic}.note{color:#666}
.warnings{background:#fff4e5;border-left:4px solid #f5a623;padding:.4em 1em}
.fit-warnings{background:#fdecea;border-left:6px solid #b2182b;padding:.4em 1em;margin:.5em 0}
details{margin:.6em 0}summary{cursor:pointer;font-weight:500}
.modality{margin:.6em 0}.mbar{display:flex;width:100%;max-width:640px;height:16px;
 margin:.3em 0;background:#f2f2f2;border:1px solid #ddd}.mbar span{display:block;height:100%}
.mlegend .sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;
 vertical-align:middle}
"""

# One <audio> per clip. A cell's button seeks its stem's clip to the segment's start and a
# timer pauses it at the segment's end; only one clip plays at a time. window.musiclimePlays
# records every play for tests and debugging.
PAGE_JS = """
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

# Only on a page with an interaction panel (:mod:`~musiclime.report.page_interactions`), so a
# page without one is unchanged.
PANEL_CSS = """
button.pair{border:1px solid #999;border-radius:3px;background:#fff;color:#111;cursor:pointer;
 font-size:.75em;padding:0 4px}
.lyrics .playing{outline:3px solid #f5a623;outline-offset:-1px}tr.playing td{background:#fff4e5}
table.pairs td.feature small{margin-left:.3em}
"""

# The pair player, beside PAGE_JS's single-clip player: a pair button plays its steps in order
# (each step: stem clips seeked to their segment and played together, each paused at its
# segment's end) and outlines the pair's row, heatmap cells and lyric units while it plays; a
# pair without audio keeps its outline until the next play, Stop or a second click. It stops the single-clip
# player by clicking #stop and stops itself on any click of a play, cell or stop control (in
# the capture phase, before that player starts its clip). Plays go to window.musiclimePlays.
PANEL_JS = """
(function () {
  var clips = {};
  document.querySelectorAll('audio[data-clip]').forEach(function (a) {
    clips[a.dataset.clip] = a;
  });
  var playing = [], timer = null, marked = [];
  function stop() {
    if (timer) { clearInterval(timer); timer = null; }
    playing.forEach(function (a) { a.pause(); });
    playing = [];
    marked.forEach(function (el) { el.classList.remove('playing'); });
    marked = [];
  }
  function mark(els) {
    els.forEach(function (el) { if (el) { el.classList.add('playing'); marked.push(el); } });
  }
  function start(step) {
    playing = step.map(function (p) { return clips[p.clip]; }).filter(Boolean);
    step.forEach(function (p) {
      var clip = clips[p.clip];
      if (!clip) { return; }
      clip.currentTime = p.start;
      var started = clip.play();
      if (started && started.catch) {
        started.catch(function (err) { console.warn('musiclime: cannot play: ' + err); stop(); });
      }
    });
  }
  function play(button) {
    if (button.classList.contains('playing')) { stop(); return; }  // a second click stops
    var single = document.getElementById('stop');
    if (single) { single.click(); }
    stop();
    var steps = JSON.parse(button.dataset.steps || '[]');
    var units = (button.dataset.units || '').split(' ').filter(Boolean);
    var cells = (button.dataset.cells || '').split(' ').filter(Boolean);
    mark([button, button.closest('tr')]);
    units.forEach(function (u) {
      mark(Array.prototype.slice.call(
        document.querySelectorAll('.lyrics [data-unit="' + u + '"]')));
    });
    cells.forEach(function (c) {
      mark([document.querySelector('#heatmap td.cell[data-feature="' + c + '"]')]);
    });
    var pieces = [].concat.apply([], steps);
    window.musiclimePlays = window.musiclimePlays || [];
    window.musiclimePlays.push({pair: button.dataset.pair,
      clip: pieces.map(function (p) { return p.clip; }).join('+'),
      start: pieces.length ? pieces[0].start : null,
      end: pieces.length ? pieces[pieces.length - 1].end : null, units: units});
    if (!steps.length) { return; }
    var at = 0;
    start(steps[at]);
    timer = setInterval(function () {
      var done = steps[at].every(function (p) {
        var clip = clips[p.clip];
        if (clip && (clip.ended || clip.currentTime >= p.end)) { clip.pause(); }
        return !clip || clip.paused;
      });
      if (!done) { return; }
      at += 1;
      if (at < steps.length) { start(steps[at]); } else { stop(); }
    }, 25);
  }
  document.addEventListener('click', function (ev) {
    var button = ev.target.closest('button.pair');
    if (button) { ev.preventDefault(); play(button); }
    else if (ev.target.closest('button.play, td.cell, button.stop')) { stop(); }
  }, true);
})();
"""

PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{song_id}: MusicLIME explanation</title>
<style>{css}</style></head>
<body>
<h1>{song_id}: why '{label_name}'?</h1>
<p class="summary">{summary}</p>
{warnings}
{modality}
<div class="cols"><div><h2>Prediction</h2>{prediction}</div>
{fit}</div>
<h2>Audio: stem x segment</h2>
{audio_note}{controls}
{heatmap}
{legend}
<h2>Top features</h2>
{top_features}{interactions}
<h2>Lyrics ({lyrics_unit} units)</h2>
{lyrics}
<h2>Settings</h2>
<details open id="settings"><summary>Explainer settings (<code>exp.params</code>)</summary>
{settings}</details>
{extra}
<p class="note">musiclime explanation of {song_id}, {timestamp}</p>
{audio_tags}
<script>{js}</script>
</body></html>
"""
