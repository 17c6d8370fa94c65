"""What each Snakemake rule does: one function per rule, named as the rule (but for
``predict_masks`` -> :func:`run_predict` and ``fit_lime`` -> :func:`run_fit`, whose rule names
the library's :func:`~musiclime.core.inference.predict_masks` and ridge fit also had).

Each rule runs ``workflow/scripts/<rule>.py``, which parses the rule's typed spec and calls its
function here. These functions only read and write the stage files
(:mod:`.files`); the work is done by the same library functions that ``musiclime explain``
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

import contextlib
import logging
import sys
import time
from pathlib import Path

from .. import supervise
from ..core.lyrics import read_lyrics
from ..errors import ERROR_PREFIX, one_line
from ..io import layout
from ..io.audio import load_audio
from ..io.dataset import SongRecord
from ..io.fileio import atomic_path, write_json
from .files import (
    Decoded,
    JobRecord,
    Stems,
    load_decoded,
    load_factorized,
    load_feature_table,
    load_masks,
    load_predictions,
    load_record,
    load_stems,
    save_decoded,
    save_factorized,
    save_masks,
    save_predictions,
    save_record,
    save_stems,
)
from .specs import (
    AggregateSpec,
    DecodeSpec,
    EvaluateSpec,
    FitSpec,
    MasksSpec,
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
    save_decoded(out, Decoded(mix, rate, text, time.perf_counter() - t0, found))
    log.info("%s: decoded %.1fs at %d Hz", song.song_id, len(mix) / rate, rate)


def separate_stems(spec: SeparateSpec, song: SongRecord, decoded: str, out: str) -> None:
    from ..core.explainer import separate

    t0 = time.perf_counter()
    d = load_decoded(decoded)
    stems = separate(instantiate(spec.separator), d.mix, d.sample_rate, song.stems_dir)
    save_stems(out, Stems(stems, d.sample_rate, time.perf_counter() - t0))
    log.info("%s: separated into %s in %.1fs", song.song_id, list(stems),
             time.perf_counter() - t0)


def segment_features(spec: SegmentSpec, song: SongRecord, decoded: str, stems: str,
                     out_npz: str, out_table: str) -> None:
    from ..core.explainer import factorize

    d = load_decoded(decoded)
    s = load_stems(stems)
    factorized = factorize(d.mix, s.stems, d.sample_rate, d.lyrics, spec.params,
                           song_id=song.song_id, stems_rate=s.sample_rate)
    save_factorized(out_npz, out_table, factorized, s.seconds, d.warnings)


def generate_masks(spec: MasksSpec, song: SongRecord, table: str, out: str) -> None:
    from ..core.explainer import make_masks

    where = f"song {song.song_id}" + (f" (lyrics {song.lyrics})" if song.lyrics else "")
    masks, _ = make_masks(load_feature_table(table), spec.params, where=where)
    save_masks(out, masks)


def run_predict(spec: PredictSpec, song: SongRecord, segment: str, masks: str,
                out: str) -> None:
    from ..core.explainer import predict_adaptive, predict_song
    from ..core.masks import MaskLayout

    factorized, _ = load_factorized(segment, song.song_id)
    table = factorized.feature_table
    layout_ = MaskLayout(table.n_audio, table.n_lyrics, spec.modality)
    classifier = instantiate(spec.model)
    rows = load_masks(masks)
    if spec.auto is not None:
        # num_samples=auto: block by block until the point's surrogate is stable
        preds, auto = predict_adaptive(classifier, factorized, rows[: spec.auto.draw.max_samples],
                                       layout_, spec.params, spec.auto)
        save_predictions(out, preds, auto)
        return
    preds = predict_song(classifier, factorized, rows, layout_, spec.params, progress=False)
    save_predictions(out, preds)


def run_fit(spec: FitSpec, song: SongRecord, segment: str, table: str, masks: str,
            predict: str, out: str) -> None:
    """Fit every member configuration on its num_samples prefix of one prediction run and
    write its explanation files; the record lists them."""
    from ..core.explainer import audio_warnings, fit_explanation
    from ..core.masks import MaskLayout
    from ..core.params import settings_record
    from ..report.explanation_files import write_explanation_files

    features = load_feature_table(table)
    m = load_masks(masks)
    preds, auto = load_predictions(predict, with_auto=True)
    factorized, sep_s = load_factorized(segment, song.song_id, song.info())
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
                              preds.class_names, fit,
                              settings=settings_record(spec.segmentation, spec.prediction, fit),
                              timings=dict(preds.timings, separate_s=sep_s),
                              song_info=song.info(), warnings=warnings,
                              auto=auto if fit.is_auto else None)
        exp.params["device"] = preds.device
        fitted.append((member, exp))
    # one colour scale for every configuration of this song (a kernel-width or num_samples
    # sweep), so their heatmaps compare by eye
    vmax = None
    if spec.shared_scale and len(fitted) > 1:
        vmax = max((abs(w) for _, exp in fitted for w in exp.weights().values()), default=0.0)
        vmax = vmax or None
    record = JobRecord(song=song.song_id)
    for member, exp in fitted:
        files = write_explanation_files(exp, factorized, layout.explanation_dir(member.key,
                                                                            song.song_id),
                                        member.params.listen_top_k,
                                        member.params.num_features, vmax=vmax)
        record.files[member.key] = str(files.json)
    save_record(out, record)


def evaluate_explanations(spec: EvaluateSpec, song: SongRecord, segment: str, fit_record: str,
                          out: str) -> None:
    """Quality metrics of every member explanation; one classifier and one
    :class:`~musiclime.metrics.predictor.MaskPredictor` serve them all, so a mask several
    members need is predicted once. ``metrics_classifier_rows`` of a member counts the rows it
    added; ``metrics_batch_rows`` is the job's total."""
    from ..core.explanation import Explanation
    from ..metrics import MaskPredictor, evaluate_explanation
    from ..metrics.evaluate import check_song

    t0 = time.perf_counter()
    factorized, _ = load_factorized(segment, song.song_id)
    explanations = load_record(fit_record).files
    clf = instantiate(spec.model)
    predictor = None
    results = []
    for member in spec.members:
        t1 = time.perf_counter()
        exp = Explanation.load(explanations[member.fit])
        if predictor is None:
            check_song(exp, factorized)
            predictor = MaskPredictor(factorized, clf, exp.modality,
                                      batch_size=member.explainer.batch_size,
                                      deduplicate=member.explainer.deduplicate,
                                      class_names=exp.class_names)
        metrics = evaluate_explanation(exp, factorized, clf, member.explainer,
                                       evidence=song.evidence, settings=spec.metrics,
                                       predictor=predictor)
        metrics["time_evaluate_s"] = time.perf_counter() - t1
        results.append(metrics)
    record = JobRecord(song=song.song_id)
    for member, metrics in zip(spec.members, results, strict=True):
        metrics["metrics_batch_rows"] = float(predictor.rows_predicted)
        metrics["metrics_batch_members"] = float(len(spec.members))
        metrics["metrics_batch_s"] = time.perf_counter() - t0
        path = layout.metrics(member.key, song.song_id)
        write_json(path, metrics)
        if spec.metrics.sanity:  # the cascade's figure, next to the metrics JSON
            from ..metrics.sanity import randomisable_layers, sanity_plot_path
            from ..report.sanity_figure import plot_sanity_cascade

            names = [layer.name for layer in randomisable_layers(clf)]
            plot_sanity_cascade(metrics, sanity_plot_path(path), layers=names,
                                title=f"{song.song_id}: sanity cascade")
        record.files[member.key] = path
    save_record(out, record)


