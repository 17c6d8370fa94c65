"""MusicLIME from Python: factorize a song, perturb it, predict, fit, explain.

>>> from musiclime import MusicLIME, ExplainerConfig, load_song
>>> song = load_song("song.wav", "song.txt", separator, sample_rate=clf.sample_rate)
>>> explanation = MusicLIME(clf, ExplainerConfig(num_samples=1000)).explain(song)

The stages are also exposed one by one (:func:`make_masks`, :func:`predict_song`,
:func:`fit_explanation`) for the Snakemake workflow, which stores each stage's output in a file.
The stages around them have their own modules: the song from its files to its factorization
(:mod:`.song`), the surrogate fit of every label (:mod:`.fitting`) and the fit's diagnostics
(:mod:`.fit_quality`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import ClassifierOutputError, ConfigError, InputError
from .explanation import Explanation
from .features import FeatureTable
from .fit_quality import assess_fit
from .fitting import surrogate_fits, surrogate_weights
from .interactions import (
    InteractionParams,
    InteractionRows,
    fit_interactions,
    predict_interaction_rows,
)
from .masks import MaskLayout, is_exhaustive, sample_masks
from .modality import ModalityGame
from .params import (  # noqa: F401 (AUTO, AUTO_KEYS: importable from here as before)
    AUTO,
    AUTO_KEYS,
    ExplainerConfig,
    FitParams,
    MaskParams,
    PredictParams,
    settings_record,
    stage,
)

# the song's loading has its own module; these stay importable from here (the workflow, the
# report and the benchmarks import them from the explainer)
from .song import (  # noqa: F401
    Song,
    audio_warnings,
    factorize,
    load_song,
    separate,
    separation_rate,
)
from .uncertainty import explanation_uncertainty

if TYPE_CHECKING:
    from .inference import Predictions

# torch is imported where predictions are made, not at import time: the workflow's fit jobs use
# this module without a classifier and start faster without it.

log = logging.getLogger(__name__)

#: Audio segments shorter than this (seconds) draw a warning.
MIN_SEGMENT_SECONDS = 0.5
#: A predicted label with a lower probability than this draws a warning.
UNSURE_PROBABILITY = 0.6


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
    ``params.seed`` (the Bernoulli default is :func:`musiclime.core.masks.sample_masks`, bit for
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


def fit_explanation(song_id: str, table: FeatureTable, layout: MaskLayout, masks: np.ndarray,
                    probs: np.ndarray, class_names: list[str],
                    params: FitParams | ExplainerConfig, *, settings: dict | None = None,
                    timings: dict | None = None, song_info: dict | None = None,
                    warnings: list[str] | None = None, auto: dict | None = None,
                    modality_game: ModalityGame | None = None,
                    interactions: InteractionParams | None = None,
                    interaction_rows: InteractionRows | None = None) -> Explanation:
    """Fit the surrogate on the first ``params.num_samples`` rows (prefix property; all rows
    with ``num_samples=auto``) and build the record.

    ``modality_game``: the song's modality game (``Predictions.modality``,
    :mod:`musiclime.core.modality`), recorded as it is; the fit never sees its rows.

    ``interactions``: each label's top pairwise interactions (:mod:`.interactions`) over every
    row of ``masks``/``probs`` (not only the fitted prefix) and ``interaction_rows``
    (``Predictions.interactions``, recorded by :func:`predict_song` for the same parameters; a
    row in neither is an error). ``None`` or ``none``: the record is as without them.

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
    all_masks, all_probs = masks, probs
    masks, probs = masks[:n], probs[:n]
    t0 = time.perf_counter()
    labels = resolve_labels(fit.labels, probs[0], class_names)
    fits, stats, chosen = surrogate_fits(fit, masks, probs, labels)
    timings = dict(timings or {})
    timings["fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    uncertainty = explanation_uncertainty(fit, masks, probs, labels, fits, chosen)
    timings["uncertainty_s"] = time.perf_counter() - t0
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
    pairs = fit_interactions(interactions, layout, all_masks, all_probs, labels,
                             interaction_rows, timings, record)
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
                       song_info=dict(song_info or {}), fit_quality=quality,
                       warnings=[*(warnings or []), *found, *(pairs.warnings if pairs else [])],
                       uncertainty=uncertainty,
                       modality_game=_checked_game(modality_game, class_names),
                       interactions=pairs)


def _checked_game(game: ModalityGame | None, class_names: list[str]) -> ModalityGame | None:
    """``game`` when its rows hold one probability per class (else a ``ValueError``)."""
    if game is not None and game.probs.shape[1] != len(class_names):
        raise ValueError(f"the modality game has {game.probs.shape[1]} probabilities per row, "
                         f"the predictions {len(class_names)} classes")
    return game


def song_composer(classifier, song: Song):
    """The :class:`~musiclime.core.composition.WaveformComposer` of ``song`` on the classifier's
    device (its stems moved there once)."""
    from .classifier import classifier_device
    from .composition import WaveformComposer

    return WaveformComposer(song.audio, device=classifier_device(classifier))


