"""MusicLIME from Python: factorize a song, perturb it, predict, fit, explain.

>>> from musiclime import MusicLIME, ExplainerConfig, load_song
>>> song = load_song("song.wav", "song.txt", separator, sample_rate=clf.sample_rate)
>>> explanation = MusicLIME(clf, ExplainerConfig(num_samples=1000)).explain(song)

The stages are also exposed one by one (:func:`make_masks`, :func:`predict_masks`,
:func:`fit_explanation`) for the Snakemake workflow, which stores each stage's output in a file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, InputError
from ..io.audio import load_audio
from .explanation import Explanation
from .factorization import RESIDUAL_MODES, AudioFactorization
from .features import FeatureTable
from .fit_quality import FitQuality
from .lyrics import LYRICS_UNITS, LyricsUnits, make_lyrics_units, read_lyrics
from .masks import MODALITIES, MaskLayout, is_exhaustive, sample_masks
from .surrogate import FEATURE_SELECTIONS, LabelFit, fit_lime

if TYPE_CHECKING:
    from .inference import Predictions

# torch is imported where predictions are made, not at import time: the workflow's fit jobs use
# this module without a classifier and start faster without it.

log = logging.getLogger(__name__)

#: ``explainer.num_samples=auto``
AUTO = "auto"
#: the settings of num_samples=auto (recorded in an explanation only when it used them)
AUTO_KEYS = ("auto_budget", "auto_target", "auto_block", "auto_top_k", "auto_bootstrap")


@dataclass
class ExplainerConfig:
    """Explainer settings, and the schema of the ``explainer`` config group
    (``config/explainer/default.yaml``). See docs/configuration.md."""

    # perturbed samples per song (row 0 is the original), or "auto": predict in blocks of
    # auto_block until the bootstrap estimate of the top-k stability reaches auto_target, or
    # auto_budget samples (musiclime.adaptive)
    num_samples: Any = 1000
    # kernel w = sqrt(exp(-(distance_scale * d)^2 / kernel_width^2)), d = cosine distance to the
    # all-ones mask (surrogate.ExponentialKernel); lime's text explainer: width 25, scale 100
    kernel_width: float = 0.25
    distance_scale: float = 1.0
    modality: str = "both"  # both | audio (lyrics kept whole) | lyrical (audio kept whole)
    temporal_segments: int = 10  # equal segments per stem; the remainder goes to the last one
    segment_boundaries: Any = None  # list of seconds, e.g. [0, 5, 12]; overrides temporal_segments
    lyrics_unit: str = "line"  # line (the reference) | word (the MusicLIME paper's bag of words)
    residual: str = "keep"  # keep (always on) | feature (a 5th stem) | drop (the reference)
    seed: int = 0  # mask seed: same seed and config, same explanation bit for bit
    labels: Any = None  # None: the predicted label; else a list of indices or class names
    feature_selection: str = "none"  # lime's feature selection before the fit; none keeps all
    num_features: int = 10  # features listed in top_features (all weights are always kept)
    ridge_alpha: float = 1.0  # ridge regularisation of the surrogate (lime's default)
    # the surrogate fitted to the predictions (musiclime.estimators): lime_ridge (LIME),
    # kernel_shap or leverage_shap (Shapley values); a fit-stage choice: a sweep over it
    # predicts once
    estimator: str = "lime_ridge"
    # what the surrogate fits: probability (LIME's practice) or logit (the log-odds
    # log(p / (1 - p)) of each explained class, where a saturating classifier's evidence adds
    # up; shap's link="logit"); a fit-stage choice (musiclime.targets)
    target: str = "probability"
    # which masks are predicted (musiclime.samplers): bernoulli (today's), paired, orthogonal,
    # orthogonal_foldover, stratified, kernel, leverage, leverage_stratified; every one keeps
    # the prefix property
    sampler: str = "bernoulli"
    auto_budget: int = 4096  # num_samples=auto: at most this many samples
    auto_target: float = 0.8  # num_samples=auto: stop at this bootstrap top-k Jaccard
    auto_block: int = 128  # num_samples=auto: samples predicted between two checks
    auto_top_k: int = 5  # num_samples=auto: k of the top-k stability
    auto_bootstrap: int = 16  # num_samples=auto: bootstrap resamples per check
    batch_size: int = 0  # masks per classifier call; 0: chosen from memory
    exhaustive: bool = True  # enumerate all 2^F masks once when 2^F <= num_samples
    deduplicate: bool = True  # predict each distinct mask once
    mixed_precision: bool = False  # classifier under torch.autocast (fp16 CUDA / bf16 CPU)
    listen_top_k: int = 3  # components in the listenable explanation WAV

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def bad(key, value, why):
            raise ConfigError(f"explainer.{key}={value!r}: {why}")

        if self.num_samples != AUTO and (isinstance(self.num_samples, bool) or not isinstance(
                self.num_samples, int) or self.num_samples < 2):
            bad("num_samples", self.num_samples, 'must be an integer >= 2, or "auto"')
        if self.is_auto:
            if not isinstance(self.auto_budget, int) or self.auto_budget < 2:
                bad("auto_budget", self.auto_budget, "must be an integer >= 2")
            if not (isinstance(self.auto_target, (int, float)) and 0 < self.auto_target <= 1):
                bad("auto_target", self.auto_target, "must be a top-k Jaccard in (0, 1]")
            if not isinstance(self.auto_block, int) or self.auto_block < 2:
                bad("auto_block", self.auto_block, "must be an integer >= 2")
            if not isinstance(self.auto_top_k, int) or self.auto_top_k < 1:
                bad("auto_top_k", self.auto_top_k, "must be an integer >= 1")
            if not isinstance(self.auto_bootstrap, int) or self.auto_bootstrap < 2:
                bad("auto_bootstrap", self.auto_bootstrap, "must be an integer >= 2")
        if not (isinstance(self.kernel_width, (int, float)) and self.kernel_width > 0):
            bad("kernel_width", self.kernel_width, "must be a number > 0")
        if not (isinstance(self.distance_scale, (int, float)) and self.distance_scale > 0):
            bad("distance_scale", self.distance_scale, "must be a number > 0")
        if self.modality not in MODALITIES:
            bad("modality", self.modality, f"must be one of {', '.join(MODALITIES)}")
        if not self.segment_boundaries and (
                not isinstance(self.temporal_segments, int) or self.temporal_segments < 1):
            bad("temporal_segments", self.temporal_segments, "must be an integer >= 1")
        if self.segment_boundaries is not None and not _valid_boundaries(
                self.segment_boundaries):
            bad("segment_boundaries", self.segment_boundaries,
                "must be null or a list of at least two increasing times in seconds >= 0, "
                "e.g. [0, 5, 12]")
        if self.lyrics_unit not in LYRICS_UNITS:
            bad("lyrics_unit", self.lyrics_unit, f"must be one of {', '.join(LYRICS_UNITS)}")
        if self.residual not in RESIDUAL_MODES:
            bad("residual", self.residual, f"must be one of {', '.join(RESIDUAL_MODES)}")
        if self.feature_selection not in FEATURE_SELECTIONS:
            bad("feature_selection", self.feature_selection,
                f"must be one of {', '.join(FEATURE_SELECTIONS)}")
        if not isinstance(self.seed, int) or self.seed < 0:
            bad("seed", self.seed, "must be a non-negative integer")
        if not isinstance(self.batch_size, int) or self.batch_size < 0:
            bad("batch_size", self.batch_size, "must be an integer >= 0 (0 = automatic)")
        from .estimators import ESTIMATORS

        if self.estimator not in ESTIMATORS:
            bad("estimator", self.estimator, f"must be one of {', '.join(sorted(ESTIMATORS))}")
        from .samplers import SAMPLERS
        from .targets import TARGETS

        if self.sampler not in SAMPLERS:
            bad("sampler", self.sampler, f"must be one of {', '.join(SAMPLERS)}")
        if self.target not in TARGETS:
            bad("target", self.target, f"must be one of {', '.join(TARGETS)}")

    @property
    def is_auto(self) -> bool:
        """``num_samples="auto"``: the sample count is chosen per song (:mod:`.adaptive`)."""
        return self.num_samples == AUTO

    @property
    def max_samples(self) -> int:
        """The most samples a song can get: ``num_samples``, or ``auto_budget`` for auto."""
        return int(self.auto_budget) if self.is_auto else int(self.num_samples)

    def as_dict(self) -> dict:
        d = asdict(self)
        if d["segment_boundaries"] is not None:
            d["segment_boundaries"] = [float(x) for x in d["segment_boundaries"]]
        if d["labels"] is not None:
            d["labels"] = list(d["labels"])
        return d


def _valid_boundaries(b) -> bool:
    """Null-equivalent (empty), or >= 2 strictly increasing non-negative numbers."""
    if isinstance(b, (str, bytes)) or not isinstance(b, Sequence):
        return False
    if len(b) == 0:
        return True
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in b):
        return False
    return len(b) >= 2 and b[0] >= 0 and all(y > x for x, y in zip(b, b[1:], strict=False))


#: Below this RMS (of full scale, i.e. -80 dBFS) a mix counts as silent.
SILENCE_RMS = 1e-4
#: Audio segments shorter than this (seconds) draw a warning.
MIN_SEGMENT_SECONDS = 0.5
#: A predicted label with a lower probability than this draws a warning.
UNSURE_PROBABILITY = 0.6


@dataclass
class Song:
    """A factorized song: the audio factorization and the lyric units.

    ``warnings`` lists what looked suspicious in the input (:func:`audio_warnings`); the
    explanation of the song records them.
    """

    song_id: str
    audio: AudioFactorization
    lyrics: LyricsUnits
    info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def feature_table(self) -> FeatureTable:
        return FeatureTable.build(self.audio, self.lyrics)


def factorize(mix: np.ndarray, stems: dict[str, np.ndarray], sample_rate: int, lyrics: str,
              config: ExplainerConfig, song_id: str = "song", info: dict | None = None,
              stems_rate: int | None = None) -> Song:
    """Cut stems into stem x segment components and lyrics into units: a :class:`Song`.

    ``mix`` is at ``sample_rate`` (the working rate: the classifier's). ``stems`` are at
    ``stems_rate`` (the separator's rate; default ``sample_rate``) and are resampled to the
    working rate here, trimmed or padded to the mix's length. Only the segmentation fields of
    ``config`` are read (``temporal_segments``, ``segment_boundaries``, ``residual``,
    ``lyrics_unit``).

    Raises :class:`ConfigError` when ``explainer.segment_boundaries`` reach past the end of
    the audio and :class:`InputError` when the audio is too short for
    ``explainer.temporal_segments``. Suspicious input (silence) is logged and listed in the
    song's ``warnings``.
    """
    info = dict(info or {})
    where = f"song {song_id}" + (f" ({info['audio_path']})" if info.get("audio_path") else "")
    duration = len(mix) / int(sample_rate)
    if config.segment_boundaries:
        last = float(config.segment_boundaries[-1])
        if last > duration + 1e-6:
            raise ConfigError(
                f"explainer.segment_boundaries={[float(x) for x in config.segment_boundaries]}: "
                f"{last:g} s lies past the end of {where}, which lasts {duration:.3f} s; give "
                "boundaries within the audio, or null to cut explainer.temporal_segments equal "
                "segments")
    elif len(mix) < config.temporal_segments:
        raise InputError(
            f"{where} holds {len(mix)} samples ({duration:.4f} s at {int(sample_rate)} Hz), too "
            f"few for explainer.temporal_segments={config.temporal_segments}; use a longer "
            "recording or fewer segments")
    fac = AudioFactorization.from_stems(mix, stems, sample_rate,
                                        segments=config.temporal_segments,
                                        boundaries=config.segment_boundaries,
                                        residual=config.residual, stems_rate=stems_rate)
    warnings = audio_warnings(fac, where)
    for text in warnings:
        log.warning("%s", text)
    return Song(song_id=song_id, audio=fac, lyrics=make_lyrics_units(lyrics, config.lyrics_unit),
                info=info, warnings=warnings)


def rms_dbfs(audio: np.ndarray, block: int = 2 ** 20) -> float:
    """RMS of ``audio`` in dB relative to full scale (1.0); ``-inf`` for digital silence.
    Summed in float64 block by block (no float64 copy of a long song)."""
    total = 0.0
    for lo in range(0, audio.shape[0], block):
        b = audio[lo:lo + block].astype(np.float64)
        total += float(np.dot(b, b))
    rms = np.sqrt(total / max(1, audio.shape[0]))
    return float(20 * np.log10(rms)) if rms > 0 else float("-inf")


def audio_warnings(fac: AudioFactorization, where: str) -> list[str]:
    """What looks wrong with a song's audio before anything is predicted: silence (an RMS
    below :data:`SILENCE_RMS` of full scale). ``where`` names the song (and its file)."""
    level = rms_dbfs(fac.mix)
    limit = 20 * np.log10(SILENCE_RMS)
    if level < limit:
        return [f"{where}: the audio is silent (RMS {level:.1f} dBFS, below {limit:.0f} dBFS); "
                "every stem and segment is silence, so audio weights explain nothing: check "
                "the file"]
    return []


def separation_rate(separator, working_rate: int) -> int:
    """The rate a separator wants its input at: its model's rate, or (oracle stems, which are
    read from disk at any rate) the working rate."""
    rate = getattr(separator, "sample_rate", None)
    return int(rate) if rate else int(working_rate)


def separate(separator, mix: np.ndarray, sample_rate: int,
             stems_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Stems of ``mix`` (at ``sample_rate``, which should be :func:`separation_rate`).

    ``stems_dir`` (the song's ground-truth stems) is handed only to separators that read stems
    from disk (``uses_stems_dir``, the oracle); model-based separators ignore it.
    """
    if getattr(separator, "uses_stems_dir", False):
        if not stems_dir:
            raise InputError("separator=oracle needs the song's ground-truth stems folder: give "
                             "it in the manifest's stems_dir column (or --stems for explain)")
        return separator.separate(mix, sample_rate, stems_dir=stems_dir)
    return separator.separate(mix, sample_rate)


