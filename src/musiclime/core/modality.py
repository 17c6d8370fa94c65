"""The modality game: did the classifier listen, read, or both? Exact, in four classifier rows.

Two players, the audio ``A`` and the lyrics ``L``; ``v(S)`` is the classifier's probability of
a class with the players in ``S`` on and the others off. "Off" means what a mask's 0 means
(:mod:`musiclime.core.composition`, :mod:`musiclime.core.lyrics`): every audio component
removed (what is left is the residual, under ``residual=keep``), every lyric unit removed (an
empty text for line units). The four coalitions (:data:`COALITIONS`) are four mask rows over
all the song's features:

====================  ==================  =====================================================
coalition             audio / lyrics      the input
====================  ==================  =====================================================
``audio+lyrics``      1 / 1               the song as it is: ``v(AL)``, the explained prediction
``audio``             1 / 0               the audio, no lyrics: ``v(A)``
``lyrics``            0 / 1               the lyrics, every audio component removed: ``v(L)``
``none``              0 / 0               neither: ``v(0)``
====================  ==================  =====================================================

Exact Shapley values of the 2-player game (Shapley 1953), and the pair's interaction, its
Harsanyi dividend (Harsanyi 1963), which for two players is also the Shapley interaction index
(Grabisch & Roubens 1999)::

    phi_A = ((v(A) - v(0)) + (v(AL) - v(L))) / 2
    phi_L = ((v(L) - v(0)) + (v(AL) - v(A))) / 2
    I     = v(AL) - v(A) - v(L) + v(0)

Efficiency: ``phi_A + phi_L = v(AL) - v(0)``. The Harsanyi (Moebius) decomposition
``v(AL) = v(0) + d_A + d_L + I`` with the main effects ``d_A = v(A) - v(0)`` (the audio alone)
and ``d_L = v(L) - v(0)`` gives ``phi_A = d_A + I / 2``: each modality's Shapley value is what
it does alone plus half of what the two do together.

Shares (from absolute values, as MM-SHAP does: Parcalabescu & Frank, "MM-SHAP: A
Performance-agnostic Metric for Measuring Multimodal Contributions in Vision and Language Models
& Tasks", ACL 2023):

- ``share_audio = |phi_A| / (|phi_A| + |phi_L|)`` (MM-SHAP's modality share), ``share_lyrics =
  1 - share_audio``; NaN when ``|phi_A| + |phi_L| <= EPS`` (no modality moves the output: there
  is nothing to share, and 0.5 would claim a balance nobody measured);
- ``share_interaction = |I| / (|d_A| + |d_L| + |I|)``: the part of the decomposition's absolute
  mass that only the two modalities together carry (1 for a classifier that needs both, 0 for an
  additive one; "synergy"); NaN when the denominator is ``<= EPS``. The page's modality bar
  shows the three parts ``|d_A|``, ``|d_L|``, ``|I|`` of that sum.

A white-box check: a classifier that reads only the lyrics gives ``phi_A = I = 0``,
``share_audio = 0``; one that outputs ``b + g [audio and lyrics]`` (an AND) gives
``phi_A = phi_L = g / 2``, ``I = g``, ``share_audio = 0.5``, ``share_interaction = 1``
(``tests/test_modality.py``).

The game is the song's, not the explanation's: whatever ``explainer.modality`` perturbs, the
coalitions switch whole modalities, so ``modality=audio`` and ``modality=lyrical`` explanations
of a song report the same game as ``modality=both`` (a modality kept whole in the explanation is
still switched off in the game's ``none``/single-modality rows). Rows the explanation already
predicted are reused (its all-ones row always; the all-zeros row where a sampler draws it, e.g.
``paired``; every row under exhaustive enumeration): :func:`reusable_rows` finds them. The
others (at most 4, usually 3) are predicted as masks over all the song's features
(``modality=both``) through the same inference (:func:`musiclime.core.explainer.predict_song`),
in the predict stage, and stored beside the predictions, never among the mask rows: the
surrogate never sees them and the samplers' draws do not change.

Values are on the probability scale (``scale``); where a label's surrogate was fitted on the
logit (``explainer.target=logit``, or ``auto`` choosing it), :meth:`ModalityGame.values` gives the
same game on the logit too (the explanation's JSON records both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .masks import MaskLayout

#: the coalitions, in the order of :attr:`ModalityGame.probs`'s rows
COALITIONS = ("audio+lyrics", "audio", "lyrics", "none")
#: (audio on, lyrics on) of each coalition
ON = {"audio+lyrics": (1, 1), "audio": (1, 0), "lyrics": (0, 1), "none": (0, 0)}
#: a sum of absolute values at or below this shares nothing (the share is NaN)
EPS = 1e-12


def _share(part: float, total: float) -> float:
    return part / total if total > EPS else float("nan")


@dataclass(frozen=True)
class ModalityValues:
    """One class's modality game: the four coalition values and what follows from them (see
    the module docstring for the formulas)."""

    full: float  # v(AL)
    audio: float  # v(A): the audio alone
    lyrics: float  # v(L): the lyrics alone
    none: float  # v(0)
    scale: str = "probability"

    @property
    def audio_alone(self) -> float:
        """``d_A = v(A) - v(0)``."""
        return self.audio - self.none

    @property
    def lyrics_alone(self) -> float:
        """``d_L = v(L) - v(0)``."""
        return self.lyrics - self.none

    @property
    def interaction(self) -> float:
        """``I = v(AL) - v(A) - v(L) + v(0)``."""
        return self.full - self.audio - self.lyrics + self.none

    @property
    def shapley_audio(self) -> float:
        return 0.5 * ((self.audio - self.none) + (self.full - self.lyrics))

    @property
    def shapley_lyrics(self) -> float:
        return 0.5 * ((self.lyrics - self.none) + (self.full - self.audio))

    @property
    def share_audio(self) -> float:
        a, b = abs(self.shapley_audio), abs(self.shapley_lyrics)
        return _share(a, a + b)

    @property
    def share_lyrics(self) -> float:
        a, b = abs(self.shapley_audio), abs(self.shapley_lyrics)
        return _share(b, a + b)

    def parts(self) -> dict[str, float]:
        """The bar's three shares ``|d_A|``, ``|d_L|``, ``|I|`` of their sum (NaN when it is 0)."""
        a, b, i = abs(self.audio_alone), abs(self.lyrics_alone), abs(self.interaction)
        return {"audio": _share(a, a + b + i), "lyrics": _share(b, a + b + i),
                "interaction": _share(i, a + b + i)}

    @property
    def share_interaction(self) -> float:
        return self.parts()["interaction"]

    def as_dict(self) -> dict:
        """The JSON record (NaN as ``None``)."""
        def num(x: float):
            return float(x) if np.isfinite(x) else None

        return {"scale": self.scale,
                "values": {c: num(v) for c, v in zip(
                    COALITIONS, (self.full, self.audio, self.lyrics, self.none), strict=True)},
                "shapley_audio": num(self.shapley_audio),
                "shapley_lyrics": num(self.shapley_lyrics),
                "interaction": num(self.interaction),
                "share_audio": num(self.share_audio), "share_lyrics": num(self.share_lyrics),
                "share_interaction": num(self.share_interaction),
                "parts": {k: num(v) for k, v in self.parts().items()}}