def aggregate_global(spec: AggregateSpec, fit_key: str, fit_records: list[str], summary: str,
                     plots: str, songs_table: str) -> None:
    """Global per-class importances of one configuration, and a table of its songs."""
    import csv
    import io

    from ..core.explanation import Explanation
    from ..report.global_plots import write_global

    paths = [load_record(r).files[fit_key] for r in fit_records]
    write_json(summary, write_global(paths, Path(summary).parent, plots_dir=plots))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["song", "predicted", "p", "surrogate R2", "held-out R2",
                     "effective samples", "fit warnings", "top features"])
    for path in paths:
        exp = Explanation.load(path)
        label = exp.predicted_label
        top = "; ".join(name for name, _ in exp.top_features(label, k=3))
        writer.writerow([exp.song_id, exp.label_name(label), f"{exp.prediction[label]:.3f}",
                         f"{exp.fits[label].score:.3f}", exp.heldout_text(label),
                         f"{exp.kernel['effective_samples']:.0f}",
                         " ".join(dict.fromkeys(w.code for w in exp.fit_warnings)), top])
    with atomic_path(songs_table, ".csv") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


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


#: rules whose jobs run torch: one thread per job, so parallel jobs do not oversubscribe
TORCH_RULES = ("separate_stems", "predict_masks", "evaluate_explanations")


@contextlib.contextmanager
def job(smk):
    """Run one Snakemake job: log to the rule's log file (stderr too), limit torch's threads,
    and log the traceback of a failure there, ending with one ``musiclime: error:`` line.

    The job's body runs in a forked child (:mod:`musiclime.supervise`) and this process only
    waits for it: when the child dies by a signal (a native crash, the out-of-memory killer)
    this process appends the one line that says so (``killed by SIGSEGV in ...``, ``out of
    memory ...``) to the log and exits with the child's status, without running the body
    itself. So the run's summary names the signal instead of an empty log's "failed"."""
    log_path = smk.log[0] if smk.log else None
    child = False
    if supervise.can_supervise():
        pid = supervise.fork()
        if pid:
            outcome = supervise.wait(pid, log_path)
            if outcome.death:
                line = f"{ERROR_PREFIX} {outcome.death}"
                if log_path:
                    with open(log_path, "a") as fh:
                        fh.write(f"\n{line}\n")
                print(line, file=sys.stderr, flush=True)
            raise SystemExit(outcome.exit_code)  # the body ran in the child
        child = True
    stream = open(log_path, "w") if log_path else sys.stderr  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    code = 0
    try:
        with supervise.watch(stream, log_path):
            if smk.rule in TORCH_RULES:
                import torch

                torch.set_num_threads(max(1, int(smk.threads)))
            with contextlib.redirect_stderr(stream):
                yield smk
    except Exception as exc:
        code = 1
        log.exception("%s failed for %s", smk.rule, dict(smk.wildcards))
        print(f"{ERROR_PREFIX} {one_line(exc)}", file=stream, flush=True)
        if not child:
            raise
    finally:
        root.removeHandler(handler)
        if stream is not sys.stderr:
            stream.close()
    if child:
        supervise.exit_child(code)