def load_song(audio_path: str | os.PathLike, lyrics_path: str | os.PathLike | None, separator,
              sample_rate: int, config: ExplainerConfig | None = None,
              song_id: str | None = None, stems_dir: str | os.PathLike | None = None) -> Song:
    """Decode, separate and factorize one song for a classifier working at ``sample_rate``.

    The sample-rate path (the same in ``musiclime explain`` and in every workflow stage):

    1. decode the file at the separator's rate (:func:`separation_rate`) and separate it there,
       so the separator sees audio at the rate its model was trained at;
    2. decode the file again at the working rate (the classifier's; once only when the two
       rates are equal): the mix the classifier hears is resampled once, from the file;
    3. resample the stems to the working rate (:func:`factorize`); the residual (mix minus the
       sum of the stems) absorbs what resampling changes, so the all-ones mask is still the mix.
    """
    config = config or ExplainerConfig()
    rate = int(sample_rate)
    sep_rate = separation_rate(separator, rate)
    file_warnings: list[str] = []  # what the file hides (clipping, cancelling channels, ...)
    sep_mix, _ = load_audio(audio_path, sep_rate, warnings=file_warnings)
    for text in file_warnings:
        log.warning("%s", text)
    stems = separate(separator, sep_mix, sep_rate, stems_dir)
    if sep_rate == rate:
        mix = sep_mix
    else:
        del sep_mix  # a long song's separator-rate mix is not needed any more
        mix = load_audio(audio_path, rate, warnings=[])[0]  # the same file, the same warnings
    text = read_lyrics(lyrics_path) if lyrics_path else ""
    song = factorize(mix, stems, rate, text, config, song_id=song_id or Path(audio_path).stem,
                     info={"audio_path": str(audio_path),
                           "lyrics_path": str(lyrics_path) if lyrics_path else None},
                     stems_rate=sep_rate)
    song.warnings[:0] = file_warnings
    return song