@dataclass(frozen=True)
class ModalityGame:
    """The four coalitions' class probabilities of one song (the predict stage's output).

    ``probs``: ``(4, classes)``, rows in :data:`COALITIONS` order. ``rows``: for each coalition
    the mask row of the explanation's predictions it was read from, or ``None`` where it was
    predicted for the game."""

    probs: np.ndarray
    rows: tuple[int | None, ...]

    def __post_init__(self):
        probs = np.asarray(self.probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != len(COALITIONS):
            raise ValueError(f"a modality game has {len(COALITIONS)} rows of probabilities, "
                             f"got shape {probs.shape}")
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "rows", tuple(None if r is None or int(r) < 0 else int(r)
                                               for r in self.rows))

    @property
    def predicted_rows(self) -> int:
        """Coalitions the game predicted itself (classifier rows it added, at most 4)."""
        return sum(r is None for r in self.rows)

    def values(self, label: int, scale: str = "probability") -> ModalityValues:
        """``label``'s game on ``scale`` (``probability``, or ``logit``:
        :func:`musiclime.core.targets.transform`)."""
        from .targets import transform

        v = transform(scale, self.probs[:, int(label)])
        return ModalityValues(*(float(x) for x in v), scale=scale)

    def as_dict(self) -> dict:
        return {"coalitions": list(COALITIONS),
                "probabilities": [[float(p) for p in row] for row in self.probs],
                "mask_rows": [None if r is None else int(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, d: dict) -> ModalityGame:
        if list(d["coalitions"]) != list(COALITIONS):
            raise ValueError(f"unknown coalitions {d['coalitions']}; expected {COALITIONS}")
        return cls(np.array(d["probabilities"], dtype=np.float64), tuple(d["mask_rows"]))


def game_layout(layout: MaskLayout) -> MaskLayout:
    """The layout the game's own rows are predicted in: every feature of the song."""
    return MaskLayout(layout.n_audio, layout.n_lyrics, "both")


def coalition_masks(layout: MaskLayout) -> np.ndarray:
    """``(4, n_audio + n_lyrics)`` uint8: the coalitions as masks over every feature."""
    return np.array([[a] * layout.n_audio + [t] * layout.n_lyrics
                     for a, t in (ON[c] for c in COALITIONS)], dtype=np.uint8)


def reusable_rows(masks: np.ndarray, layout: MaskLayout) -> list[int | None]:
    """For each coalition, the first row of ``masks`` (in ``layout``) that composes the same
    input, or ``None``. A modality ``layout`` keeps whole is on in every row, so only the
    coalitions that keep it on can be found."""
    masks = np.asarray(masks)
    audio, lyrics = layout.split(masks)
    out: list[int | None] = []
    for name in COALITIONS:
        ok = np.ones(masks.shape[0], dtype=bool)
        for part, on, size in ((audio, ON[name][0], layout.n_audio),
                               (lyrics, ON[name][1], layout.n_lyrics)):
            if part is not None:
                ok &= (part == on).all(axis=1)  # no column (no lyric unit): no constraint
            elif not on:
                ok &= size == 0  # kept whole: on in every row (off only when there is none)
        hits = np.flatnonzero(ok)
        out.append(int(hits[0]) if hits.size else None)
    return out


def play_game(masks: np.ndarray, probs: np.ndarray, layout: MaskLayout,
              predict: Callable[[np.ndarray], np.ndarray]) -> ModalityGame:
    """The song's :class:`ModalityGame`: the coalitions found among ``masks`` (whose rows
    ``probs`` predicted) are read from ``probs``; ``predict(rows)`` (masks over every feature,
    :func:`game_layout`) predicts the others, in one call."""
    found = reusable_rows(masks, layout)
    out = np.empty((len(COALITIONS), np.asarray(probs).shape[1]), dtype=np.float64)
    missing = [i for i, r in enumerate(found) if r is None]
    for i, r in enumerate(found):
        if r is not None:
            out[i] = probs[r]
    if missing:
        out[missing] = np.asarray(predict(coalition_masks(layout)[missing]), dtype=np.float64)
    return ModalityGame(out, tuple(found))

