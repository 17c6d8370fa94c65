"""Audio factorization: stems x temporal segments, the interpretable audio components.

Components follow the reference explainer's order and naming: segment-major, for each
segment ``t`` and each stem ``s`` one component named ``{s}_T{t}``. Component ``c`` is stem
``c % S`` during segment ``c // S``.

The residual (mix minus the sum of the stems) is handled by ``residual``:

- ``keep`` (default): always on, so that the all-ones mask reproduces the original mix
  exactly and row 0's prediction is the unperturbed prediction;
- ``feature``: a fifth stem named ``residual``, cut into segments like the others;
- ``drop``: discarded, the reference explainer's behaviour (the all-ones mask is then the
  sum of the stems, not the mix).

Segments are either a fixed count (equal lengths, the remainder of the integer division given
to the last segment instead of silently falling outside every segment, as it does in the
reference) or explicit boundaries in seconds. Audio outside every segment stays always on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

RESIDUAL_MODES = ("keep", "feature", "drop")


def segment_bounds(n_samples: int, sample_rate: int, segments: int | None = 10,
                   boundaries: Sequence[float] | None = None) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of the temporal segments.

    ``boundaries`` (seconds, strictly increasing, at least two values) wins over ``segments``.
    """
    if boundaries is not None and len(boundaries) > 0:
        b = [float(x) for x in boundaries]
        if len(b) < 2 or any(b1 <= b0 for b0, b1 in zip(b, b[1:], strict=False)) or b[0] < 0:
            raise ValueError(
                f"segment boundaries must be >= 0 and strictly increasing, at least two values "
                f"(seconds), got {list(boundaries)}"
            )
        duration = n_samples / sample_rate
        if b[-1] > duration + 1e-6:
            raise ValueError(
                f"segment boundary {b[-1]} s lies past the end of the audio ({duration:.3f} s)"
            )
        idx = [min(n_samples, int(round(x * sample_rate))) for x in b]
        return [(s, e) for s, e in zip(idx, idx[1:], strict=False)]
    if segments is None or int(segments) < 1:
        raise ValueError(f"temporal_segments must be a positive integer, got {segments}")
    segments = int(segments)
    if n_samples < segments:
        raise ValueError(f"audio of {n_samples} samples is too short for {segments} segments")
    base = n_samples // segments
    starts = [t * base for t in range(segments)]
    ends = starts[1:] + [n_samples]  # the remainder goes to the last segment
    return list(zip(starts, ends, strict=True))


def stack_stems(stems: Mapping[str, np.ndarray], n_samples: int, sample_rate: int,
                stems_rate: int | None = None) -> np.ndarray:
    """The stems as one float32 ``(S, n_samples)`` array, filled one stem at a time.

    A long song's stems are large (four 10-minute stems at 22.05 kHz are 212 MB): filling a
    preallocated array holds at most one resampled stem besides it, where ``np.stack`` of a
    resampled dict holds every stem twice. Stems at another rate (``stems_rate``) are
    resampled and trimmed or zero-padded to ``n_samples`` (resampling round trips can be off by
    a few samples); stems at ``sample_rate`` must already have ``n_samples`` samples.
    """
    from ..io.audio import resample

    convert = stems_rate is not None and int(stems_rate) != int(sample_rate)
    out = np.empty((len(stems), int(n_samples)), dtype=np.float32)
    for i, (name, y) in enumerate(stems.items()):
        y = np.asarray(y, dtype=np.float32)
        if convert:
            y = resample(y, int(stems_rate), int(sample_rate))
            m = min(y.shape[0], out.shape[1])
            out[i, :m] = y[:m]
            out[i, m:] = 0.0
        elif y.shape != (out.shape[1],):
            raise ValueError(f"stem {name!r} has shape {y.shape} but the mix has "
                             f"{out.shape[1]} samples")
        else:
            out[i] = y
    return out


def residual_of(mix: np.ndarray, stems: np.ndarray) -> np.ndarray:
    """``mix - sum(stems)`` in float64, returned as float32.

    The stems are summed row by row into one float64 accumulator, in the order (and so with
    the rounding) of ``stems.astype(float64).sum(0)``, without its float64 copy of every stem.
    """
    total = stems[0].astype(np.float64) if stems.shape[0] else np.zeros(mix.shape, np.float64)
    for row in stems[1:]:
        total += row
    np.subtract(mix, total, out=total)
    return total.astype(np.float32)