def make_masks(table: FeatureTable, config: ExplainerConfig, num_samples: int | None = None,
               where: str | None = None) -> tuple[np.ndarray, MaskLayout]:
    """Masks over the features ``config.modality`` perturbs, and their layout.

    Raises :class:`InputError` when there is nothing to perturb (``modality=lyrical`` and no
    lyric units); ``where`` names the song (and its lyrics file) in that message.
    """
    layout = MaskLayout(table.n_audio, table.n_lyrics, config.modality)
    if layout.n_columns == 0:
        raise InputError(
            f"{where or 'the song'}: nothing to perturb: explainer.modality={config.modality} "
            "perturbs only the lyrics and there are no lyric units (empty lyrics, or only "
            "[section]/(ad-lib) lines); give the song's lyrics or use explainer.modality=audio")
    masks = draw_masks(config, layout.n_columns, num_samples or config.max_samples)
    return masks, layout


def mask_sampler(config: ExplainerConfig):
    """The :mod:`musiclime.samplers` strategy ``config.sampler`` names, with
    ``config.exhaustive``."""
    import dataclasses

    from .samplers import get_sampler

    sampler = get_sampler(config.sampler)
    if hasattr(sampler, "exhaustive") and sampler.exhaustive != config.exhaustive:
        sampler = dataclasses.replace(sampler, exhaustive=config.exhaustive)
    return sampler


