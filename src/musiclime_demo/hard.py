"""The hard planted corpus: songs whose ground truth is known by construction and in which
explainer settings (segments, num_samples, kernel width, sampler, separator) make a difference.

Each song is the demo corpus's music (:func:`musiclime_demo.corpus.render_song`, a ``human``
render: no glitch, no machine-themed lines) turned down to leave headroom, with cues for the
white-box :class:`musiclime.models.cues.CueDetectorClassifier` (``model=cues``) planted on top.
Every cue is a pure sine at one detector's frequency (7.6-9.3 kHz, 10 ms fades) added to one
stem, or a keyword line in the lyrics. Kinds (the ``kind`` of each annotated span):

- ``off_grid``: a 0.4-1.2 s tone (``off_grid`` detector) straddling a boundary of the default
  10-segment grid (30-70 % on each side), so it is shorter than a segment and split by one;
  planned effect 1.2-2.0 logit (divided by their number in a long song);
- ``weak``: a 1-2.5 s tone (``weak`` detector) worth 0.15-0.4 logit, and one keyword line
  (``neon`` 0.25 or ``chrome`` 0.4 logit);
- ``interacting``: a pair that counts only together (1.0-1.6 logit, divided in a long song):
  either two tones in two different stems over the same span (``pair_a`` + ``pair_b``; the
  classifier multiplies them frame by frame), or a tone in one stem (``gated``) and a line
  with the word ``signal`` (the tone counts only while the line is there);
- ``decoy``: loud, salient events the classifier ignores by construction: noise bursts
  band-limited to 250-4000 Hz and "near-miss" sines a few hundred Hz from the detectors,
  3-8 dB above the music's level, in (stem, segment) cells of the default grid that hold no
  cue of that stem, and one machine-themed line from the demo corpus (:data:`AI_PHRASES`).

A cue's amplitude is calibrated so that its term in the classifier's logit equals the planned
effect. Then the generator checks every song by ablation (the mix rendered without one cue,
without a pair's partner, without every cue, ...) and writes the measured effect of each cue
into the evidence JSON: ``effect = {planned_logit, logit, prob}``, the change of the ``ai``
logit and of ``P(ai)`` when the cue is removed from the full song (for a pair's member also
``alone_logit``/``alone_prob``: the change when it is removed once its partner is gone, ~0). It
fails loudly (:class:`HardCorpusError`) if a cue misses its planned logit, a member of a pair
counts alone, a decoy or the music moves the logit, or a weak cue is not weak.

Annotation (``*.evidence.json``, the demo corpus's format plus): ``audio`` and ``lyrics`` hold
the evidence (the cues) with ``kind``, ``cue``, ``effect`` (and ``pair``, ``hz``); ``decoys``
the decoys (same span format: :func:`musiclime.metrics.evidence.audio_evidence` maps them to
features); ``pairs`` the interacting pairs with their members; ``grid`` the default grid;
``check`` the song-level numbers (``p_full``, ``p_base``: no cues, ``background_logit``).

CLI: ``python -m musiclime_demo.hard --out data/hard [--n-short 24 --n-long 4 --seed 0]``
writes ``manifest.csv`` (split ``short`` for 20 s songs, ``long`` for 3-4 minutes),
``songs/hard_0000.*``, ``summary.csv`` (one row per cue and decoy), ``summary.md`` and
``hard.json`` (the settings).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from musiclime.io.fileio import atomic_path
from musiclime_demo import hard_plan as plan
from musiclime_demo.corpus import (
    MANIFEST_NAME,
    SAMPLE_RATE,
    STEMS,
    CorpusSong,
    _active_rms,
    _write_text,
    render_song,
    write_manifest,
    write_song,
)
from musiclime_demo.hard_check import (
    SUMMARY_COLUMNS,
    check_song,
    evidence_of,
    summary_markdown,
    summary_rows,
)
from musiclime_demo.hard_plan import HardCorpusError

log = logging.getLogger(__name__)

__all__ = ["HardCorpusError", "generate_hard_corpus", "render_hard_song"]

#: music of hard song i is demo song HARD_INDEX_OFFSET + i (not a song of the demo's splits)
HARD_INDEX_OFFSET = 10_000
MUSIC_GAIN = 0.5  # the demo mix peaks at 0.9; cues and decoys go on top
PEAK = 0.97
SHORT_SECONDS = 20.0
LONG_SECONDS = (180.0, 240.0)


def hard_song_id(index: int) -> str:
    return f"hard_{index:04d}"


def song_duration(index: int, n_short: int, seed: int = 0,
                  short: float = SHORT_SECONDS, long: Sequence[float] = LONG_SECONDS) -> float:
    """Songs ``0 .. n_short-1`` last ``short`` seconds; later ones a whole number of seconds
    in ``long`` (drawn from the song's own stream)."""
    if index < n_short:
        return float(short)
    rng = np.random.default_rng([seed, index, plan.STREAM_DURATION])
    return float(round(rng.uniform(*long)))


def _quantise(x: np.ndarray) -> np.ndarray:
    """Onto the 16-bit grid (so the stems are written losslessly and the mix is their sum)."""
    return (np.clip(np.round(x * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


def _stem(music: dict[str, np.ndarray], events: list[plan.Event], stem: str,
          leave_out: frozenset = frozenset()) -> np.ndarray:
    """Stem ``stem``: its music plus its audio events but those at ``leave_out``, quantised."""
    x = music[stem].copy()
    for i, ev in enumerate(events):
        if ev.stem == stem and i not in leave_out:
            x[ev.a:ev.a + len(ev.wave)] += ev.wave
    return _quantise(x)


def _stems(music: dict[str, np.ndarray], events: list[plan.Event]) -> dict[str, np.ndarray]:
    return {s: _stem(music, events, s) for s in STEMS}


def render_hard_song(index: int, seed: int = 0, duration: float = SHORT_SECONDS,
                     classifier=None) -> tuple[CorpusSong, list[dict]]:
    """Render and check hard song ``index`` of ``duration`` seconds; a pure function of its
    arguments (:func:`song_duration` gives the corpus's durations).

    Returns the song (its ``evidence`` carries the measured effects) and one summary row per
    cue and decoy. ``classifier``: the cue detector to calibrate and check against (default:
    ``CueDetectorClassifier()``, what ``model=cues`` builds). Raises :class:`HardCorpusError`
    when a cue misses its planned effect (module docstring).
    """
    from musiclime.models.cues import CueDetectorClassifier

    t0 = time.perf_counter()
    clf = classifier or CueDetectorClassifier()
    duration = float(duration)
    split = "short" if duration <= 60 else "long"
    base = render_song(HARD_INDEX_OFFSET + index, seed=seed, split=split, duration=duration,
                       label="human")
    sr, n = base.sample_rate, len(base.mix)
    music = {s: base.stems[s].astype(np.float64) * MUSIC_GAIN for s in STEMS}
    rng = np.random.default_rng([seed, index, plan.STREAM_PLAN])
    units = [str(s["text"]) for s in base.evidence["line_spans"]]
    events = plan.plan_events(rng, index, duration, sr, n, units)
    music_rms = _active_rms(sum(music.values()), sr)
    plan.synthesise(events, rng, sr, n, music_rms, clf)
    stems = _stems(music, events)
    peak = float(np.abs(sum(stems.values())).max())
    if peak > PEAK:  # turn the music and the decoys down; cues keep their calibrated level
        scale = PEAK / peak * 0.98
        music = {s: x * scale for s, x in music.items()}
        for ev in events:
            if ev.kind == "decoy" and ev.wave is not None:
                ev.wave = ev.wave * scale
        stems = _stems(music, events)
        if np.abs(sum(stems.values())).max() >= 1.0:
            raise HardCorpusError(f"{hard_song_id(index)}: the mix clips")
    lines = plan.apply_lyrics(base.lyrics, events)
    line_units = [plan.replaced_text(units, events, i) for i in range(len(units))]
    check = check_song(clf, events, stems, line_units, sr,
                       lambda stem, out: _stem(music, events, stem, out))
    evidence = evidence_of(hard_song_id(index), base, events, check, line_units)
    mix = stems["vocals"] + stems["drums"] + stems["bass"] + stems["other"]
    song = CorpusSong(song_id=hard_song_id(index), index=index, seed=seed, split=split,
                      label="ai", sample_rate=sr, duration=n / sr, stems=stems, mix=mix,
                      lyrics=lines, evidence=evidence,
                      info={**base.info, "music_index": HARD_INDEX_OFFSET + index,
                            "render_s": time.perf_counter() - t0})
    rows = summary_rows(song, events)
    return song, rows


def _render_and_write(job: tuple) -> tuple[dict[str, str], list[dict], float]:
    index, seed, n_short, out_dir = job
    t0 = time.perf_counter()
    song, rows = render_hard_song(index, seed=seed,
                                  duration=song_duration(index, n_short, seed))
    row = write_song(song, Path(out_dir))
    dt = time.perf_counter() - t0
    for r in rows:
        r["render_s"] = round(dt, 3)
    return row, rows, dt


def generate_hard_corpus(out_dir: str | os.PathLike, n_short: int = 24, n_long: int = 4,
                         seed: int = 0, workers: int = 1) -> Path:
    """Render, check and write ``n_short`` 20 s songs and ``n_long`` songs of 3-4 minutes
    under ``out_dir``; returns the manifest's path (module docstring for the files)."""
    if n_short < 0 or n_long < 0 or n_short + n_long == 0:
        raise ValueError("n_short and n_long must be >= 0, and not both 0")
    out_dir = Path(out_dir)
    (out_dir / "songs").mkdir(parents=True, exist_ok=True)
    jobs = [(i, seed, n_short, str(out_dir)) for i in range(n_short + n_long)]
    results = []
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_render_and_write, jobs))
    else:
        for job in jobs:
            results.append(_render_and_write(job))
            log.info("%s: %.1f s", results[-1][0]["song_id"], results[-1][2])
    log.info("rendered and checked %d hard songs in %.1f s", len(jobs), time.perf_counter() - t0)
    write_manifest(out_dir / MANIFEST_NAME, [r[0] for r in results])
    rows = [row for r in results for row in r[1]]
    _write_summary_csv(out_dir / "summary.csv", rows)
    _write_text(out_dir / "summary.md", summary_markdown(rows, [r[0] for r in results],
                                                              [r[2] for r in results]))
    from musiclime.models.cues import CueDetectorClassifier

    clf = CueDetectorClassifier()
    settings = {"kind": "hard", "seed": seed, "n_short": n_short, "n_long": n_long,
                "sample_rate": SAMPLE_RATE, "music_gain": MUSIC_GAIN,
                "classifier": {"tones": clf.tones, "tone_weights": clf.tone_weights,
                               "pairs": clf.pairs, "keywords": clf.keywords,
                               "gates": clf.gates, "bias": clf.bias,
                               "reference_amplitude": clf.reference_amplitude,
                               "sample_rate": clf.sample_rate}}
    _write_text(out_dir / "hard.json", json.dumps(settings, indent=1) + "\n")
    return out_dir / MANIFEST_NAME


def _write_summary_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path, ".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(SUMMARY_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in SUMMARY_COLUMNS})


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m musiclime_demo.hard",
                                description="Render and check the hard planted corpus.")
    p.add_argument("--out", required=True, help="output folder (manifest.csv, songs/, ...)")
    p.add_argument("--n-short", type=int, default=24, help="songs of 20 s (split 'short')")
    p.add_argument("--n-long", type=int, default=4, help="songs of 3-4 minutes (split 'long')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        manifest = generate_hard_corpus(args.out, args.n_short, args.n_long, args.seed,
                                        args.workers)
    except HardCorpusError as exc:
        raise SystemExit(f"hard corpus check failed: {exc}") from exc
    log.info("manifest: %s", manifest)


if __name__ == "__main__":
    main()
