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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, InputError
from ..io.audio import load_audio
from .explanation import Explanation
from .factorization import AudioFactorization
from .features import FeatureTable
from .fit_quality import FitQuality
from .lyrics import LyricsUnits, make_lyrics_units, read_lyrics
from .masks import MaskLayout, is_exhaustive, sample_masks
from .params import (  # noqa: F401 (AUTO, AUTO_KEYS: importable from here as before)
    AUTO,
    AUTO_KEYS,
    ExplainerConfig,
    FitParams,
    MaskParams,
    PredictParams,
    SegmentParams,
    settings_record,
    stage,
    strategy,
)
from .surrogate import LabelFit, fit_lime

if TYPE_CHECKING:
    from .inference import Predictions

# torch is imported where predictions are made, not at import time: the workflow's fit jobs use
# this module without a classifier and start faster without it.

log = logging.getLogger(__name__)

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
              params: SegmentParams | ExplainerConfig, song_id: str = "song", info: dict | None = None,
              stems_rate: int | None = None) -> Song:
    """Cut stems into stem x segment components and lyrics into units: a :class:`Song`.

    ``mix`` is at ``sample_rate`` (the working rate: the classifier's). ``stems`` are at
    ``stems_rate`` (the separator's rate; default ``sample_rate``) and are resampled to the
    working rate here, trimmed or padded to the mix's length. ``params``: the segmentation
    (an :class:`ExplainerConfig` stands for its ``segment``).

    Raises :class:`ConfigError` when ``explainer.segment_boundaries`` reach past the end of
    the audio and :class:`InputError` when the audio is too short for
    ``explainer.temporal_segments``. Suspicious input (silence) is logged and listed in the
    song's ``warnings``.
    """
    config = stage(params, SegmentParams, "segment")
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
              sample_rate: int, config: SegmentParams | ExplainerConfig | None = None,
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
    config = stage(config or SegmentParams(), SegmentParams, "segment")
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


def make_masks(table: FeatureTable, params: MaskParams | ExplainerConfig,
               where: str | None = None) -> tuple[np.ndarray, MaskLayout]:
    """``params.max_samples`` masks over the features ``params.modality`` perturbs, and their
    layout (an :class:`ExplainerConfig` stands for its ``masks``).

    Raises :class:`InputError` when there is nothing to perturb (``modality=lyrical`` and no
    lyric units); ``where`` names the song (and its lyrics file) in that message.
    """
    params = stage(params, MaskParams, "masks")
    layout = MaskLayout(table.n_audio, table.n_lyrics, params.modality)
    if layout.n_columns == 0:
        raise InputError(
            f"{where or 'the song'}: nothing to perturb: explainer.modality={params.modality} "
            "perturbs only the lyrics and there are no lyric units (empty lyrics, or only "
            "[section]/(ad-lib) lines); give the song's lyrics or use explainer.modality=audio")
    return draw_masks(params, layout.n_columns), layout


def draw_masks(params: MaskParams, n_columns: int) -> np.ndarray:
    """``params.max_samples`` masks over ``n_columns`` from ``params.sampler`` with
    ``params.seed`` (the Bernoulli default is :func:`musiclime.masks.sample_masks`, bit for
    bit)."""
    if params.sampler == "bernoulli":
        return sample_masks(n_columns, params.max_samples, params.seed,
                            exhaustive=params.exhaustive)
    masks = np.asarray(params.make_sampler()(n_columns, params.max_samples, params.seed))
    if masks.shape != (params.max_samples, n_columns):
        raise ValueError(f"explainer.sampler {params.sampler!r} drew masks of shape "
                         f"{masks.shape}, not ({params.max_samples}, {n_columns})")
    return masks.astype(np.uint8, copy=False)


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