def draw_masks(config: ExplainerConfig, n_columns: int, num_samples: int) -> np.ndarray:
    """``num_samples`` masks over ``n_columns`` from ``config.sampler`` with ``config.seed``
    (the Bernoulli default is :func:`musiclime.masks.sample_masks`, bit for bit)."""
    if config.sampler == "bernoulli":
        return sample_masks(n_columns, num_samples, config.seed, exhaustive=config.exhaustive)
    return mask_sampler(config)(n_columns, num_samples, config.seed)


def resolve_labels(spec, prediction: np.ndarray, class_names: list[str]) -> list[int]:
    """``None``/``"predicted"``: the predicted label; else indices or class names."""
    if spec is None or spec == "predicted" or spec == ["predicted"]:
        return [int(np.argmax(prediction))]
    if isinstance(spec, (int, str)):
        spec = [spec]
    labels = []
    for item in spec:
        if isinstance(item, str) and not item.lstrip("-").isdigit():
            if item == "predicted":
                labels.append(int(np.argmax(prediction)))
                continue
            if item not in class_names:
                raise ConfigError(f"explainer.labels: unknown class {item!r}; classes are "
                                  f"{class_names}")
            labels.append(class_names.index(item))
        else:
            i = int(item)
            if not 0 <= i < len(prediction):
                raise ConfigError(f"explainer.labels: label {i} is out of range for "
                                  f"{len(prediction)} classes")
            labels.append(i)
    return list(dict.fromkeys(labels))


