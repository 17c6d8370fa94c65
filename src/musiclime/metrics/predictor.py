"""Re-predicting perturbed songs for the metrics: masks in, class probabilities out.

Every metric that re-runs the classifier takes a ``predict(masks) -> probs`` callable over
``(rows, F)`` binary masks in the explanation's column order (``Explanation.columns``: the
perturbed audio components first, then the perturbed lyric units). :class:`MaskPredictor` is
that callable for a real song and classifier: it goes through
:func:`musiclime.core.inference.predict_masks`, so composition is batched on the classifier's device
and memory stays flat, and it caches every row it has predicted, so rows shared between metrics
(the all-on and all-off masks, for a start) are predicted once. ``rows_predicted`` counts the
mask rows actually sent to the classifier (one forward pass per row).

Tests and users may pass any other callable with the same contract (a synthetic probability
function of the masks, say).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core.classifier import as_classifier, classifier_device
from ..core.composition import WaveformComposer
from ..core.inference import predict_masks
from ..core.masks import MaskLayout

#: ``predict(masks: (rows, F) uint8) -> (rows, classes) probabilities``
PredictFn = Callable[[np.ndarray], np.ndarray]


class MaskPredictor:
    """``predict(masks)`` for one song, with a row cache and a count of classifier rows."""

    def __init__(self, song, classifier, modality: str, batch_size: int = 0,
                 deduplicate: bool = True, class_names: list[str] | None = None,
                 progress: bool = False):
        table = song.feature_table
        self.layout = MaskLayout(table.n_audio, table.n_lyrics, modality)
        self.classifier = as_classifier(classifier, sample_rate=song.audio.sample_rate,
                                        class_names=class_names)
        self.song = song
        self.batch_size = int(batch_size or 0)
        self.deduplicate = bool(deduplicate)
        self.progress = progress
        self._composer: WaveformComposer | None = None
        self._cache: dict[bytes, np.ndarray] = {}
        self.rows_predicted = 0

    @property
    def n_columns(self) -> int:
        return self.layout.n_columns

    @property
    def composer(self) -> WaveformComposer:
        if self._composer is None:
            self._composer = WaveformComposer(self.song.audio,
                                              device=classifier_device(self.classifier))
        return self._composer

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        masks = np.ascontiguousarray(np.asarray(masks, dtype=np.uint8))
        if masks.ndim != 2 or masks.shape[1] != self.n_columns:
            raise ValueError(f"masks must be (rows, {self.n_columns}), got {masks.shape}")
        keys = [row.tobytes() for row in masks]
        todo: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self._cache and key not in todo:
                todo[key] = i
        if todo:
            rows = masks[list(todo.values())]
            preds = predict_masks(self.classifier, self.composer, self.song.lyrics, rows,
                                  self.layout, batch_size=self.batch_size,
                                  progress=self.progress, deduplicate=self.deduplicate)
            self.rows_predicted += int(rows.shape[0])
            for key, p in zip(todo, preds.probs, strict=True):
                self._cache[key] = np.asarray(p, dtype=np.float64)
        return np.stack([self._cache[key] for key in keys]) if keys else np.zeros((0, 0))


def as_predict_fn(predict) -> PredictFn:
    """Validate a ``predict(masks)`` callable's output shape on use."""

    def call(masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks, dtype=np.uint8)
        probs = np.asarray(predict(masks), dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != masks.shape[0]:
            raise ValueError(f"predict returned shape {probs.shape} for {masks.shape[0]} masks; "
                             "expected (rows, classes)")
        return probs

    return call


def ranking(weights: np.ndarray) -> np.ndarray:
    """Column order by weight, largest (most supporting the explained label) first.

    Signed, not absolute: a feature with a large negative weight speaks *against* the label, so
    switching it off should not lower the label's probability. Ties keep column order.
    """
    w = np.asarray(weights, dtype=np.float64)
    return np.argsort(-w, kind="stable")