def shapley_fits(spec, masks: np.ndarray, probs: np.ndarray,
                 labels: list[int], sampler=None) -> dict[int, LabelFit]:
    """One :class:`~musiclime.surrogate.LabelFit` per label from an estimator of
    :mod:`musiclime.core.estimators` (a name, a ``_target_`` node or an object): the weights are
    its attributions (Shapley values), the intercept its base value ``phi_0``,
    ``local_pred = phi_0 + sum(phi)``, ``score`` its weighted R^2.

    ``sampler`` (the one that drew ``masks``): Kernel SHAP weighs rows by the Shapley kernel
    over the sampler's size distribution (``pi / q``) when the sampler does not draw uniform
    masks; Leverage SHAP's stratified reweighting is right for every sampler."""
    from .estimators import KernelSHAP, estimate
    from .samplers import binomial_sizes

    estimator = strategy("estimator", spec)
    if spec == "kernel_shap" and sampler is not None and hasattr(sampler, "size_distribution"):
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
                    probs: np.ndarray, class_names: list[str],
                    params: FitParams | ExplainerConfig, *, settings: dict | None = None,
                    timings: dict | None = None, song_info: dict | None = None,
                    warnings: list[str] | None = None, auto: dict | None = None) -> Explanation:
    """Fit the surrogate on the first ``params.num_samples`` rows (prefix property; all rows
    with ``num_samples=auto``) and build the record.

    ``settings``: the configuration the explanation records (:func:`settings_record`; from
    an :class:`ExplainerConfig`, its own). ``warnings`` (e.g. a :class:`Song`'s, from
    :func:`audio_warnings`) are recorded in the explanation together with
    :func:`explanation_warnings`, which are also logged. The fit's diagnostics
    (:func:`assess_fit`: held-out R^2, and warnings when the fit's numbers mean nothing) are
    recorded in ``fit_quality``; its warnings are logged too.
    """
    if isinstance(params, ExplainerConfig):
        settings = params.record() if settings is None else settings
    fit = stage(params, FitParams, "fit")
    settings = settings_record(None, None, fit) if settings is None else settings
    n = fit.num_samples or masks.shape[0]
    if is_exhaustive(layout.n_columns, n, fit.draw.exhaustive):
        n = min(n, masks.shape[0])
    masks, probs = masks[:n], probs[:n]
    t0 = time.perf_counter()
    labels = resolve_labels(fit.labels, probs[0], class_names)
    fits, stats, chosen = surrogate_fits(fit, masks, probs, labels)
    timings = dict(timings or {})
    timings["fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    quality = assess_fit(song_id, fit, masks, probs, labels, fits, stats.effective_samples,
                         chosen, class_names)
    timings["fit_checks_s"] = time.perf_counter() - t0
    if stats.weight_max - stats.weight_min < 1e-3:
        log.warning("%s: the kernel is flat (weights %.5f..%.5f): width %.3g on distances "
                    "scaled by %.3g treats every sample alike; lower kernel_width or raise "
                    "distance_scale", song_id, stats.weight_min, stats.weight_max,
                    fit.kernel_width, fit.distance_scale)
    record = dict(settings)
    record["exhaustive_enumeration"] = is_exhaustive(layout.n_columns, n, fit.draw.exhaustive)
    if auto is not None:
        record["auto"] = dict(auto)
    if chosen is not None:  # target=auto: the scale each label's surrogate was fitted on
        record["target_chosen"] = {str(label): name for label, name in chosen.items()}
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
                       kernel=stats.as_dict(), params=record, timings=timings,
                       song_info=dict(song_info or {}), warnings=[*(warnings or []), *found],
                       fit_quality=quality)


def assess_fit(song_id: str, fit: FitParams, masks: np.ndarray, probs: np.ndarray,
               labels: list[int], fits: dict[int, LabelFit], effective_samples: float,
               chosen: dict[int, str] | None, class_names: list[str]) -> FitQuality:
    """The fit's diagnostics and warnings (:mod:`musiclime.fit_quality`): features against
    samples and effective samples, a collapsed kernel, all-zero weights, and per label the
    held-out R^2 of the configured surrogate by K-fold cross-validation on these ``masks`` and
    ``probs`` (no classifier call), on the scale it was fitted on (``chosen``, for
    ``target=auto``). Deterministic for ``fit.draw.seed``."""
    from .fit_quality import LabelQuality, cross_validated_r2, fit_warnings, fold_assignment
    from .surrogate import cosine_distance

    sample_weights = fit.make_kernel()(cosine_distance(masks))
    sampler = fit.draw.make_sampler()
    fold_of = fold_assignment(masks.shape[0], fit.draw.seed,
                              fixed_rows=getattr(sampler, "fixed_rows", 1),
                              paired=bool(getattr(sampler, "paired", False)))
    per_label = {}
    for label in labels:
        scale = chosen[label] if chosen else fit.target
        fold_fit = fit if scale == fit.target else replace(fit, target=scale)

        def refit(rows_masks, rows, fold_fit=fold_fit, label=label):
            fits_, _, _ = surrogate_fits(fold_fit, rows_masks, probs[rows], [label])
            return fits_[label].intercept, fits_[label].weights

        r2, note = cross_validated_r2(masks, target_values(scale, probs[:, label]),
                                      sample_weights, refit, fold_of)
        weights = np.asarray(fits[label].weights, dtype=np.float64)
        score = float(fits[label].score)
        per_label[label] = LabelQuality(
            insample_r2=score if np.isfinite(score) else None, heldout_r2=r2, heldout_note=note,
            max_abs_weight=float(np.max(np.abs(weights))) if weights.size else 0.0)
    names = {label: class_names[label] if label < len(class_names) else str(label)
             for label in labels}
    found = fit_warnings(song_id, masks.shape[0], masks.shape[1], effective_samples, per_label,
                         names, kernel_width=fit.kernel_width,
                         distance_scale=fit.distance_scale)
    return FitQuality(n_samples=int(masks.shape[0]), n_features=int(masks.shape[1]),
                      effective_samples=float(effective_samples), labels=per_label,
                      warnings=found)


