"""The hard corpus's check by ablation, its annotation and its summary (``musiclime_demo.hard``).

The check renders the song without one event (its stem re-quantised without it, or its lyric
line removed, as LIME removes a line), without a pair's partner, without every cue and without
every event, runs the cue detector on each mix (resampled to the detector's rate as musiclime
does) and compares the logit changes with the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import mean

import numpy as np

from musiclime_demo.hard_plan import (
    GRID_SEGMENTS,
    WEAK_PROB,
    Event,
    HardCorpusError,
    grid_bounds,
)

#: |measured - planned| logit a cue may miss by: REL_TOL * planned + ABS_TOL
REL_TOL, ABS_TOL = 0.05, 0.02
DECOY_TOL = 0.005  # logit a decoy may move
BACKGROUND_TOL = 0.1  # logit the music and the decoys may add in all
SUMMARY_COLUMNS = ("song_id", "split", "duration", "kind", "cue", "modality", "stem",
                   "unit_index", "start", "end", "pair", "hz", "amplitude", "level_db",
                   "planned_logit", "logit", "prob", "alone_logit", "alone_prob", "p_full",
                   "p_base", "render_s")


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def _r(x: float) -> float:
    return round(float(x), 6)


def check_song(clf, events: list[Event], stems: dict[str, np.ndarray], units: list[str],
               sr: int, build_stem: Callable[[str, frozenset], np.ndarray]) -> dict:
    """Measure every event's effect by ablation into ``event.effect``; returns the song-level
    numbers and raises :class:`HardCorpusError` when the plan is not met."""
    import torch

    from musiclime.io.audio import resample

    cache: dict[frozenset, float] = {}

    def logit(out: frozenset) -> float:
        if out not in cache:
            gone_stems = {events[i].stem for i in out if events[i].stem is not None}
            mix = sum(build_stem(s, out) if s in gone_stems else x for s, x in stems.items())
            y = resample(np.asarray(mix, dtype=np.float32), sr, clf.sample_rate)
            gone = {events[i].unit_index for i in out if events[i].unit_index is not None}
            text = "\n".join(u for j, u in enumerate(units) if j not in gone)
            audio = torch.from_numpy(np.asarray(y, dtype=np.float64)[None])
            cache[out] = float(clf.logit([text], audio)[0])
        return cache[out]

    none = frozenset()
    full = logit(none)
    cues = frozenset(i for i, ev in enumerate(events) if ev.kind != "decoy")
    for i, ev in enumerate(events):
        without = logit(frozenset({i}))
        ev.effect = {"planned_logit": _r(ev.planned), "logit": _r(full - without),
                     "prob": _r(_sigmoid(full) - _sigmoid(without))}
        partners = frozenset(j for j in cues if j != i and ev.pair and events[j].pair == ev.pair)
        if partners:
            a, b = logit(partners), logit(partners | {i})
            ev.effect.update(alone_logit=_r(a - b), alone_prob=_r(_sigmoid(a) - _sigmoid(b)))
    base, clean = logit(cues), logit(frozenset(range(len(events))))
    check = {"logit_full": _r(full), "p_full": _r(_sigmoid(full)), "logit_base": _r(base),
             "p_base": _r(_sigmoid(base)), "background_logit": _r(clean - clf.bias),
             "decoy_logit": _r(base - clean), "classifier_rows": len(cache)}
    problems = problems_of(events, check)
    if problems:
        raise HardCorpusError("; ".join(problems))
    return check


def problems_of(events: list[Event], check: dict) -> list[str]:
    """What in the measured effects breaks the plan (empty: nothing)."""
    out = []
    for ev in events:
        where = f"{ev.kind} {ev.cue} " + (f"in {ev.stem} at {ev.start:.2f}-{ev.end:.2f} s"
                                          if ev.stem else f"on line {ev.unit_index}")
        e = ev.effect
        if ev.kind == "decoy":
            if abs(e["logit"]) > DECOY_TOL:
                out.append(f"{where} moves the logit by {e['logit']:+.4f}")
            continue
        if abs(e["logit"] - ev.planned) > REL_TOL * ev.planned + ABS_TOL:
            out.append(f"{where} moves the logit by {e['logit']:+.4f}, planned "
                       f"{ev.planned:+.4f}")
        # alone, a member meets only the music's faint background in its partner's detector
        if "alone_logit" in e and abs(e["alone_logit"]) > REL_TOL * ev.planned + ABS_TOL:
            out.append(f"{where} counts without its partner ({e['alone_logit']:+.4f})")
        if ev.kind == "weak" and not WEAK_PROB[0] <= e["prob"] <= WEAK_PROB[1]:
            out.append(f"{where} moves P(ai) by {e['prob']:+.4f}, outside {WEAK_PROB}")
    if abs(check["background_logit"]) > BACKGROUND_TOL:
        out.append(f"the music and decoys move the logit by {check['background_logit']:+.4f}")
    return out


def _audio_entry(ev: Event) -> dict:
    d = {"stem": ev.stem, "start": ev.start, "end": ev.end, "kind": ev.kind, "cue": ev.cue}
    if ev.hz is not None:
        d["hz"] = ev.hz
    if ev.pair:
        d["pair"] = ev.pair
    if ev.amplitude is not None:
        d["amplitude"] = round(ev.amplitude, 6)
    if ev.level_db is not None:
        d["level_db"] = round(ev.level_db, 2)
    return {**d, "effect": ev.effect}


def _line_entry(ev: Event, spans: list[dict]) -> dict:
    span = spans[ev.unit_index]
    d = {"unit_index": ev.unit_index, "text": ev.text, "start": span["start"],
         "end": span["end"], "kind": ev.kind, "cue": ev.cue}
    if ev.pair:
        d["pair"] = ev.pair
    return {**d, "effect": ev.effect}


def _pairs(events: list[Event]) -> list[dict]:
    out: dict[str, dict] = {}
    for ev in events:
        if not ev.pair:
            continue
        p = out.setdefault(ev.pair, {"pair": ev.pair, "kind": "interacting", "term": ev.term,
                                     "members": [], "effect": {
                                         k: ev.effect[k] for k in ("planned_logit", "logit",
                                                                   "prob")}})
        p["members"].append({"stem": ev.stem, "cue": ev.cue} if ev.stem else
                            {"unit_index": ev.unit_index, "cue": ev.cue})
    return list(out.values())


def evidence_of(song_id: str, base, events: list[Event], check: dict,
                units: list[str]) -> dict:
    """The song's ``*.evidence.json`` (``musiclime_demo.hard``'s docstring)."""
    spans = [{**s, "text": units[int(s["unit_index"])]} for s in base.evidence["line_spans"]]
    cues = [ev for ev in events if ev.kind != "decoy"]
    decoys = [ev for ev in events if ev.kind == "decoy"]
    n = len(base.mix)
    return {
        "song_id": song_id,
        "label": "ai",
        "sample_rate": base.sample_rate,
        "duration": n / base.sample_rate,
        "classifier": "musiclime.models.cues.CueDetectorClassifier",
        "audio": [_audio_entry(ev) for ev in cues if ev.stem],
        "lyrics": [_line_entry(ev, spans) for ev in cues if ev.stem is None],
        "decoys": [_audio_entry(ev) if ev.stem else _line_entry(ev, spans) for ev in decoys],
        "pairs": _pairs(events),
        "grid": {"segments": GRID_SEGMENTS,
                 "boundaries": [round(b, 6) for b in grid_bounds(n, base.sample_rate)]},
        "check": check,
        "line_spans": spans,
    }


def summary_rows(song, events: list[Event]) -> list[dict]:
    """One row of ``summary.csv`` per event."""
    rows = []
    for ev in events:
        rows.append({
            "song_id": song.song_id, "split": song.split, "duration": round(song.duration, 3),
            "kind": ev.kind, "cue": ev.cue, "modality": "audio" if ev.stem else "lyrics",
            "stem": ev.stem or "", "unit_index": "" if ev.unit_index is None else ev.unit_index,
            "start": ev.start if ev.stem else "", "end": ev.end if ev.stem else "",
            "pair": ev.pair or "", "hz": ev.hz or "",
            "amplitude": "" if ev.amplitude is None else round(ev.amplitude, 6),
            "level_db": "" if ev.level_db is None else round(ev.level_db, 2),
            **{k: ev.effect.get(k, "") for k in ("planned_logit", "logit", "prob", "alone_logit",
                                                 "alone_prob")},
            "p_full": song.evidence["check"]["p_full"],
            "p_base": song.evidence["check"]["p_base"]})
    return rows


def _span(values: list[float]) -> str:
    def f(x: float) -> str:
        return f"{x:+.3f}".replace("-0.000", "+0.000")

    return f"{f(mean(values))} [{f(min(values))}, {f(max(values))}]" if values else ""


def summary_markdown(rows: list[dict], songs: list[dict], seconds: list[float]) -> str:
    """``summary.md``: measured effects per cue kind, and the songs."""
    out = ["# Hard planted corpus: measured effects", "",
           "Effects are the change of the cue detector's `ai` logit and of P(ai) when one "
           "event is removed from the full song (`musiclime_demo.hard`); *alone*: the change "
           "when a pair's member is removed after its partner.", "",
           "| kind | cue | split | n | planned logit | measured logit | max miss | ΔP(ai) | "
           "alone ΔP(ai), max abs |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["kind"], r["cue"], r["split"]), []).append(r)
    for (kind, cue, split), rs in sorted(groups.items()):
        planned = [float(r["planned_logit"]) for r in rs]
        logit = [float(r["logit"]) for r in rs]
        miss = max(abs(a - b) for a, b in zip(logit, planned, strict=True))
        alone = [abs(float(r["alone_prob"])) for r in rs if r["alone_prob"] != ""]
        out.append(f"| {kind} | {cue} | {split} | {len(rs)} | {_span(planned)} | {_span(logit)} | "
                   f"{miss:.4f} | {_span([float(r['prob']) for r in rs])} | "
                   f"{f'{max(alone):.4f}' if alone else ''} |")
    out += ["", "| song | split | seconds | P(ai) | P(ai), no cues | cues | decoys | "
            "render + check s |", "|---|---|---|---|---|---|---|---|"]
    for song, dt in zip(songs, seconds, strict=True):
        rs = [r for r in rows if r["song_id"] == song["song_id"]]
        n_decoys = sum(r["kind"] == "decoy" for r in rs)
        out.append(f"| {song['song_id']} | {song['split']} | {song['duration']} | "
                   f"{rs[0]['p_full']:.3f} | {rs[0]['p_base']:.3f} | {len(rs) - n_decoys} | "
                   f"{n_decoys} | {dt:.1f} |")
    return "\n".join(out) + "\n"
