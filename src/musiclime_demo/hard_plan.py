"""The hard corpus's cues: where they go, how they sound, how they are annotated and summed up
(``musiclime_demo.hard`` renders and checks them; its docstring describes the kinds)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from musiclime_demo.corpus import AI_PHRASES, STEMS

STREAM_PLAN = 3  # the demo corpus uses streams 0-2 of (seed, index)
STREAM_DURATION = 4
GRID_SEGMENTS = 10  # the default temporal_segments: off-grid cues straddle its boundaries
MARGIN_S = 0.3  # no event this close to the song's start or end
GAP_S = 0.25  # least silence between two events (of any stem)
FADE_S = 0.01

#: planned logit per cue kind (off_grid and interacting: divided by their count in a song)
OFF_GRID_LOGIT = (1.2, 2.0)
PAIR_LOGIT = (1.0, 1.6)
WEAK_LOGIT = (0.15, 0.4)
WEAK_PROB = (0.005, 0.1)  # a weak cue must move P(ai) by this much, no more, no less
DECOY_DB = (3.0, 8.0)  # decoy level over the music's active RMS
NOISE_BAND_HZ = (250.0, 4000.0)
#: decoy sines: each lies >= 250 Hz from every detector (checked in plan_events)
NEAR_MISS_HZ = (6950.0, 7270.0, 8500.0, 9040.0, 9640.0)
KEYWORD_TEMPLATES = ("{kw} lights over the water", "dancing in the {kw} glow",
                     "a {kw} heart beats slow", "{kw} rain on the avenue")


class HardCorpusError(RuntimeError):
    """A planted cue does not have its intended effect on the cue detector."""


@dataclass
class Event:
    """One planted cue or decoy: an audio event (``stem``) or a lyric line (``unit_index``)."""

    kind: str  # off_grid, weak, interacting, decoy
    cue: str  # detector tone, keyword, or decoy type (noise, near_miss, ai_phrase)
    term: str | None = None  # the classifier term it feeds (None: a decoy)
    stem: str | None = None
    start: float = 0.0
    end: float = 0.0
    unit_index: int | None = None
    text: str | None = None
    pair: str | None = None
    planned: float = 0.0  # planned logit
    hz: float | None = None
    level_db: float | None = None
    amplitude: float | None = None
    a: int = 0  # first sample (corpus rate)
    wave: np.ndarray | None = field(default=None, repr=False)
    effect: dict = field(default_factory=dict)


def grid_bounds(n: int, sr: int, segments: int = GRID_SEGMENTS) -> list[float]:
    """Segment boundaries in seconds, as musiclime cuts ``n`` samples (the remainder goes to
    the last segment)."""
    base = n // segments
    return [t * base / sr for t in range(segments)] + [n / sr]


class _Placer:
    """Non-overlapping event spans; decoys avoid every default-grid segment that holds an audio
    cue, in any stem: a real separator leaks a cue into the other stems of its segment (measured:
    the demo separator put 0.18-0.28 logit of an off-grid tone into a decoy's cell), and a decoy
    there would be scored as chosen for what the classifier actually heard."""

    def __init__(self, duration: float, bounds: list[float]):
        self.duration, self.bounds = duration, bounds
        self.busy: list[tuple[float, float]] = []
        self.cue_segments: set[int] = set()

    def segments(self, s: float, e: float) -> list[int]:
        return [t for t in range(len(self.bounds) - 1)
                if min(e, self.bounds[t + 1]) - max(s, self.bounds[t]) > 0]

    def free(self, s: float, e: float, stems=(), decoy: bool = False) -> bool:
        if s < MARGIN_S or e > self.duration - MARGIN_S:
            return False
        if any(s < be + GAP_S and e + GAP_S > bs for bs, be in self.busy):
            return False
        return not decoy or not self.cue_segments & set(self.segments(s, e))

    def take(self, s: float, e: float, stems=(), decoy: bool = False) -> None:
        self.busy.append((s, e))
        if not decoy and stems:
            self.cue_segments |= set(self.segments(s, e))

    def place(self, rng: np.random.Generator, length: float, stems=(), decoy=False) -> float:
        for _ in range(2000):
            s = round(float(rng.uniform(MARGIN_S, self.duration - MARGIN_S - length)), 3)
            if self.free(s, s + length, stems, decoy):
                self.take(s, s + length, stems, decoy)
                return s
        raise HardCorpusError(f"no room for a {length:.2f} s event in {self.duration} s")


def _stem(rng: np.random.Generator) -> str:
    return str(rng.choice(STEMS))


def plan_events(rng: np.random.Generator, index: int, duration: float, sr: int, n: int,
                units: list[str]) -> list[Event]:
    """Where every cue and decoy of one song goes, and its planned effect (no audio yet)."""
    from musiclime.models.cues import KEYWORDS, TONES

    assert all(abs(h - t) >= 250 for h in NEAR_MISS_HZ for t in TONES.values())
    bounds = grid_bounds(n, sr)
    seg = bounds[1] - bounds[0]
    k = max(1, round(duration / 60))
    n_pairs = max(1, round(duration / 120))
    placer = _Placer(duration, bounds)
    events: list[Event] = []
    for b in sorted(int(x) for x in rng.choice(np.arange(1, GRID_SEGMENTS), k, replace=False)):
        length = float(rng.uniform(0.4, min(1.2, 0.45 * seg)))
        start = round(bounds[b] - float(rng.uniform(0.3, 0.7)) * length, 3)
        stem = _stem(rng)
        if not placer.free(start, start + length):
            raise HardCorpusError(f"off-grid cue at {start:.2f} s collides")
        placer.take(start, start + length, [stem])
        events.append(Event("off_grid", "off_grid", "tone:off_grid", stem, start,
                            round(start + length, 3),
                            planned=float(rng.uniform(*OFF_GRID_LOGIT)) / k))
    lyric: list[Event] = []
    for j in range(n_pairs):
        length = float(rng.uniform(0.8, 2.0))
        planned = float(rng.uniform(*PAIR_LOGIT)) / n_pairs
        pid = f"p{j}"
        if (index + j) % 2 == 0:  # two stems carry it together
            stems = [str(s) for s in rng.choice(STEMS, 2, replace=False)]
            start = placer.place(rng, length, stems)
            for cue, stem in zip(("pair_a", "pair_b"), stems, strict=True):
                events.append(Event("interacting", cue, "pair:pair_a+pair_b", stem, start,
                                    round(start + length, 3), pair=pid, planned=planned))
        else:  # a stem and a lyric line carry it together
            stem = _stem(rng)
            start = placer.place(rng, length, [stem])
            events.append(Event("interacting", "gated", "gate:gated+signal", stem, start,
                                round(start + length, 3), pair=pid, planned=planned))
            lyric.append(Event("interacting", "signal", "gate:gated+signal", pair=pid,
                               planned=planned))
    for _ in range(k):
        length = float(rng.uniform(1.0, 2.5))
        stem = _stem(rng)
        start = placer.place(rng, length, [stem])
        events.append(Event("weak", "weak", "tone:weak", stem, start, round(start + length, 3),
                            planned=float(rng.uniform(*WEAK_LOGIT))))
    word = str(rng.choice(sorted(KEYWORDS)))
    lyric.append(Event("weak", word, f"keyword:{word}", planned=KEYWORDS[word]))
    for j in range(2 * k):
        noise = j % 2 == 0
        length = float(rng.uniform(0.3, 1.2) if noise else rng.uniform(0.5, 1.5))
        stem = _stem(rng)
        start = placer.place(rng, length, [stem], decoy=True)
        events.append(Event("decoy", "noise" if noise else "near_miss", None, stem, start,
                            round(start + length, 3), level_db=float(rng.uniform(*DECOY_DB)),
                            hz=None if noise else float(rng.choice(NEAR_MISS_HZ))))
    lyric.append(Event("decoy", "ai_phrase", None, text=str(rng.choice(AI_PHRASES))))
    if len(units) < len(lyric):
        raise HardCorpusError(f"{len(units)} lyric lines, {len(lyric)} needed")
    for ev, u in zip(lyric, rng.choice(len(units), len(lyric), replace=False), strict=True):
        ev.unit_index = int(u)
        if ev.text is None:
            ev.text = str(rng.choice(KEYWORD_TEMPLATES)).format(kw=ev.cue)
    for ev in events:
        ev.a = int(round(ev.start * sr))
    return events + lyric


def _fade(n: int, sr: int) -> np.ndarray:
    env = np.ones(n)
    f = min(int(FADE_S * sr), n // 2)
    if f > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(f) / f)
        env[:f], env[-f:] = ramp, ramp[::-1]
    return env


def _sine(n: int, hz: float, sr: int) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(n) / sr) * _fade(n, sr)


def _noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    hz = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(hz < NOISE_BAND_HZ[0]) | (hz > NOISE_BAND_HZ[1])] = 0
    x = np.fft.irfft(spec, n) * _fade(n, sr)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _term_value(clf, n: int, sr: int, events: list[Event], term: str, words: str) -> float:
    """The classifier's ``term`` for the audio of ``events`` alone (and lyrics ``words``)."""
    import torch

    from musiclime.io.audio import resample

    x = np.zeros(n)
    for ev in events:
        x[ev.a:ev.a + len(ev.wave)] += ev.wave
    y = resample(x.astype(np.float32), sr, clf.sample_rate)
    return float(clf.terms([words], torch.from_numpy(y[None].astype(np.float64)))[term][0])


def synthesise(events: list[Event], rng: np.random.Generator, sr: int, n: int,
               music_rms: float, clf) -> None:
    """Give every audio event its waveform; cues are calibrated to their planned logit."""
    if sr != 44100:
        raise ValueError(f"the hard corpus renders at 44100 Hz, not {sr}")
    for ev in events:
        if ev.stem is None:
            continue
        m = int(round((ev.end - ev.start) * sr))
        if ev.kind == "decoy":
            level = music_rms * 10 ** (ev.level_db / 20)
            ev.wave = (_noise(m, sr, rng) * level if ev.cue == "noise"
                       else _sine(m, ev.hz, sr) * level * np.sqrt(2))
        else:
            ev.hz = clf.tones[ev.cue]
            ev.wave = _sine(m, ev.hz, sr)
    groups: dict[str, list[Event]] = {}
    for ev in events:
        if ev.stem is not None and ev.kind != "decoy":
            groups.setdefault(ev.pair or f"{ev.cue}@{ev.start}", []).append(ev)
    for group in groups.values():
        words = " ".join(w for _, w, _ in clf.gates)  # a gate's tone counts with its word
        unit = _term_value(clf, n, sr, group, group[0].term, words)
        if unit <= 0:
            raise HardCorpusError(f"{group[0].cue} at {group[0].start} s: the detector does "
                                  "not hear the cue")
        amp = float(np.sqrt(group[0].planned / unit))
        for ev in group:
            ev.amplitude, ev.wave = amp, ev.wave * amp


def replaced_text(units: list[str], events: list[Event], i: int) -> str:
    """Line unit ``i`` after the lyric events replaced their lines."""
    for ev in events:
        if ev.unit_index == i:
            return str(ev.text)
    return units[i]


def apply_lyrics(lyrics: str, events: list[Event]) -> str:
    """The lyrics file with the lyric events' lines in place of the lines they replace
    (line units as the corpus counts them: not empty, not wholly ``[..]`` or ``(..)``)."""
    new = {ev.unit_index: ev.text for ev in events if ev.unit_index is not None}
    out, unit = [], 0
    for raw in lyrics.splitlines():
        line = raw.strip()
        meta = (line.startswith("[") and line.endswith("]")) or (
            line.startswith("(") and line.endswith(")"))
        if line and not meta:
            raw = new.get(unit, raw)
            unit += 1
        out.append(raw)
    return "\n".join(out) + "\n"