def explanation_warnings(song_id: str, table: FeatureTable, layout: MaskLayout,
                         probs: np.ndarray, labels: list[int], class_names: list[str],
                         song_info: dict | None = None) -> list[str]:
    """What makes an explanation suspect, from what the fit sees: audio segments shorter than
    :data:`MIN_SEGMENT_SECONDS`, no lyric units where lyrics are perturbed, a predicted label
    below :data:`UNSURE_PROBABILITY`, and predictions that no perturbation changes."""
    info = song_info or {}
    out = []
    lengths = [f.end - f.start for f in table.features
               if f.kind == "audio" and f.start is not None and f.end is not None]
    if lengths and min(lengths) < MIN_SEGMENT_SECONDS:
        out.append(
            f"song {song_id}: audio segments are as short as {1000 * min(lengths):.0f} ms "
            f"({table.n_segments} segments; under {MIN_SEGMENT_SECONDS} s a component is a "
            "click, not a musical part): use fewer explainer.temporal_segments, wider "
            "explainer.segment_boundaries or a longer recording")
    if layout.perturbs_lyrics and table.n_lyrics == 0:
        lyrics = info.get("lyrics_path")
        why = (f"the lyrics file {lyrics} is empty or holds only [section]/(ad-lib) lines"
               if lyrics else "no lyrics were given")
        out.append(
            f"song {song_id}: no lyric units to perturb ({why}) with "
            f"explainer.modality={layout.modality}; only the audio is explained: give the "
            "lyrics, or use explainer.modality=audio")
    predicted = int(np.argmax(probs[0]))
    top = float(probs[0][predicted])
    if top < UNSURE_PROBABILITY:
        name = class_names[predicted] if predicted < len(class_names) else str(predicted)
        out.append(
            f"song {song_id}: the classifier is not sure of its prediction: P({name}) = "
            f"{top:.3f} < {UNSURE_PROBABILITY}; the explanation accounts for a near tie, so "
            "read its weights with care")
    change = float(np.ptp(probs[:, labels], axis=0).max()) if probs.shape[0] > 1 else 0.0
    if change < 1e-9:
        out.append(
            f"song {song_id}: no perturbation changed the classifier's output (over "
            f"{probs.shape[0]} samples the probabilities of the explained labels vary by "
            f"{change:.1e}); the weights are zero and R^2 means nothing: check that the audio "
            "is not silent and that the classifier reads its inputs")
    return out


def shapley_fits(name: str, masks: np.ndarray, probs: np.ndarray,
                 labels: list[int], sampler=None) -> dict[int, LabelFit]:
    """One :class:`~musiclime.surrogate.LabelFit` per label from a Shapley estimator of
    :mod:`musiclime.estimators`: the weights are the Shapley values, the intercept
    ``phi_0`` (the base value), ``local_pred = phi_0 + sum(phi)`` (efficiency: the prediction
    of the original), ``score`` the regression's weighted R^2.

    ``sampler`` (the one that drew ``masks``): Kernel SHAP weighs rows by the Shapley kernel
    over the sampler's size distribution (``pi / q``) when the sampler does not draw uniform
    masks; Leverage SHAP's stratified reweighting is right for every sampler."""
    from .estimators import KernelSHAP, estimate, get_estimator
    from .samplers import binomial_sizes

    estimator = get_estimator(name)
    if name == "kernel_shap" and sampler is not None:
        f = masks.shape[1]
        if not np.allclose(sampler.size_distribution(f), binomial_sizes(f)):
            estimator = KernelSHAP(weighting="importance", sampler=sampler)
    out = {}
    for label, att in estimate(estimator, masks, probs, labels).items():
        out[label] = LabelFit(label=label, intercept=float(att.base_value),
                              weights=np.asarray(att.weights, dtype=np.float64),
                              score=float(att.score),
                              local_pred=float(att.base_value + np.sum(att.weights)))
    return out