def target_values(target, probs: np.ndarray) -> np.ndarray:
    """``probs`` on the scale ``target`` names (:func:`musiclime.targets.transform`), or
    through a :class:`musiclime.core.targets.Target` object (a ``_target_`` node is built)."""
    from .targets import transform

    if isinstance(target, str):
        return transform(target, probs)
    return np.asarray(strategy("target", target)(np.asarray(probs, dtype=np.float64)),
                      dtype=np.float64)


def song_composer(classifier, song: Song):
    """The :class:`~musiclime.composition.WaveformComposer` of ``song`` on the classifier's
    device (its stems moved there once)."""
    from .classifier import classifier_device
    from .composition import WaveformComposer

    return WaveformComposer(song.audio, device=classifier_device(classifier))


def predict_song(classifier, song: Song, masks: np.ndarray, layout: MaskLayout,
                 params: PredictParams | ExplainerConfig, progress: bool = True,
                 composer=None) -> Predictions:
    """Class probabilities of every mask row of ``song`` (streaming, batched on the
    classifier's device) with ``params`` (an :class:`ExplainerConfig` stands for its
    ``predict``). ``composer``: one from :func:`song_composer` to reuse across calls
    (default: a new one)."""
    from .inference import predict_masks

    params = stage(params, PredictParams, "predict")
    composer = composer or song_composer(classifier, song)
    return predict_masks(classifier, composer, song.lyrics, masks, layout,
                         batch_size=params.batch_size, progress=progress,
                         deduplicate=params.deduplicate,
                         mixed_precision=params.mixed_precision)


def surrogate_fits(fit: FitParams, masks: np.ndarray, probs: np.ndarray,
                   labels: list[int]):
    """The configured surrogate of every label: ``(fits, kernel stats, chosen)``.

    The estimator (LIME ridge, a Shapley estimator, or the user's) is fitted to the
    predictions on the scale ``fit.target`` names (:mod:`musiclime.targets`). ``target=auto``
    fits it on the probability and on the logit and keeps, per label, the fit with the higher
    weighted R^2: the scale on which the classifier is locally most linear; ``chosen`` maps
    each label to the scale kept (``None`` for a fixed target). R^2 is a share of explained
    variance, so it compares across the two scales."""
    from .surrogate import cosine_distance
    from .targets import FIXED_TARGETS

    kernel = fit.make_kernel()
    names = FIXED_TARGETS if fit.target == "auto" else (fit.target,)
    candidates = {}
    stats = None
    for i, name in enumerate(names):
        values = target_values(name, probs)
        fits, stats = fit_lime(masks, values, labels, kernel, cosine_distance,
                               feature_selection=fit.feature_selection,
                               ridge_alpha=fit.ridge_alpha, random_state=fit.draw.seed)
        if fit.estimator != "lime_ridge":
            # another estimator on the same predictions (the LIME kernel's statistics above
            # stay in the record: they describe the sample)
            fits = shapley_fits(fit.estimator, masks, values, labels, fit.draw.make_sampler())
        candidates[i] = fits
    if len(names) == 1:
        return candidates[0], stats, None
    chosen = {label: max(range(len(names)),
                         key=lambda i: (candidates[i][label].score, i == 0))
              for label in labels}
    return ({label: candidates[chosen[label]][label] for label in labels}, stats,
            {label: names[i] for label, i in chosen.items()})


def surrogate_weights(fit: FitParams):
    """``fit(masks, p) -> weights``: the configured surrogate (estimator, target, kernel, ridge)
    on one label's probabilities ``p`` (rows,) (for :mod:`.adaptive` and the benchmarks)."""
    fit = stage(fit, FitParams, "fit")

    def weights(masks, p):
        fits, _, _ = surrogate_fits(fit, masks, np.asarray(p, dtype=np.float64)[:, None], [0])
        return fits[0].weights
    return weights