def predict_song(classifier, song: Song, masks: np.ndarray, layout: MaskLayout,
                 params: PredictParams | ExplainerConfig, progress: bool = True,
                 composer=None, modality_game: bool = True,
                 interactions: Sequence[InteractionParams] = ()) -> Predictions:
    """Class probabilities of every mask row of ``song`` (streaming, batched on the
    classifier's device) with ``params`` (an :class:`ExplainerConfig` stands for its
    ``predict``). ``composer``: one from :func:`song_composer` to reuse across calls
    (default: a new one).

    ``modality_game``: also play the song's modality game (:mod:`musiclime.core.modality`) into
    ``Predictions.modality``: the coalitions ``masks`` holds are read from its predictions, the
    others (at most 4 classifier rows) are predicted after the masks with the same composer,
    batch size, precision and de-duplication, as masks over every feature. They never join the
    mask rows, so ``probs`` (and every fit on it) is the same with or without the game. A
    classifier whose output for those inputs is not a probability (NaN on the residual alone,
    say) gets a warning and no game, not a failed song.

    ``interactions``: every :class:`InteractionParams` a fit of these predictions may ask for
    (the union); their estimators run once in record mode
    (:func:`musiclime.core.interactions.record_interaction_rows`) and the rows they need beyond
    ``masks`` are predicted the same way, into ``Predictions.interactions``. Empty (or only
    ``none``): nothing is predicted and ``Predictions`` is what it was without them."""
    from .inference import predict_masks
    from .modality import game_layout, play_game

    params = stage(params, PredictParams, "predict")
    composer = composer or song_composer(classifier, song)
    options = {"batch_size": params.batch_size, "deduplicate": params.deduplicate,
               "mixed_precision": params.mixed_precision}
    preds = predict_masks(classifier, composer, song.lyrics, masks, layout, progress=progress,
                          **options)
    if modality_game:
        t0 = time.perf_counter()
        try:
            preds.modality = play_game(masks, preds.probs, layout, lambda rows: predict_masks(
                classifier, composer, song.lyrics, rows, game_layout(layout), progress=False,
                **options).probs)
        except ClassifierOutputError as exc:  # e.g. NaN for the residual alone (near silence)
            log.warning("%s: no modality game: the classifier's output for a modality switched "
                        "off is not a probability (%s)", song.song_id, exc)
        preds.timings["modality_game_s"] = time.perf_counter() - t0
    predict_interaction_rows(preds, masks, lambda rows: predict_masks(
        classifier, composer, song.lyrics, rows, layout, progress=False, **options).probs,
        interactions)
    return preds


def predict_adaptive(classifier, song: Song, masks: np.ndarray, layout: MaskLayout,
                     predict: PredictParams, fit: FitParams, progress: bool = False,
                     interactions: Sequence[InteractionParams] = ()):
    """``num_samples=auto`` (:mod:`musiclime.core.adaptive`): predict ``masks`` (the budget's draw)
    block by block until the bootstrap top-k stability of the surrogate ``fit`` describes
    reaches ``fit.auto.target``; one composer serves every block. The stability is that of the
    first explained label (``fit.labels``; by default the predicted one). Returns the
    :class:`~musiclime.core.inference.Predictions` of the rows predicted and the ``auto`` record.
    ``interactions``: as :func:`predict_song`'s, recorded once the masks are predicted."""
    from .adaptive import run_adaptive
    from .inference import predict_masks

    sampler = fit.draw.make_sampler()
    weights = surrogate_weights(fit)
    runs = []
    label: list[int] = []

    composer = song_composer(classifier, song)

    def predict_rows(rows):
        # the modality game once, with the first block (it holds row 0, the original)
        preds = predict_song(classifier, song, rows, layout, predict, progress, composer,
                             modality_game=not runs)
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
    options = {"batch_size": predict.batch_size, "deduplicate": predict.deduplicate,
               "mixed_precision": predict.mixed_precision}
    predict_interaction_rows(merged, masks[: probs.shape[0]], lambda rows: predict_masks(
        classifier, composer, song.lyrics, rows, layout, progress=False, **options).probs,
        interactions)
    return merged, record


class MusicLIME:
    """The explainer: a classifier plus settings.

    Parameters
    ----------
    classifier: follows :class:`musiclime.core.classifier.Classifier`, or a seed-style
        ``predict_fn(texts, audios)`` (then pass ``sample_rate`` and ``class_names``).
    config: :class:`ExplainerConfig`; keyword arguments override its fields.
    sampler, estimator, target, kernel: strategy objects (any object that follows
        :class:`musiclime.core.samplers.Sampler`, :class:`musiclime.core.estimators.Estimator`,
        :class:`musiclime.core.targets.Target`, :class:`musiclime.core.surrogate.Kernel`) in place of
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
        #: the pairwise interactions' parameters (``interactions=none``: none)
        self.interaction = self.config.interaction

    @property
    def sample_rate(self) -> int:
        return int(self.classifier.sample_rate)

    def predict(self, song: Song, masks: np.ndarray, layout: MaskLayout) -> Predictions:
        return predict_song(self.classifier, song, masks, layout, self.predict_params,
                            self.progress, interactions=[self.interaction])

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
                                           self.predict_params, fit, self.progress,
                                           interactions=[self.interaction])
            masks = masks[: preds.probs.shape[0]]
            log.info("%s: num_samples=auto stopped at %d samples (bootstrap top-%d Jaccard "
                     "%.3f, target %.2f)", song.song_id, auto["calls"], fit.auto.top_k,
                     auto["stability"], fit.auto.target)
        else:
            preds = self.predict(song, masks, layout)
        timings = {"masks_s": t_masks, **preds.timings}
        # the fit on one BLAS thread, as a run's fit job: sums in the same order, same last bits
        with threadpool_limits(limits=1):
            exp = fit_explanation(song.song_id, table, layout, masks, preds.probs,
                                  preds.class_names, fit,
                                  settings=settings_record(self.segment, self.predict_params, fit),
                                  timings=timings, song_info=song.info, warnings=song.warnings,
                                  auto=auto, modality_game=preds.modality,
                                  interactions=self.interaction,
                                  interaction_rows=preds.interactions)
        exp.timings["total_s"] = time.perf_counter() - t0
        return exp
