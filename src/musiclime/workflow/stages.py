"""What each Snakemake rule does: one function per stage, called by workflow/scripts/stage.py.

Every function reads its inputs, writes its outputs atomically, and records its own wall time
in its output so timings reach MLflow.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ..audio import load_audio, resample
from ..factorization import AudioFactorization
from ..features import FeatureTable
from ..fileio import atomic_path, read_json, write_json, write_npy, write_npz
from ..lyrics import make_lyrics_units
from ..masks import MaskLayout, sample_masks
from ..separation import fit_length

# torch, lime and scikit-learn are imported inside the stages that need them: most jobs are
# light, and each Snakemake job is a fresh process.

log = logging.getLogger(__name__)


def _instantiate(node: dict):
    from hydra.utils import instantiate

    params = {k: v for k, v in node.items() if k != "name"}
    return instantiate(params, _convert_="all")


def decode(song: dict, song_id: str, sample_rate: int, out: str) -> None:
    t0 = time.perf_counter()
    mix, rate = load_audio(song["audio"], sample_rate)
    text = Path(song["lyrics"]).read_text(encoding="utf-8") if song.get("lyrics") else ""
    write_npz(out, mix=mix, sample_rate=np.int64(rate), lyrics=np.array(text),
              seconds=np.float64(time.perf_counter() - t0))
    log.info("%s: decoded %.1fs at %d Hz", song_id, len(mix) / rate, rate)


def separate(song: dict, song_id: str, spec: dict, decoded: str, out: str) -> None:
    t0 = time.perf_counter()
    d = np.load(decoded)
    mix, rate = d["mix"], int(d["sample_rate"])
    separator = _instantiate(spec["separator"])
    if getattr(separator, "identity", None) == "oracle":
        if not song.get("stems_dir"):
            raise FileNotFoundError(f"separator=oracle: song {song_id} has no stems_dir in the "
                                    "dataset manifest")
        stems = separator.separate(mix, rate, stems_dir=song["stems_dir"])
    else:
        stems = separator.separate(mix, rate)
    names = list(stems)
    write_npz(out, stems=np.stack([stems[n] for n in names]).astype(np.float32),
              stem_names=np.array(names), sample_rate=np.int64(rate),
              seconds=np.float64(time.perf_counter() - t0))
    log.info("%s: separated into %s in %.1fs", song_id, names, time.perf_counter() - t0)


def segment(song_id: str, spec: dict, decoded: str, separated: str, out_npz: str,
            out_table: str) -> None:
    d = np.load(decoded)
    s = np.load(separated)
    mix, rate = d["mix"], int(d["sample_rate"])
    if rate != spec["sample_rate"]:
        raise ValueError(f"{decoded} is at {rate} Hz, the plan expects {spec['sample_rate']}")
    names = [str(n) for n in s["stem_names"]]
    stems = s["stems"]
    src_rate = int(s["sample_rate"])
    out_stems = {}
    for i, n in enumerate(names):
        out_stems[n] = fit_length(resample(stems[i], src_rate, rate), len(mix))
    fac = AudioFactorization.from_stems(mix, out_stems, rate, segments=spec["temporal_segments"],
                                        boundaries=spec["segment_boundaries"],
                                        residual=spec["residual"])
    lyrics = make_lyrics_units(str(d["lyrics"]), spec["lyrics_unit"])
    table = FeatureTable.build(fac, lyrics)
    write_npz(out_npz, mix=fac.mix, stems=fac.stems, stem_names=np.array(fac.stem_names),
              sample_rate=np.int64(rate), bounds=np.array(fac.bounds, dtype=np.int64),
              residual=np.array(fac.residual_mode), lyrics=d["lyrics"],
              lyrics_unit=np.array(spec["lyrics_unit"]),
              separate_seconds=s["seconds"])
    write_json(out_table, table.to_dict())


def load_segment(path: str):
    z = np.load(path)
    fac = AudioFactorization(mix=z["mix"], stems=z["stems"],
                             stem_names=tuple(str(n) for n in z["stem_names"]),
                             sample_rate=int(z["sample_rate"]),
                             bounds=[tuple(b) for b in z["bounds"]],
                             residual_mode=str(z["residual"]))
    lyrics = make_lyrics_units(str(z["lyrics"]), str(z["lyrics_unit"]))
    return fac, lyrics, float(z["separate_seconds"])


def masks(spec: dict, table_path: str, out: str) -> None:
    table = FeatureTable.from_dict(read_json(table_path))
    layout = MaskLayout(table.n_audio, table.n_lyrics, spec["modality"])
    m = sample_masks(layout.n_columns, int(spec["num_samples"]), int(spec["seed"]),
                     exhaustive=bool(spec["exhaustive"]))
    write_npy(out, m)


def predict(song_id: str, spec: dict, segment_path: str, table_path: str, masks_path: str,
            out: str) -> None:
    from ..classifier import classifier_device
    from ..composition import WaveformComposer
    from ..inference import predict_masks

    fac, lyrics, _ = load_segment(segment_path)
    table = FeatureTable.from_dict(read_json(table_path))
    layout = MaskLayout(table.n_audio, table.n_lyrics, spec["modality"])
    m = np.load(masks_path)
    clf = _instantiate(spec["model"])
    composer = WaveformComposer(fac, device=classifier_device(clf))
    preds = predict_masks(clf, composer, lyrics, m, layout, batch_size=spec["batch_size"],
                          progress=False, deduplicate=spec["deduplicate"],
                          mixed_precision=spec.get("mixed_precision", False))
    write_npz(out, probs=preds.probs, class_names=np.array(preds.class_names),
              timings=np.array(json.dumps(preds.timings)), device=np.array(preds.device),
              batch_size=np.int64(preds.batch_size), unique_rows=np.int64(preds.unique_rows))


def fit(song_id: str, song: dict, spec: dict, segment_path: str, table_path: str,
        masks_path: str, predict_path: str, outputs: dict) -> None:
    fit_batch(song_id, song, [spec], segment_path, table_path, masks_path, predict_path,
              [outputs])


def fit_batch(song_id: str, song: dict, specs: list[dict], segment_path: str, table_path: str,
              masks_path: str, predict_path: str, outputs: list[dict]) -> None:
    """Fit one explanation per spec from one prediction run (each on its num_samples prefix).

    ``outputs[i]`` holds the ``json``, ``heatmap``, ``lyrics`` and ``listen`` paths of
    ``specs[i]``. The inputs are read once; each explanation is exactly what a lone fit of its
    spec writes.
    """
    from ..explainer import ExplainerConfig, fit_explanation
    from ..listen import save_listenable
    from ..plots import plot_audio_heatmap, plot_lyrics_bars

    table = FeatureTable.from_dict(read_json(table_path))
    m = np.load(masks_path)
    p = np.load(predict_path)
    probs = p["probs"]
    class_names = [str(c) for c in p["class_names"]]
    pred_timings = json.loads(str(p["timings"]))
    fac, _, sep_s = load_segment(segment_path)
    info = {k: song.get(k) for k in ("label", "split", "audio", "lyrics", "evidence") if song.get(k)}
    for spec, out in zip(specs, outputs, strict=True):
        config = ExplainerConfig(**spec["explainer"])
        layout = MaskLayout(table.n_audio, table.n_lyrics, config.modality)
        timings = dict(pred_timings, separate_s=sep_s)
        exp = fit_explanation(song_id, table, layout, m, probs, class_names, config,
                              timings=timings, song_info=info, num_samples=config.num_samples)
        exp.params["device"] = str(p["device"])
        plot_audio_heatmap(exp, out["heatmap"])
        plot_lyrics_bars(exp, out["lyrics"])
        save_listenable(exp, fac, out["listen"], k=config.listen_top_k)
        exp.save_json(out["json"], num_features=config.num_features)


def evaluate(song_id: str, song: dict, spec: dict, explanation_path: str, segment_path: str,
             out: str) -> None:
    """Quality metrics of one explanation (re-predicts perturbations with the classifier)."""
    evaluate_batch(song_id, song, [spec], [explanation_path], segment_path, [out])


def evaluate_batch(song_id: str, song: dict, specs: list[dict], explanation_paths: list[str],
                   segment_path: str, outs: list[str]) -> None:
    """Quality metrics of several explanations of one song that share a prediction run.

    One classifier and one :class:`~musiclime.metrics.predictor.MaskPredictor` serve every
    member, so a mask that several members need is predicted once. ``metrics_classifier_rows``
    of a member counts the rows it added; ``metrics_batch_rows`` is the batch's total.
    """
    from ..explainer import ExplainerConfig, Song
    from ..explanation import Explanation
    from ..metrics import MaskPredictor, MetricSettings, evaluate_explanation
    from ..metrics.evaluate import check_song

    t0 = time.perf_counter()
    fac, lyrics, _ = load_segment(segment_path)
    clf = _instantiate(specs[0]["model"])
    evidence = song.get("evidence") or None
    target = Song(song_id, fac, lyrics)
    predictor = None
    results = []
    for spec, path in zip(specs, explanation_paths, strict=True):
        t1 = time.perf_counter()
        exp = Explanation.load(path)
        config = ExplainerConfig(**spec["explainer"])
        if predictor is None:
            check_song(exp, target)
            predictor = MaskPredictor(target, clf, exp.modality, batch_size=config.batch_size,
                                      deduplicate=config.deduplicate,
                                      class_names=exp.class_names)
        elif exp.modality != predictor.layout.modality:
            raise ValueError(f"{path}: modality {exp.modality!r} differs from the batch's "
                             f"{predictor.layout.modality!r}")
        metrics = evaluate_explanation(exp, target, clf, config, evidence=evidence,
                                       settings=MetricSettings(**spec["metrics"]),
                                       predictor=predictor)
        metrics["time_evaluate_s"] = time.perf_counter() - t1
        results.append(metrics)
    for metrics, out in zip(results, outs, strict=True):
        metrics["metrics_batch_rows"] = float(predictor.rows_predicted)
        metrics["metrics_batch_members"] = float(len(specs))
        metrics["metrics_batch_s"] = time.perf_counter() - t0
        write_json(out, metrics)


def freeze_config(point: dict, out: str) -> None:
    from omegaconf import OmegaConf

    cfg = {k: v for k, v in point["config"].items() if not k.startswith("_")}
    with atomic_path(out, ".yaml") as tmp:
        tmp.write_text(f"# point overrides: {' '.join(point['overrides']) or '(defaults)'}\n"
                       + OmegaConf.to_yaml(OmegaConf.create(cfg)))


def aggregate(explanation_paths: list[str], summary_path: str, plots_dir: str) -> None:
    from ..aggregate import aggregate_dir

    out_dir = Path(summary_path).parent
    summary = aggregate_dir(explanation_paths, out_dir, plots_dir=plots_dir)
    write_json(summary_path, summary)


def track(spec: dict, plan: dict, summary_path: str, config_path: str, out: str) -> None:
    from .tracking import log_point

    root = Path(plan["results_root"])
    eval_dir = root / "evaluate" / spec["evaluate"] if spec.get("evaluate") else None
    run_id = log_point(plan, spec["point"], root / "fit" / spec["fit"],
                       Path(summary_path).parent, config_path, eval_dir)
    write_json(out, {"run_id": run_id, "point": spec["point"],
                     "parent_run_id": spec["tracking"].get("parent_run_id")})


def run_snakemake_job(smk) -> None:
    """Entry point of workflow/scripts/stage.py: log to the rule's log, dispatch on the rule."""
    import contextlib
    import sys

    log_path = smk.log[0] if smk.log else None
    stream = open(log_path, "w") if log_path else sys.stderr  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    song = getattr(smk.wildcards, "song", None)
    if smk.rule in ("separate_stems", "predict_masks", "evaluate_explanation") or \
            smk.rule.startswith("evaluate_batch_"):
        import torch

        torch.set_num_threads(max(1, int(smk.threads)))  # no oversubscription across jobs
    try:
        with contextlib.redirect_stderr(stream):
            _dispatch(smk, song)
    except Exception:
        logging.getLogger(__name__).exception("%s failed for %s", smk.rule,
                                              song or dict(smk.wildcards))
        raise
    finally:
        root.removeHandler(handler)
        if stream is not sys.stderr:
            stream.close()


