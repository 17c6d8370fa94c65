"""Perturbation masks: which features are on in each perturbed sample.

Rows are seeded Bernoulli(0.5) draws (lime's own sampler draws uniformly from {0, 1} as well);
row 0 is all ones, the unperturbed instance. Each entry consumes exactly one double from a
PCG64 stream in row-major order, so the first ``n`` rows of a draw of ``N`` equal the draw of
``n`` (the prefix property): a num_samples sweep fits on prefixes of one prediction run.

For few features (``F <= 16``) masks are drawn *without replacement* instead: row 0 is all
ones, the other rows follow a seeded random permutation of the other ``2**F - 1`` masks. Each row
is still uniform over masks (every feature on with probability 1/2), no mask is predicted twice,
and when ``2**F <= num_samples`` all masks are enumerated exactly once (exhaustive). The mode
depends on ``F`` alone, never on ``num_samples``, so the prefix property holds in both modes.

Modality (the reference explainer's semantics): ``both`` perturbs audio components and lyric
units, ``audio`` keeps the lyrics whole, ``lyrical`` keeps the audio whole. Masks cover only the
perturbed features: audio columns first, then lyrics columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODALITIES = ("both", "audio", "lyrical")


@dataclass(frozen=True)
class MaskLayout:
    """Which song features the mask columns stand for."""

    n_audio: int
    n_lyrics: int
    modality: str

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")

    @property
    def perturbs_audio(self) -> bool:
        return self.modality in ("both", "audio")

    @property
    def perturbs_lyrics(self) -> bool:
        return self.modality in ("both", "lyrical")

    @property
    def n_audio_columns(self) -> int:
        return self.n_audio if self.perturbs_audio else 0

    @property
    def n_lyrics_columns(self) -> int:
        return self.n_lyrics if self.perturbs_lyrics else 0

    @property
    def n_columns(self) -> int:
        return self.n_audio_columns + self.n_lyrics_columns

    def feature_indices(self) -> np.ndarray:
        """Index into the song's feature table (audio features first, then lyrics) per column."""
        audio = np.arange(self.n_audio) if self.perturbs_audio else np.arange(0)
        lyrics = self.n_audio + np.arange(self.n_lyrics) if self.perturbs_lyrics else np.arange(0)
        return np.concatenate([audio, lyrics]).astype(np.int64)

    def split(self, masks: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(audio_masks, lyrics_masks)``; ``None`` for a modality kept whole."""
        a = masks[:, : self.n_audio_columns] if self.perturbs_audio else None
        t = masks[:, self.n_audio_columns:] if self.perturbs_lyrics else None
        return a, t


#: Up to this many features, masks are drawn without replacement (and enumerated exhaustively
#: once num_samples reaches 2**F).
EXHAUSTIVE_MAX_FEATURES = 16


def sample_masks(n_features: int, num_samples: int, seed: int,
                 exhaustive: bool = True) -> np.ndarray:
    """``uint8`` masks of shape ``(rows, n_features)``; row 0 is all ones.

    ``rows == num_samples``, except that with ``exhaustive`` and ``2**n_features <= num_samples``
    every one of the ``2**n_features`` masks is returned once.
    """
    if n_features < 1:
        raise ValueError("there are no features to perturb (no audio components and no lyric "
                         "units for this modality)")
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    if exhaustive and n_features <= EXHAUSTIVE_MAX_FEATURES:
        full = (1 << n_features) - 1
        rows = min(int(num_samples), full + 1)
        # a permutation of all other codes; its prefix is a sample without replacement
        others = rng.permutation(full)[: rows - 1]  # codes 0 .. full-1 (all but all-ones)
        codes = np.concatenate([[full], others]).astype(np.int64)
        return _codes_to_bits(codes, n_features)
    masks = (rng.random((int(num_samples), int(n_features))) < 0.5).astype(np.uint8)
    masks[0, :] = 1
    return masks


def _codes_to_bits(codes: np.ndarray, n_features: int) -> np.ndarray:
    bits = (codes[:, None] >> np.arange(n_features - 1, -1, -1)) & 1
    return bits.astype(np.uint8)


def is_exhaustive(n_features: int, num_samples: int, exhaustive: bool = True) -> bool:
    """True when every one of the ``2**n_features`` masks is predicted."""
    return bool(exhaustive and n_features <= EXHAUSTIVE_MAX_FEATURES
                and 2 ** n_features <= num_samples)
