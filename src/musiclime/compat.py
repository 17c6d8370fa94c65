"""Drop-in replacement for the reference MusicLIME explainer (bach-or-bot's
``src/musiclime/explainer.py``): same class names, constructors, method signatures and JSON keys.

Switch by changing one import::

    from musiclime.compat import MusicLIMEExplainer, OpenUnmixFactorization, LineIndexedString

What changed underneath (the interface did not):

- perturbed audio is composed and predicted batch by batch, so memory no longer grows with
  ``num_samples`` (``predict_fn`` is called once per batch instead of once in total);
- the residual (mix minus the sum of the stems) is kept always on by default, so the all-ones
  sample is the original mix; pass ``residual="drop"`` to ``OpenUnmixFactorization`` for the
  reference's behaviour;
- the remainder samples of the segment division belong to the last segment;
- the surrogate is fitted on all features (not the 20 that lime's ``auto`` selection keeps),
  and every weight is available;
- prints became ``logging`` (logger ``musiclime``).

The kernel keeps the reference's meaning: ``kernel_width=25`` on raw cosine distance, which is
flat (every weight within 0.9998..1); a warning says so. Pass ``distance_scale=100`` (lime's
text explainer) or ``kernel_width=0.25`` for a local kernel.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state

from .core.classifier import CallableClassifier
from .core.composition import WaveformComposer
from .core.explainer import ExplainerConfig, fit_explanation
from .core.explanation import Explanation
from .core.factorization import AudioFactorization
from .core.features import FeatureTable
from .core.inference import predict_masks
from .core.lyrics import LineUnits
from .core.masks import MODALITIES, MaskLayout, sample_masks
from .io.audio import resample
from .models.separation import OpenUnmixSeparator

log = logging.getLogger("musiclime")

SEED_CLASS_NAMES = ["AI-Generated", "Human-Composed"]


class OpenUnmixFactorization:
    """Stems x temporal segments of one 44.1 kHz mono waveform (the reference's interface).

    ``model`` is an Open-Unmix model directory or pretrained name; ``None`` uses musiclime's
    shipped demo separator. ``stems`` skips separation when the caller already has them.
    """

    def __init__(self, audio, temporal_segmentation_params=10, *, model=None,
                 sample_rate: int = 44100, residual: str = "keep", separator=None,
                 stems: dict | None = None, device: str = "auto"):
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self.sample_rate = int(sample_rate)
        if stems is None:
            separator = separator or OpenUnmixSeparator(model, device=device)
            log.info("separating %.1fs of audio with %s", len(audio) / self.sample_rate,
                     getattr(separator, "model", type(separator).__name__))
            stems = separator.separate(audio, self.sample_rate)
        self.factorization = AudioFactorization.from_stems(
            audio, stems, self.sample_rate, segments=int(temporal_segmentation_params),
            residual=residual)

    def get_number_components(self) -> int:
        return self.factorization.n_components

    def get_ordered_component_names(self) -> list[str]:
        return self.factorization.component_names()

    def compose_model_input(self, indices) -> np.ndarray:
        """Waveform with the components at ``indices`` on (always-on audio included)."""
        active = np.zeros(self.factorization.n_components, dtype=bool)
        idx = np.asarray(list(indices), dtype=int)
        if idx.size:
            active[idx] = True
        return self.factorization.compose(active)

    def resampled(self, sample_rate: int) -> OpenUnmixFactorization:
        """The same factorization at another rate (for a classifier at that rate)."""
        if sample_rate == self.sample_rate:
            return self
        fac = self.factorization
        stems = {n: resample(fac.stems[i], self.sample_rate, sample_rate)
                 for i, n in enumerate(fac.stem_names)}
        mix = resample(fac.mix, self.sample_rate, sample_rate)
        n = min(len(mix), *(len(s) for s in stems.values()))
        return OpenUnmixFactorization(mix[:n], fac.n_segments, sample_rate=sample_rate,
                                      residual=fac.residual_mode,
                                      stems={k: v[:n] for k, v in stems.items()})


class LineIndexedString(LineUnits):
    """Lyrics as lines (the reference's interface): ``num_words``, ``word``, ``inverse_removing``."""

    def num_words(self) -> int:
        return len(self)

    def word(self, index: int) -> str:
        return self.unit(index)

    def inverse_removing(self, words_to_remove) -> str:
        return self.remove(words_to_remove)


class MusicLIMEExplanation:
    """The reference's explanation container, backed by a :class:`musiclime.Explanation`."""

    def __init__(self, audio_factorization, text_factorization, data, predictions):
        self.audio_factorization = audio_factorization
        self.text_factorization = text_factorization
        self.data = data
        self.predictions = predictions
        self.intercept: dict = {}
        self.local_exp: dict = {}
        self.score: dict = {}
        self.local_pred: dict = {}
        self.record: Explanation | None = None

    def _absorb(self, record: Explanation) -> None:
        self.record = record
        for label, fit in record.fits.items():
            self.intercept[label] = fit.intercept
            # local_exp uses the reference's feature index space: audio components first,
            # then text lines, within the perturbed modality's columns
            col_of = {f: c for c, f in enumerate(record.columns)}
            self.local_exp[label] = [(col_of[f], w) for f, w in record.ranked(label)]
            self.score[label] = fit.score
            self.local_pred[label] = np.array([fit.local_pred])

    def get_explanation(self, label, num_features=10):
        if label not in self.local_exp or self.record is None:
            return []
        return self.record.get_explanation(label, num_features)

    def save_to_json(self, filepath, song_info=None, num_features=10):
        """Write to ``results/<filepath>`` (an absolute ``filepath`` is used as it is)."""
        output_path = Path("results") / filepath
        self.record.song_info = dict(song_info or {})
        self.record.save_json(output_path, num_features=num_features)
        log.info("explanation saved to %s", output_path)
        return output_path


class MusicLIMEExplainer:
    """The reference explainer's interface over musiclime's streaming implementation."""

    def __init__(self, kernel_width=25, random_state=None, *, distance_scale: float = 1.0,
                 batch_size: int = 0, class_names=None, progress: bool = False):
        self.random_state = check_random_state(random_state)
        self.kernel_width = kernel_width
        self.distance_scale = distance_scale
        self.batch_size = batch_size
        self.class_names = class_names
        self.progress = progress

    def explain_instance(self, audio, lyrics, predict_fn, num_samples=1000, labels=(1,),
                         temporal_segments=10, modality="both"):
        if modality not in MODALITIES:
            raise ValueError("Set modality argument to 'both', 'audio', 'lyrical'.")
        audio_factorization = OpenUnmixFactorization(
            audio, temporal_segmentation_params=temporal_segments)
        text_factorization = LineIndexedString(lyrics)
        return self.explain_instance_with_factorization(
            audio_factorization, text_factorization, predict_fn, num_samples=num_samples,
            labels=labels, modality=modality)

    def explain_instance_with_factorization(self, audio_factorization, text_factorization,
                                            predict_fn, num_samples=1000, labels=(1,),
                                            modality="both"):
        if modality not in MODALITIES:
            raise ValueError('Set modality argument to "both", "audio" or "lyrical".')
        fac = audio_factorization.factorization
        seed = int(self.random_state.randint(0, 2**31 - 1))
        config = ExplainerConfig(num_samples=int(num_samples), kernel_width=float(self.kernel_width),
                                 distance_scale=float(self.distance_scale), modality=modality,
                                 temporal_segments=fac.n_segments, residual=fac.residual_mode,
                                 seed=seed, labels=list(labels) if labels is not None else None,
                                 batch_size=int(self.batch_size), exhaustive=False)
        table = FeatureTable.build(fac, text_factorization)
        layout = MaskLayout(table.n_audio, table.n_lyrics, modality)
        masks = sample_masks(layout.n_columns, config.num_samples, seed, exhaustive=False)
        log.info("MusicLIME: %d audio components, %d text lines, modality %s, %d samples",
                 table.n_audio, table.n_lyrics, modality, masks.shape[0])
        classifier = CallableClassifier(predict_fn, sample_rate=fac.sample_rate,
                                        class_names=self.class_names)
        composer = WaveformComposer(fac)
        preds = predict_masks(classifier, composer, text_factorization, masks, layout,
                              batch_size=config.batch_size, progress=self.progress)
        names = list(self.class_names) if self.class_names else (
            SEED_CLASS_NAMES if preds.probs.shape[1] == 2 else preds.class_names)
        if np.allclose(preds.probs, preds.probs[0]):
            log.warning("all predictions are identical: LIME cannot learn from this")
        record = fit_explanation("song", table, layout, masks, preds.probs, names, config,
                                 timings=preds.timings)
        explanation = MusicLIMEExplanation(audio_factorization, text_factorization, masks,
                                           preds.probs)
        explanation._absorb(record)
        return explanation


__all__ = ["MusicLIMEExplainer", "MusicLIMEExplanation", "OpenUnmixFactorization",
           "LineIndexedString"]