def _dispatch(smk, song: str | None) -> None:
    rule, i, o, p = smk.rule, smk.input, smk.output, smk.params
    if rule == "decode_audio":
        decode(p.song, song, p.spec["sample_rate"], o.npz)
    elif rule == "separate_stems":
        separate(p.song, song, p.spec, i.decoded, o.npz)
    elif rule == "segment_features":
        segment(song, p.spec, i.decoded, i.separated, o.npz, o.table)
    elif rule == "generate_masks":
        masks(p.spec, i.table, o.npy)
    elif rule == "predict_masks":
        predict(song, p.spec, i.segment, i.table, i.masks, o.npz)
    elif rule == "fit_lime":
        fit(song, p.song, p.spec, i.segment, i.table, i.masks, i.predict,
            {"json": o.json, "heatmap": o.heatmap, "lyrics": o.lyrics, "listen": o.listen})
    elif rule == "evaluate_explanation":
        evaluate(song, p.song, p.spec, i.explanation, i.segment, o.json)
    elif rule.startswith("fit_batch_"):
        n = len(p.spec)
        fit_batch(song, p.song, p.spec, i.segment, i.table, i.masks, i.predict,
                  [{name: o[f"{name}_{j}"] for name in ("json", "heatmap", "lyrics", "listen")}
                   for j in range(n)])
    elif rule.startswith("evaluate_batch_"):
        n = len(p.spec)
        evaluate_batch(song, p.song, p.spec, [i[f"explanation_{j}"] for j in range(n)],
                       i.segment, [o[f"json_{j}"] for j in range(n)])
    elif rule == "aggregate_global":
        aggregate(list(i), o.summary, o.plots)
    elif rule == "freeze_config":
        freeze_config(p.point, o.yaml)
    elif rule == "track_mlflow":
        track(p.spec, smk.config, i.summary, i.config, o.json)
    else:
        raise ValueError(f"no stage function for rule {rule}")