def fit_explanation(song_id: str, table: FeatureTable, layout: MaskLayout, masks: np.ndarray,
                    probs: np.ndarray, class_names: list[str], config: ExplainerConfig,
                    timings: dict | None = None, song_info: dict | None = None,
                    num_samples: int | None = None,
                    warnings: list[str] | None = None, auto: dict | None = None) -> Explanation:
    """Fit the surrogate on the first ``num_samples`` rows (prefix property) and build the record.

    ``warnings`` (e.g. a :class:`Song`'s, from :func:`audio_warnings`) are recorded in the
    explanation together with :func:`explanation_warnings`, which are also logged. The fit's
    diagnostics (:func:`assess_fit`: held-out R^2, and warnings when the fit's numbers mean
    nothing) are recorded in ``fit_quality``; its warnings are logged too.
    """
    n = num_samples or masks.shape[0]
    if is_exhaustive(layout.n_columns, n, config.exhaustive):
        n = min(n, masks.shape[0])
    masks, probs = masks[:n], probs[:n]
    t0 = time.perf_counter()
    labels = resolve_labels(config.labels, probs[0], class_names)
    fits, stats, chosen = surrogate_fits(config, masks, probs, labels)
    timings = dict(timings or {})
    timings["fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    quality = assess_fit(song_id, config, masks, probs, labels, fits, stats.effective_samples,
                         chosen, class_names)
    timings["fit_checks_s"] = time.perf_counter() - t0
    if stats.weight_max - stats.weight_min < 1e-3:
        log.warning("%s: the kernel is flat (weights %.5f..%.5f): width %.3g on distances "
                    "scaled by %.3g treats every sample alike; lower kernel_width or raise "
                    "distance_scale", song_id, stats.weight_min, stats.weight_max,
                    config.kernel_width, config.distance_scale)
    params = config.as_dict()
    params.pop("num_samples")
    params.pop("modality")
    params["exhaustive_enumeration"] = is_exhaustive(layout.n_columns, n, config.exhaustive)
    if not config.is_auto:
        for key in AUTO_KEYS:
            params.pop(key)
    if auto is not None:
        params["auto"] = dict(auto)
    if chosen is not None:  # target=auto: the scale each label's surrogate was fitted on
        params["target_chosen"] = {str(label): name for label, name in chosen.items()}
    found = explanation_warnings(song_id, table, layout, probs, labels, class_names, song_info)
    if auto is not None and not auto["reached"]:
        found.append(
            f"song {song_id}: num_samples=auto used its whole budget of {auto['budget']} "
            f"samples and the bootstrap top-{auto['top_k']} Jaccard is {auto['stability']:.2f}, "
            f"below the target {auto['target']:.2f}: the top features are not stable yet; "
            "raise explainer.auto_budget, or try explainer.target=logit or "
            "explainer.sampler=paired")
    for text in [*found, *(w.message for w in quality.warnings)]:
        log.warning("%s", text)
    return Explanation(song_id=song_id, class_names=list(class_names), modality=layout.modality,
                       features=table, columns=[int(c) for c in layout.feature_indices()],
                       fits=fits, prediction=[float(p) for p in probs[0]], num_samples=int(n),
                       kernel=stats.as_dict(), params=params, timings=timings,
                       song_info=dict(song_info or {}), warnings=[*(warnings or []), *found],
                       fit_quality=quality)


