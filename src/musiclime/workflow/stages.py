"""What each Snakemake rule does: one function per rule, named as the rule (but for
``predict_masks`` -> :func:`run_predict` and ``fit_lime`` -> :func:`run_fit`, whose rule names
the library's :func:`~musiclime.core.inference.predict_masks` and ridge fit also had).

Each rule runs ``workflow/scripts/stage.py``, which calls :func:`run_rule`: it parses the rule's
typed spec (and song) and calls the rule's function here (:data:`RULES`). These functions only
read and write the stage files (:mod:`.files`); the work is done by the same library functions that ``musiclime explain``
(:class:`musiclime.MusicLIME`, :func:`musiclime.load_song`) calls, so both give the same
explanation:

==========================  =============================================================
rule                        library call
==========================  =============================================================
``decode_audio``            :func:`musiclime.io.audio.load_audio`, :func:`musiclime.core.lyrics.read_lyrics`
``separate_stems``          :func:`musiclime.core.explainer.separate`
``segment_features``        :func:`musiclime.core.explainer.factorize`
``generate_masks``          :func:`musiclime.core.explainer.make_masks`
``predict_masks``           :func:`musiclime.core.explainer.predict_song`
``fit_lime``                :func:`musiclime.core.explainer.fit_explanation`,
                            :func:`musiclime.report.explanation_files.write_explanation_files`
``evaluate_explanations``   :func:`musiclime.metrics.evaluate_explanation`
``aggregate_global``        :func:`musiclime.report.global_plots.write_global`
``freeze_config``           (writes the point's resolved config)
``track_mlflow``            :func:`musiclime.tracking.log.log_point`
==========================  =============================================================

Each records its own wall time in its output so timings reach MLflow.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import supervise
from ..core.features import FeatureTable
from ..core.lyrics import read_lyrics
from ..io import layout
from ..io.audio import load_audio
from ..io.dataset import SongRecord
from ..io.fileio import atomic_path, read_json, write_json, write_npy
from .files import Decoded, JobRecord, Stems
from .specs import (
    AggregateSpec,
    DecodeSpec,
    EvaluateSpec,
    FitSpec,
    MasksSpec,
    Plan,
    PointSpec,
    PredictSpec,
    SegmentSpec,
    SeparateSpec,
)

# torch, lime and scikit-learn are imported inside the stages that need them: most jobs are
# light, and each Snakemake job is a fresh process.

log = logging.getLogger(__name__)


def instantiate(node: dict):
    """Build a separator or classifier from its Hydra node (``_target_`` + arguments)."""
    from hydra.utils import instantiate as hydra_instantiate

    return hydra_instantiate({k: v for k, v in node.items() if k != "name"}, _convert_="all")


def decode_audio(spec: DecodeSpec, song: SongRecord, out: str) -> None:
    t0 = time.perf_counter()
    found: list[str] = []  # what the file hides; the song's explanations record it
    mix, rate = load_audio(song.audio, spec.sample_rate, warnings=found)
    for line in found:
        log.warning("%s", line)
    text = read_lyrics(song.lyrics) if song.lyrics else ""
    Decoded(mix, rate, text, time.perf_counter() - t0, found).save(out)
    log.info("%s: decoded %.1fs at %d Hz", song.song_id, len(mix) / rate, rate)


def separate_stems(spec: SeparateSpec, song: SongRecord, decoded: str, out: str) -> None:
    from ..core.explainer import separate

    t0 = time.perf_counter()
    d = Decoded.load(decoded)
    stems = separate(instantiate(spec.separator), d.mix, d.sample_rate, song.stems_dir)
    Stems(stems, d.sample_rate, time.perf_counter() - t0).save(out)
    log.info("%s: separated into %s in %.1fs", song.song_id, list(stems),
             time.perf_counter() - t0)


def segment_features(spec: SegmentSpec, song: SongRecord, decoded: str, stems: str,
                     out_npz: str, out_table: str) -> None:
    from ..core.explainer import factorize

    d = Decoded.load(decoded)
    s = Stems.load(stems)
    factorized = factorize(d.mix, s.stems, d.sample_rate, d.lyrics, spec.params,
                           song_id=song.song_id, stems_rate=s.sample_rate)
    replace(factorized, warnings=d.warnings).save(out_npz, out_table, s.seconds)


def generate_masks(spec: MasksSpec, song: SongRecord, table: str, out: str) -> None:
    from ..core.explainer import make_masks

    where = f"song {song.song_id}" + (f" (lyrics {song.lyrics})" if song.lyrics else "")
    masks, _ = make_masks(FeatureTable.from_dict(read_json(table)), spec.params, where=where)
    write_npy(out, masks)


def run_predict(spec: PredictSpec, song: SongRecord, segment: str, masks: str,
                out: str) -> None:
    from ..core.explainer import predict_adaptive, predict_song
    from ..core.masks import MaskLayout
    from ..core.song import Song

    factorized, _ = Song.load(segment, song.song_id)
    table = factorized.feature_table
    layout_ = MaskLayout(table.n_audio, table.n_lyrics, spec.modality)
    classifier = instantiate(spec.model)
    rows = np.load(masks)
    if spec.auto is not None:
        # num_samples=auto: block by block until the point's surrogate is stable
        preds, auto = predict_adaptive(classifier, factorized, rows[: spec.auto.draw.max_samples],
                                       layout_, spec.params, spec.auto,
                                       interactions=spec.interactions)
        preds.save(out, auto)
        return
    preds = predict_song(classifier, factorized, rows, layout_, spec.params, progress=False,
                         interactions=spec.interactions)
    preds.save(out)


def run_fit(spec: FitSpec, song: SongRecord, segment: str, table: str, masks: str,
            predict: str, out: str) -> None:
    """Fit every member configuration on its num_samples prefix of one prediction run and
    write its explanation files; the record lists them."""
    from ..core.explainer import audio_warnings, fit_explanation
    from ..core.inference import Predictions
    from ..core.masks import MaskLayout
    from ..core.params import settings_record
    from ..core.song import Song
    from ..report.explanation_files import write_song_explanations

    features = FeatureTable.from_dict(read_json(table))
    m = np.load(masks)
    preds, auto = Predictions.load(predict, with_auto=True)
    factorized, sep_s = Song.load(segment, song.song_id, song.info())
    # what looked suspicious in the file and the audio, worded as `musiclime explain` words it
    warnings = [*factorized.warnings,
                *audio_warnings(factorized.audio, f"song {song.song_id} ({song.audio})")]
    fitted = []
    for member in spec.members:
        fit = member.params
        layout_ = MaskLayout(features.n_audio, features.n_lyrics, fit.draw.modality)
        # num_samples=auto: every row the prediction run predicted
        rows = m[: preds.probs.shape[0]] if fit.is_auto else m
        exp = fit_explanation(song.song_id, features, layout_, rows, preds.probs,
                              preds.class_names, fit, modality_game=preds.modality,
                              settings=settings_record(spec.segmentation, spec.prediction, fit),
                              timings=dict(preds.timings, separate_s=sep_s),
                              song_info=song.info(), warnings=warnings,
                              auto=auto if fit.is_auto else None,
                              interactions=member.interactions, interaction_rows=preds.interactions)
        exp.params["device"] = preds.device
        fitted.append((member, exp, layout.explanation_dir(member.key, song.song_id)))
    files = write_song_explanations(fitted, factorized, spec.shared_scale)
    record = JobRecord(song=song.song_id, files={mb.key: str(f.json) for mb, f in files})
    record.save(out)


def evaluate_explanations(spec: EvaluateSpec, song: SongRecord, segment: str, fit_record: str,
                          out: str) -> None:
    """Quality metrics of every member explanation, evaluated together (one classifier, one
    prediction cache: :func:`~musiclime.metrics.evaluate.evaluate_together`)."""
    from ..core.explanation import Explanation
    from ..core.song import Song
    from ..metrics.evaluate import evaluate_together

    factorized, _ = Song.load(segment, song.song_id)
    explanations = JobRecord.load(fit_record).files
    clf = instantiate(spec.model)
    exps = [(Explanation.load(explanations[m.fit]), m.explainer) for m in spec.members]
    results = evaluate_together(exps, factorized, clf, spec.metrics, evidence=song.evidence)
    record = JobRecord(song=song.song_id)
    for member, metrics in zip(spec.members, results, strict=True):
        path = layout.metrics(member.key, song.song_id)
        write_json(path, metrics)
        if spec.metrics.sanity:  # the cascade's figure, next to the metrics JSON
            from ..report.sanity_figure import write_sanity_figure

            write_sanity_figure(metrics, path, clf, song.song_id)
        record.files[member.key] = path
    record.save(out)


def aggregate_global(spec: AggregateSpec, fit_key: str, fit_records: list[str], summary: str,
                     plots: str, songs_table: str) -> None:
    """Global per-class importances of one configuration, and a table of its songs."""
    from ..report.global_plots import write_global, write_songs_table

    paths = [JobRecord.load(r).files[fit_key] for r in fit_records]
    write_json(summary, write_global(paths, Path(summary).parent, plots_dir=plots))
    write_songs_table(paths, songs_table)


def freeze_config(point: PointSpec, out: str) -> None:
    from omegaconf import OmegaConf

    with atomic_path(out, ".yaml") as tmp:
        tmp.write_text(f"# point overrides: {' '.join(point.overrides) or '(defaults)'}\n"
                       + OmegaConf.to_yaml(OmegaConf.create(point.config)))


def track_mlflow(point: PointSpec, plan, config_path: str, out: str) -> None:
    from ..tracking.log import log_point

    run_id = log_point(plan, point, config_path)
    write_json(out, {"run_id": run_id, "point": point.point_id,
                     "parent_run_id": plan.invocation.parent_run_id})


def _song(smk) -> SongRecord:
    return SongRecord.from_dict(smk.params.song)


#: rule -> how its job calls its function: the spec, the song and the files, from Snakemake's
#: ``snakemake`` object (``smk``)
RULES = {
    "decode_audio": lambda smk: decode_audio(
        DecodeSpec.from_dict(smk.params.spec), _song(smk), smk.output.npz),
    "separate_stems": lambda smk: separate_stems(
        SeparateSpec.from_dict(smk.params.spec), _song(smk), smk.input.decoded, smk.output.npz),
    "segment_features": lambda smk: segment_features(
        SegmentSpec.from_dict(smk.params.spec), _song(smk), smk.input.decoded, smk.input.stems,
        smk.output.npz, smk.output.table),
    "generate_masks": lambda smk: generate_masks(
        MasksSpec.from_dict(smk.params.spec), _song(smk), smk.input.table, smk.output.npy),
    "predict_masks": lambda smk: run_predict(
        PredictSpec.from_dict(smk.params.spec), _song(smk), smk.input.segment, smk.input.masks,
        smk.output.npz),
    "fit_lime": lambda smk: run_fit(
        FitSpec.from_dict(smk.params.spec), _song(smk), smk.input.segment, smk.input.table,
        smk.input.masks, smk.input.predict, smk.output.record),
    "evaluate_explanations": lambda smk: evaluate_explanations(
        EvaluateSpec.from_dict(smk.params.spec), _song(smk), smk.input.segment,
        smk.input.fit_record, smk.output.record),
    "aggregate_global": lambda smk: aggregate_global(
        AggregateSpec.from_dict(smk.params.spec), smk.wildcards.key, list(smk.input),
        smk.output.summary, smk.output.plots, smk.output.songs),
    "freeze_config": lambda smk: freeze_config(
        PointSpec.from_dict(smk.params.point), smk.output.yaml),
    "track_mlflow": lambda smk: track_mlflow(
        PointSpec.from_dict(smk.params.point), Plan.from_dict(smk.config), smk.input.config,
        smk.output.json),
}


def run_rule(smk) -> None:
    """Run the job ``smk`` (Snakemake's ``snakemake`` object) of one rule."""
    RULES[smk.rule](smk)


#: rules whose jobs run torch: one thread per job, so parallel jobs do not oversubscribe
TORCH_RULES = ("separate_stems", "predict_masks", "evaluate_explanations")


def job(smk):
    """Run one Snakemake job (:func:`musiclime.supervise.logged_job`): log to the rule's log
    file, in a forked child whose death by a signal the parent reports in one line; torch on
    the job's threads, so parallel jobs do not oversubscribe."""

    def torch_threads() -> None:
        import torch

        torch.set_num_threads(max(1, int(smk.threads)))

    return supervise.logged_job(smk.log[0] if smk.log else None,
                                f"{smk.rule} failed for {dict(smk.wildcards)}",
                                torch_threads if smk.rule in TORCH_RULES else None)