def predict_adaptive(classifier, song: Song, masks: np.ndarray, layout: MaskLayout,
                     predict: PredictParams, fit: FitParams, progress: bool = False):
    """``num_samples=auto`` (:mod:`musiclime.adaptive`): predict ``masks`` (the budget's draw)
    block by block until the bootstrap top-k stability of the surrogate ``fit`` describes
    reaches ``fit.auto.target``; one composer serves every block. The stability is that of the
    first explained label (``fit.labels``; by default the predicted one). Returns the
    :class:`~musiclime.inference.Predictions` of the rows predicted and the ``auto`` record."""
    from .adaptive import run_adaptive

    sampler = fit.draw.make_sampler()
    weights = surrogate_weights(fit)
    runs = []
    label: list[int] = []

    composer = song_composer(classifier, song)

    def predict_rows(rows):
        preds = predict_song(classifier, song, rows, layout, predict, progress, composer)
        runs.append(preds)
        if not label:
            label.extend(resolve_labels(fit.labels, preds.probs[0], preds.class_names)[:1])
        return preds.probs

    auto = fit.auto
    probs, record = run_adaptive(
        masks, predict_rows, weights, lambda p: p[:, label[0]],
        block=auto.block, stability_target=auto.target, top_k=auto.top_k,
        resamples=auto.bootstrap, seed=fit.draw.seed,
        paired=bool(getattr(sampler, "paired", False)),
        fixed_rows=getattr(sampler, "fixed_rows", 1))
    timings: dict[str, float] = {}
    for run in runs:
        for key, value in run.timings.items():
            timings[key] = timings.get(key, 0.0) + float(value)
    merged = replace(runs[0], probs=probs, timings=timings,
                     unique_rows=sum(r.unique_rows for r in runs))
    return merged, record


class MusicLIME:
    """The explainer: a classifier plus settings.

    Parameters
    ----------
    classifier: follows :class:`musiclime.classifier.Classifier`, or a seed-style
        ``predict_fn(texts, audios)`` (then pass ``sample_rate`` and ``class_names``).
    config: :class:`ExplainerConfig`; keyword arguments override its fields.
    sampler, estimator, target, kernel: strategy objects (any object that follows
        :class:`musiclime.samplers.Sampler`, :class:`musiclime.estimators.Estimator`,
        :class:`musiclime.targets.Target`, :class:`musiclime.surrogate.Kernel`) in place of
        the ones ``config`` names.
    """

    def __init__(self, classifier, config: ExplainerConfig | None = None, *,
                 sample_rate: int | None = None, class_names: list[str] | None = None,
                 progress: bool = True, sampler=None, estimator=None, target=None,
                 kernel=None, **overrides):
        from .classifier import as_classifier

        self.classifier = as_classifier(classifier, sample_rate=sample_rate,
                                        class_names=class_names)
        config = config or ExplainerConfig()
        self.config = replace(config, **overrides) if overrides else config
        self.progress = progress
        masks = self.config.masks
        if sampler is not None:
            masks = replace(masks, sampler=sampler)
        fit = replace(self.config.fit, draw=masks)
        strategies = {"estimator": estimator, "target": target, "kernel": kernel}
        fit = replace(fit, **{k: v for k, v in strategies.items() if v is not None})
        #: the parameters of each stage (with the strategy objects given)
        self.segment, self.masks, self.predict_params, self.fit = (
            self.config.segment, masks, self.config.predict, fit)

    @property
    def sample_rate(self) -> int:
        return int(self.classifier.sample_rate)

    def predict(self, song: Song, masks: np.ndarray, layout: MaskLayout) -> Predictions:
        return predict_song(self.classifier, song, masks, layout, self.predict_params,
                            self.progress)

    def explain(self, song: Song) -> Explanation:
        fit = self.fit
        t0 = time.perf_counter()
        table = song.feature_table
        lyrics_path = song.info.get("lyrics_path")
        where = f"song {song.song_id}" + (f" (lyrics {lyrics_path})" if lyrics_path else "")
        masks, layout = make_masks(table, self.masks, where=where)
        t_masks = time.perf_counter() - t0
        log.info("%s: %d audio components, %d lyric units (%s), modality %s, %d masks",
                 song.song_id, table.n_audio, table.n_lyrics, table.lyrics_unit,
                 self.masks.modality, masks.shape[0])
        auto = None
        if fit.is_auto:
            preds, auto = predict_adaptive(self.classifier, song, masks, layout,
                                           self.predict_params, fit, self.progress)
            masks = masks[: preds.probs.shape[0]]
            log.info("%s: num_samples=auto stopped at %d samples (bootstrap top-%d Jaccard "
                     "%.3f, target %.2f)", song.song_id, auto["calls"], fit.auto.top_k,
                     auto["stability"], fit.auto.target)
        else:
            preds = self.predict(song, masks, layout)
        timings = {"masks_s": t_masks, **preds.timings}
        exp = fit_explanation(song.song_id, table, layout, masks, preds.probs,
                              preds.class_names, fit,
                              settings=settings_record(self.segment, self.predict_params, fit),
                              timings=timings, song_info=song.info, warnings=song.warnings,
                              auto=auto)
        exp.timings["total_s"] = time.perf_counter() - t0
        return exp