def assess_fit(song_id: str, config: ExplainerConfig, masks: np.ndarray, probs: np.ndarray,
               labels: list[int], fits: dict[int, LabelFit], effective_samples: float,
               chosen: dict[int, str] | None, class_names: list[str]) -> FitQuality:
    """The fit's diagnostics and warnings (:mod:`musiclime.fit_quality`): features against
    samples and effective samples, a collapsed kernel, all-zero weights, and per label the
    held-out R^2 of the configured surrogate by K-fold cross-validation on these ``masks`` and
    ``probs`` (no classifier call), on the scale it was fitted on (``chosen``, for
    ``target=auto``). Deterministic for ``config.seed``."""
    import dataclasses

    from .fit_quality import LabelQuality, cross_validated_r2, fit_warnings, fold_assignment
    from .surrogate import ExponentialKernel, cosine_distance
    from .targets import transform

    sample_weights = ExponentialKernel(config.kernel_width, config.distance_scale)(
        cosine_distance(masks))
    sampler = mask_sampler(config)
    fold_of = fold_assignment(masks.shape[0], config.seed, fixed_rows=sampler.fixed_rows,
                              paired=bool(sampler.paired))
    per_label = {}
    for label in labels:
        scale = chosen[label] if chosen else config.target
        fold_config = (config if scale == config.target
                       else dataclasses.replace(config, target=scale))

        def fit(rows_masks, rows, fold_config=fold_config, label=label):
            refit, _, _ = surrogate_fits(fold_config, rows_masks, probs[rows], [label])
            return refit[label].intercept, refit[label].weights

        r2, note = cross_validated_r2(masks, transform(scale, probs[:, label]), sample_weights,
                                      fit, fold_of)
        weights = np.asarray(fits[label].weights, dtype=np.float64)
        score = float(fits[label].score)
        per_label[label] = LabelQuality(
            insample_r2=score if np.isfinite(score) else None, heldout_r2=r2, heldout_note=note,
            max_abs_weight=float(np.max(np.abs(weights))) if weights.size else 0.0)
    names = {label: class_names[label] if label < len(class_names) else str(label)
             for label in labels}
    found = fit_warnings(song_id, masks.shape[0], masks.shape[1], effective_samples, per_label,
                         names, kernel_width=config.kernel_width,
                         distance_scale=config.distance_scale)
    return FitQuality(n_samples=int(masks.shape[0]), n_features=int(masks.shape[1]),
                      effective_samples=float(effective_samples), labels=per_label,
                      warnings=found)


def song_composer(classifier, song: Song):
    """The :class:`~musiclime.composition.WaveformComposer` of ``song`` on the classifier's
    device (its stems moved there once)."""
    from .classifier import classifier_device
    from .composition import WaveformComposer

    return WaveformComposer(song.audio, device=classifier_device(classifier))


def predict_song(classifier, song: Song, masks: np.ndarray, layout: MaskLayout,
                 config: ExplainerConfig, progress: bool = True,
                 composer=None) -> Predictions:
    """Class probabilities of every mask row of ``song`` (streaming, batched on the
    classifier's device); the inference settings come from ``config`` (``batch_size``,
    ``deduplicate``, ``mixed_precision``). ``composer``: one from :func:`song_composer` to
    reuse across calls (default: a new one)."""
    from .inference import predict_masks

    composer = composer or song_composer(classifier, song)
    return predict_masks(classifier, composer, song.lyrics, masks, layout,
                         batch_size=config.batch_size, progress=progress,
                         deduplicate=config.deduplicate,
                         mixed_precision=config.mixed_precision)


def surrogate_fits(config: ExplainerConfig, masks: np.ndarray, probs: np.ndarray,
                   labels: list[int]):
    """The configured surrogate of every label: ``(fits, kernel stats, chosen)``.

    The estimator (LIME ridge, or a Shapley estimator) is fitted to the predictions on the
    scale ``config.target`` names (:mod:`musiclime.targets`). ``target=auto`` fits it on the
    probability and on the logit and keeps, per label, the fit with the higher weighted R^2:
    the scale on which the classifier is locally most linear; ``chosen`` maps each label to
    the scale kept (``None`` for a fixed target). R^2 is a share of explained variance, so it
    compares across the two scales."""
    from .surrogate import ExponentialKernel, cosine_distance
    from .targets import FIXED_TARGETS, transform

    kernel = ExponentialKernel(config.kernel_width, config.distance_scale)
    names = FIXED_TARGETS if config.target == "auto" else (config.target,)
    candidates = {}
    stats = None
    for name in names:
        values = transform(name, probs)
        fits, stats = fit_lime(masks, values, labels, kernel, cosine_distance,
                               feature_selection=config.feature_selection,
                               ridge_alpha=config.ridge_alpha, random_state=config.seed)
        if config.estimator != "lime_ridge":
            # Shapley values from the same predictions (the LIME kernel's statistics above stay
            # in the record: they describe the sample)
            fits = shapley_fits(config.estimator, masks, values, labels, mask_sampler(config))
        candidates[name] = fits
    if len(names) == 1:
        return candidates[names[0]], stats, None
    chosen = {label: max(names, key=lambda n: (candidates[n][label].score, n == names[0]))
              for label in labels}
    return {label: candidates[chosen[label]][label] for label in labels}, stats, chosen


