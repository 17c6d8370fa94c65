"""Streaming inference over perturbation masks.

Masks are consumed in batches: each batch's waveforms are composed on the classifier's device
(:mod:`musiclime.core.composition`), its texts are built from the kept lyric units, the classifier
predicts, and only the probability rows are kept. Nothing ever holds all perturbed waveforms,
so peak memory is set by the batch size, not by num_samples.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import SampleRateError
from ..io.fileio import write_npz
from .classifier import validate_probabilities
from .composition import WaveformComposer
from .interactions import InteractionRows
from .lyrics import LyricsUnits
from .masks import MaskLayout
from .modality import ModalityGame

log = logging.getLogger(__name__)

#: Waveform bytes one batch may take when the batch size is chosen automatically.
DEFAULT_BATCH_BYTES = 256 * 2**20


@dataclass
class Predictions:
    """Classifier output for every mask row, plus where the time went."""

    probs: np.ndarray  # (rows, classes) float64
    class_names: list[str]
    batch_size: int
    device: str
    timings: dict[str, float] = field(default_factory=dict)
    unique_rows: int = 0  # distinct mask rows predicted (the modality game's rows not counted)
    #: the song's modality game (:mod:`musiclime.core.modality`): four coalition rows predicted
    #: beside the masks, never among them; None where it was not played (or an older file)
    modality: ModalityGame | None = None
    #: the rows the interaction estimators asked for beyond the masks
    #: (:mod:`musiclime.core.interactions`), never among them; None where none were requested
    interactions: InteractionRows | None = None

    def save(self, path, auto: dict | None = None) -> None:
        """Losslessly, atomically (the predict stage's file); ``auto``: the ``num_samples=auto``
        record of a run that stopped early (:mod:`musiclime.core.adaptive`). The modality game
        is stored as its own arrays (``modality_probs``, ``modality_rows``: -1 where the game
        predicted the row), apart from ``probs``, so nothing that reads the masks' rows sees
        it. Interaction rows likewise (``interaction_masks``, ``interaction_probs``)."""
        extra = {} if auto is None else {"auto": np.array(json.dumps(auto))}
        if self.interactions is not None:
            extra["interaction_masks"] = self.interactions.masks
            extra["interaction_probs"] = self.interactions.probs
        if self.modality is not None:
            extra["modality_probs"] = self.modality.probs
            extra["modality_rows"] = np.array([-1 if r is None else r
                                               for r in self.modality.rows], dtype=np.int64)
        write_npz(path, probs=self.probs, class_names=np.array(self.class_names),
                  timings=np.array(json.dumps(self.timings)), device=np.array(self.device),
                  batch_size=np.int64(self.batch_size), unique_rows=np.int64(self.unique_rows),
                  **extra)

    @classmethod
    def load(cls, path, with_auto: bool = False):
        """What :meth:`save` wrote; with ``with_auto`` ``(predictions, auto record or None)``."""
        with np.load(path) as z:
            preds = cls(probs=z["probs"], class_names=[str(c) for c in z["class_names"]],
                        batch_size=int(z["batch_size"]), device=str(z["device"]),
                        timings=json.loads(str(z["timings"])), unique_rows=int(z["unique_rows"]))
            auto = json.loads(str(z["auto"])) if "auto" in z.files else None
            if "modality_probs" in z.files:
                preds.modality = ModalityGame(z["modality_probs"],
                                              tuple(int(r) for r in z["modality_rows"]))
            if "interaction_masks" in z.files:
                preds.interactions = InteractionRows(z["interaction_masks"],
                                                     z["interaction_probs"])
        return (preds, auto) if with_auto else preds


def auto_batch_size(n_samples: int, device: torch.device, max_batch: int = 64,
                    budget_bytes: int | None = None) -> int:
    """Largest batch whose composed waveforms (x3 for the classifier's working copies) fit the
    budget: 256 MiB on the CPU, a quarter of the free memory on a GPU."""
    if budget_bytes is None:
        budget_bytes = DEFAULT_BATCH_BYTES
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            budget_bytes = max(budget_bytes, free // 4)
    per_row = max(1, n_samples * 4 * 3)
    return int(max(1, min(max_batch, budget_bytes // per_row)))


def _has_encoders(model) -> bool:
    return all(hasattr(model, name) for name in
               ("encode_audio", "encode_lyrics", "predict_from_embeddings"))


def predict_masks(classifier, composer: WaveformComposer, lyrics: LyricsUnits,
                  masks: np.ndarray, layout: MaskLayout, batch_size: int = 0,
                  progress: bool = True, deduplicate: bool = True,
                  reuse_constant_modality: bool = True,
                  mixed_precision: bool = False) -> Predictions:
    """Predict class probabilities for every mask row.

    Parameters
    ----------
    classifier: follows :class:`musiclime.core.classifier.Classifier`.
    composer: composes audio masks into waveforms (at ``classifier.sample_rate``).
    lyrics: the song's lyric units.
    masks: ``(rows, layout.n_columns)`` uint8.
    batch_size: rows per classifier call; 0 chooses it from memory.
    deduplicate: predict each distinct mask row once (identical rows give identical inputs).
    reuse_constant_modality: when the classifier exposes ``encode_audio``/``encode_lyrics``/
        ``predict_from_embeddings``, encode the modality that is kept whole only once.
    mixed_precision: run the classifier under ``torch.autocast`` (float16 on CUDA, bfloat16 on
        the CPU). Composition stays float32, so the all-ones row is still the exact mix. Off by
        default: it trades bit-compatibility with float32 runs for speed on tensor-core GPUs.
    """
    t_start = time.perf_counter()
    reset = getattr(classifier, "reset_cache", None)
    if callable(reset):  # a classifier's cache lives within one run (models.hf.WindowCache)
        reset()
    masks = _checked_masks(classifier, composer, masks, layout)
    device = composer.device
    if batch_size is None or int(batch_size) <= 0:
        batch_size = auto_batch_size(composer.n_samples, device)
    batch_size = int(batch_size)
    rows, inverse = distinct_rows(masks) if deduplicate else (masks, np.arange(masks.shape[0]))
    use_encoders = reuse_constant_modality and layout.modality != "both" and _has_encoders(
        classifier)
    chunks = _ChunkPredictor(classifier, composer, lyrics, layout, rows, use_encoders,
                             _autocast(device, mixed_precision))
    out = []
    bar = tqdm(total=rows.shape[0], desc="predict", unit="mask", disable=not progress,
               leave=False)
    with torch.inference_mode():
        for lo in range(0, rows.shape[0], batch_size):
            hi = min(lo + batch_size, rows.shape[0])
            out.append(chunks.predict(lo, hi))
            bar.update(hi - lo)
    bar.close()
    probs = np.concatenate(out, axis=0)[inverse]
    total = time.perf_counter() - t_start
    timings = {
        "predict_total_s": total,
        "compose_s": chunks.compose_s,
        "classifier_s": chunks.classifier_s,
        "lyrics_compose_s": chunks.text_s,
        "samples_per_s": masks.shape[0] / total if total > 0 else float("inf"),
    }
    cache = getattr(classifier, "window_cache", None)
    if cache is not None and cache.hit_rate is not None:  # windows looked up, not computed
        timings["window_cache_hit_rate"] = cache.hit_rate
    log.info("predicted %d masks (%d distinct) in %.2fs on %s (batch %d; classifier %.2fs)",
             masks.shape[0], rows.shape[0], total, device, batch_size, chunks.classifier_s)
    return Predictions(probs=probs, class_names=_class_names(classifier, probs.shape[1]),
                       batch_size=batch_size, device=str(device), timings=timings,
                       unique_rows=int(rows.shape[0]))


def _checked_masks(classifier, composer: WaveformComposer, masks: np.ndarray,
                   layout: MaskLayout) -> np.ndarray:
    """``masks`` as uint8, once the classifier's and the stems' rates agree and the shape fits
    the layout."""
    rate = int(classifier.sample_rate)
    if rate != composer.factorization.sample_rate:
        raise SampleRateError(
            f"the classifier works at {rate} Hz but the stems are at "
            f"{composer.factorization.sample_rate} Hz; decode and separate at the classifier's "
            "rate (musiclime does this when the working rate is left to it)"
        )
    masks = np.asarray(masks, dtype=np.uint8)
    if masks.ndim != 2 or masks.shape[1] != layout.n_columns:
        raise ValueError(f"masks must be (rows, {layout.n_columns}), got {masks.shape}")
    return masks


def distinct_rows(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, inverse)``: each distinct mask row once, in order of first occurrence, and for
    every row of ``masks`` its index in ``rows`` (``rows[inverse]`` is ``masks``)."""
    uniq, first, inverse = np.unique(masks, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # keep first-occurrence order
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[np.asarray(inverse).reshape(-1)]


def _autocast(device: torch.device, mixed_precision: bool):
    """``torch.autocast`` (float16 on CUDA, bfloat16 on the CPU), or no context."""
    if mixed_precision:
        return torch.autocast(device.type,
                              dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)
    return contextlib.nullcontext()


def _expected_classes(classifier) -> int | None:
    """How many probabilities a row must hold, when the classifier says (``class_names``)."""
    if hasattr(type(classifier), "class_names") or "class_names" in getattr(classifier,
                                                                              "__dict__", {}):
        try:
            return len(classifier.class_names)
        except AttributeError:
            return None
    return None


def _class_names(classifier, n_classes: int) -> list[str]:
    try:
        return list(classifier.class_names)
    except AttributeError:
        return [f"class_{i}" for i in range(n_classes)]


class _ChunkPredictor:
    """Predicts chunks ``rows[lo:hi]`` of the distinct mask rows and adds up where the time
    went. With ``use_encoders`` the modality that is kept whole is encoded once, here."""

    def __init__(self, classifier, composer: WaveformComposer, lyrics: LyricsUnits,
                 layout: MaskLayout, rows: np.ndarray, use_encoders: bool, amp):
        self.classifier, self.composer, self.lyrics, self.layout = (classifier, composer,
                                                                    lyrics, layout)
        self.audio_masks, self.lyric_masks = layout.split(rows)
        self.use_encoders, self.amp = use_encoders, amp
        self.full_text = lyrics.full_text()
        self.constant_embedding = None
        if use_encoders:
            with torch.inference_mode():
                if layout.modality == "lyrical":
                    self.constant_embedding = classifier.encode_audio(composer.original(1))
                else:
                    self.constant_embedding = classifier.encode_lyrics([self.full_text])
        self.n_classes = _expected_classes(classifier)
        self.text_s = self.compose_s = self.classifier_s = 0.0

    def predict(self, lo: int, hi: int) -> np.ndarray:
        """Probabilities of ``rows[lo:hi]`` (validated)."""
        classifier, composer, device = self.classifier, self.composer, self.composer.device
        audio_masks, lyric_masks = self.audio_masks, self.lyric_masks
        n = hi - lo
        t0 = time.perf_counter()
        if lyric_masks is not None:
            texts = [self.lyrics.compose(row) for row in lyric_masks[lo:hi]]
        else:
            texts = [self.full_text] * n
        t1 = time.perf_counter()
        if audio_masks is not None:
            audio = composer.compose(torch.from_numpy(audio_masks[lo:hi]), reuse=True)
        elif not self.use_encoders:
            audio = composer.original(n)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t2 = time.perf_counter()
        with self.amp:
            if self.use_encoders and self.layout.modality == "lyrical":
                probs = classifier.predict_from_embeddings(
                    self.constant_embedding.expand(n, -1), classifier.encode_lyrics(texts))
            elif self.use_encoders:
                probs = classifier.predict_from_embeddings(
                    classifier.encode_audio(audio), self.constant_embedding.expand(n, -1))
            else:
                probs = classifier.predict_proba(texts, audio)
        probs = validate_probabilities(probs, n, self.n_classes,
                                       where=f"{type(classifier).__name__}.predict_proba")
        t3 = time.perf_counter()
        self.text_s += t1 - t0
        self.compose_s += t2 - t1
        self.classifier_s += t3 - t2
        return probs