@dataclass
class AudioFactorization:
    """Stems of one song cut into temporal segments.

    Attributes
    ----------
    mix: the original mono mix, float32 (N,).
    stems: separated stems, float32 (S, N), in ``stem_names`` order.
    stem_names: names of the separated stems.
    sample_rate: rate of ``mix`` and ``stems`` (Hz).
    bounds: ``[start, end)`` sample ranges of the segments.
    residual_mode: ``keep``, ``feature`` or ``drop``.
    """

    mix: np.ndarray
    stems: np.ndarray
    stem_names: tuple[str, ...]
    sample_rate: int
    bounds: list[tuple[int, int]]
    residual_mode: str = "keep"
    residual: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.mix = np.ascontiguousarray(self.mix, dtype=np.float32)
        self.stems = np.ascontiguousarray(self.stems, dtype=np.float32)
        self.stem_names = tuple(self.stem_names)
        if self.residual_mode not in RESIDUAL_MODES:
            raise ValueError(f"residual must be one of {RESIDUAL_MODES}, got {self.residual_mode!r}")
        if self.stems.ndim != 2 or self.stems.shape[0] != len(self.stem_names):
            raise ValueError(f"stems must be (S={len(self.stem_names)}, N), got {self.stems.shape}")
        if self.stems.shape[1] != self.mix.shape[0]:
            raise ValueError(
                f"stems have {self.stems.shape[1]} samples but the mix has {self.mix.shape[0]}"
            )
        self.bounds = [(int(s), int(e)) for s, e in self.bounds]
        self.residual = residual_of(self.mix, self.stems)

    @classmethod
    def from_stems(cls, mix: np.ndarray, stems: Mapping[str, np.ndarray], sample_rate: int,
                   segments: int | None = 10, boundaries: Sequence[float] | None = None,
                   residual: str = "keep", stems_rate: int | None = None) -> AudioFactorization:
        """Factorize ``mix`` (at ``sample_rate``) with ``stems`` (at ``stems_rate``, default
        ``sample_rate``; resampled and trimmed or zero-padded to the mix when it differs)."""
        names = tuple(stems)
        arr = stack_stems(stems, len(mix), sample_rate, stems_rate)
        bounds = segment_bounds(len(mix), sample_rate, segments, boundaries)
        return cls(mix=mix, stems=arr, stem_names=names, sample_rate=int(sample_rate),
                   bounds=bounds, residual_mode=residual)

    # --- the components -----------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return int(self.mix.shape[0])

    @property
    def n_segments(self) -> int:
        return len(self.bounds)

    @property
    def feature_stem_names(self) -> tuple[str, ...]:
        """Stems that are switched on and off (the residual too in ``feature`` mode)."""
        if self.residual_mode == "feature":
            return self.stem_names + ("residual",)
        return self.stem_names

    @property
    def feature_stems(self) -> np.ndarray:
        if self.residual_mode == "feature":
            return np.concatenate([self.stems, self.residual[None]], axis=0)
        return self.stems

    @property
    def n_components(self) -> int:
        return self.n_segments * len(self.feature_stem_names)

    def component_names(self) -> list[str]:
        return [f"{s}_T{t}" for t in range(self.n_segments) for s in self.feature_stem_names]

    def component_info(self, index: int) -> tuple[str, int, int, int]:
        """``(stem, segment, start_sample, end_sample)`` of component ``index``."""
        n_stems = len(self.feature_stem_names)
        t, s = divmod(int(index), n_stems)
        start, end = self.bounds[t]
        return self.feature_stem_names[s], t, start, end

    @property
    def base(self) -> np.ndarray:
        """The all-components-on waveform: the mix itself, or the sum of stems under ``drop``."""
        if self.residual_mode == "drop":
            return (self.mix - self.residual).astype(np.float32)
        return self.mix

    def component(self, index: int) -> np.ndarray:
        """Full-length waveform of one component (zero outside its segment)."""
        stem, _, start, end = self.component_info(index)
        out = np.zeros(self.n_samples, dtype=np.float32)
        out[start:end] = self.feature_stems[self.feature_stem_names.index(stem), start:end]
        return out

    def compose(self, active: Sequence[bool] | np.ndarray) -> np.ndarray:
        """One perturbed waveform (numpy reference path; the hot path is ``composition``).

        Computed as ``base - sum of the inactive components``, which is exact for the all-ones
        mask (nothing is subtracted) and algebraically ``always-on + sum of active components``.
        """
        active = np.asarray(active, dtype=bool)
        if active.shape != (self.n_components,):
            raise ValueError(f"mask has {active.shape} entries; {self.n_components} components")
        out = self.base.copy()
        for c in np.flatnonzero(~active):
            stem, _, start, end = self.component_info(c)
            out[start:end] -= self.feature_stems[self.feature_stem_names.index(stem), start:end]
        return out

    def sum_components(self, indices: Sequence[int]) -> np.ndarray:
        """Sum of the given components only (audioLIME's listenable explanation)."""
        out = np.zeros(self.n_samples, dtype=np.float32)
        for c in indices:
            out += self.component(c)
        return out