def surrogate_weights(config: ExplainerConfig):
    """``fit(masks, p) -> weights``: the configured surrogate (estimator, target, kernel, ridge)
    on one label's probabilities ``p`` (rows,) (for :mod:`.adaptive` and the benchmarks)."""

    def fit(masks, p):
        fits, _, _ = surrogate_fits(config, masks, np.asarray(p, dtype=np.float64)[:, None],
                                    [0])
        return fits[0].weights
    return fit


def predict_adaptive(classifier, song: Song, masks: np.ndarray, layout: MaskLayout,
                     config: ExplainerConfig, progress: bool = False):
    """``num_samples=auto`` (:mod:`musiclime.adaptive`): predict ``masks`` (the budget's draw)
    block by block until the bootstrap top-k stability of the configured surrogate reaches
    ``config.auto_target``; one composer serves every block. The stability is that of the
    first explained label (``config.labels``; by default the predicted one). Returns the
    :class:`~musiclime.inference.Predictions` of the rows predicted and the ``auto`` record."""
    from dataclasses import replace as dc_replace

    from .adaptive import run_adaptive

    sampler = mask_sampler(config)
    fit = surrogate_weights(config)
    runs = []
    label: list[int] = []

    composer = song_composer(classifier, song)

    def predict(rows):
        preds = predict_song(classifier, song, rows, layout, config, progress, composer)
        runs.append(preds)
        if not label:
            label.extend(resolve_labels(config.labels, preds.probs[0], preds.class_names)[:1])
        return preds.probs

    probs, record = run_adaptive(
        masks, predict, fit, lambda p: p[:, label[0]],
        block=config.auto_block, stability_target=config.auto_target, top_k=config.auto_top_k,
        resamples=config.auto_bootstrap, seed=config.seed, paired=bool(sampler.paired),
        fixed_rows=sampler.fixed_rows)
    timings: dict[str, float] = {}
    for run in runs:
        for key, value in run.timings.items():
            timings[key] = timings.get(key, 0.0) + float(value)
    merged = dc_replace(runs[0], probs=probs, timings=timings,
                        unique_rows=sum(r.unique_rows for r in runs))
    return merged, record


class MusicLIME:
    """The explainer: a classifier plus settings.

    Parameters
    ----------
    classifier: follows :class:`musiclime.classifier.Classifier`, or a seed-style
        ``predict_fn(texts, audios)`` (then pass ``sample_rate`` and ``class_names``).
    config: :class:`ExplainerConfig`; keyword arguments override its fields.
    """

    def __init__(self, classifier, config: ExplainerConfig | None = None, *,
                 sample_rate: int | None = None, class_names: list[str] | None = None,
                 progress: bool = True, **overrides):
        from .classifier import as_classifier

        self.classifier = as_classifier(classifier, sample_rate=sample_rate,
                                        class_names=class_names)
        base = asdict(config) if config is not None else {}
        base.update(overrides)
        self.config = ExplainerConfig(**base)
        self.progress = progress

    @property
    def sample_rate(self) -> int:
        return int(self.classifier.sample_rate)

    def predict(self, song: Song, masks: np.ndarray, layout: MaskLayout) -> Predictions:
        return predict_song(self.classifier, song, masks, layout, self.config, self.progress)

    def explain(self, song: Song) -> Explanation:
        cfg = self.config
        t0 = time.perf_counter()
        table = song.feature_table
        lyrics_path = song.info.get("lyrics_path")
        where = f"song {song.song_id}" + (f" (lyrics {lyrics_path})" if lyrics_path else "")
        masks, layout = make_masks(table, cfg, where=where)
        t_masks = time.perf_counter() - t0
        log.info("%s: %d audio components, %d lyric units (%s), modality %s, %d masks",
                 song.song_id, table.n_audio, table.n_lyrics, table.lyrics_unit, cfg.modality,
                 masks.shape[0])
        auto = None
        if cfg.is_auto:
            preds, auto = predict_adaptive(self.classifier, song, masks, layout, cfg,
                                           self.progress)
            masks = masks[: preds.probs.shape[0]]
            log.info("%s: num_samples=auto stopped at %d samples (bootstrap top-%d Jaccard "
                     "%.3f, target %.2f)", song.song_id, auto["calls"], cfg.auto_top_k,
                     auto["stability"], cfg.auto_target)
        else:
            preds = self.predict(song, masks, layout)
        timings = {"masks_s": t_masks, **preds.timings}
        exp = fit_explanation(song.song_id, table, layout, masks, preds.probs,
                              preds.class_names, cfg, timings=timings, song_info=song.info,
                              warnings=song.warnings, auto=auto)
        exp.timings["total_s"] = time.perf_counter() - t0
        return exp
