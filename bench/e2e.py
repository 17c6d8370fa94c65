"""A whole song end to end through ``musiclime explain`` (decode, separation, masks, prediction,
fit, page), with the paper-size model: seconds per stage and GPU utilisation.

    python bench/e2e.py --seconds 180 --samples 1000 --size paper   # on a GPU machine
    python bench/e2e.py --seconds 20 --samples 100 --size tiny       # a smoke run on a CPU

The song is synthetic (bench/run.py's noise-and-tone stems, a stereo 44.1 kHz WAV, 40 lyric
lines); the classifier is ``model=hf_fusion`` with random weights at the chosen size (bench/hf.py:
AST-base + RoBERTa-large for ``paper``), saved and loaded from folders as a downloaded model
would be; the separator is the shipped demo Open-Unmix model. The command runs ``--repeats``
times as a fresh process each (the first pays for cold caches); the wall time of each, the
stage timings the explanation records, and the GPU's mean and peak utilisation (NVML, every
50 ms, over the whole process) are printed and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (ROOT / "src", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def write_song(folder: Path, seconds: float, rate: int = 44100) -> tuple[Path, Path]:
    import soundfile as sf
    from inputs import synthetic_clip  # bench/inputs.py

    clip = synthetic_clip(seconds, rate, n_lines=40)
    mix = clip["mix"]
    stereo = np.stack([mix * 0.9, mix * 1.1], axis=1).astype(np.float32)
    audio = folder / "song.wav"
    with sf.SoundFile(audio, "w", rate, 2, subtype="PCM_16") as fh:
        for i in range(0, len(stereo), 1 << 16):
            fh.write(stereo[i:i + (1 << 16)])
    lyrics = folder / "song.txt"
    lyrics.write_text(clip["lyrics"] + "\n")
    return audio, lyrics


def explain_in_subprocesses(audio: Path, lyrics: Path, overrides: list[str], work: Path,
                            repeats: int, tag: str = "explain") -> list[dict] | int:
    """``musiclime explain`` ``repeats`` times, a fresh process each: wall time, the stage
    timings the explanation records, GPU utilisation; the exit status when one fails."""
    from hf import GpuSampler  # bench/hf.py

    runs = []
    for r in range(repeats):
        out = work / f"{tag}{r}"
        cmd = [sys.executable, "-m", "musiclime.cli", "explain", str(audio), "--lyrics",
               str(lyrics), "--out", str(out), "--quiet", *overrides]
        t = time.perf_counter()
        with GpuSampler() as gpu:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep
                                       + os.environ.get("PYTHONPATH", "")})
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return proc.returncode
        exp = json.loads((out / "explanation.json").read_text())
        timings = exp["metadata"]["timings"]
        page = out / "explanation.html"
        runs.append({"wall_s": wall, "gpu_util_mean": gpu.mean,
                     "gpu_util_max": max(gpu.samples) if gpu.samples else None,
                     "page_bytes": page.stat().st_size if page.is_file() else None,
                     "timings": timings, "device": exp["metadata"]["explanation_params"].get(
                         "device")})
        shown = {k: round(float(v), 2) for k, v in timings.items()
                 if isinstance(v, (int, float)) and (k.endswith("_s") or k.endswith("_rate"))}
        print(f"run {r + 1}: {wall:.1f} s wall, GPU mean "
              f"{gpu.mean if gpu.mean is None else round(gpu.mean)}%; stages {shown}",
              flush=True)
    return runs


def max_weight_difference(a: Path, b: Path) -> float:
    """The largest |weight| difference between two explanations of the same song."""
    wa, wb = ({label: np.array([w["weight"] for w in e["weights"]]) for label, e in json.loads(
        (d / "explanation.json").read_text())["explanations"].items()} for d in (a, b))
    return max(float(np.max(np.abs(wa[k] - wb[k]))) for k in wa)


def explain_in_process(audio: Path, lyrics: Path, overrides: list[str], work: Path,
                       repeats: int) -> dict:
    """The same song in one process, stage by stage (warm: the classifier is loaded once)."""
    from hf import GpuSampler  # bench/hf.py

    from musiclime.config import (
        build_classifier,
        build_separator,
        compose_config,
        explainer_config,
    )
    from musiclime.core.explainer import MusicLIME
    from musiclime.report.explanation_files import load_song, write_explanation_files

    cfg = compose_config(overrides)
    econf = explainer_config(cfg)
    t = time.perf_counter()
    classifier, separator = build_classifier(cfg), build_separator(cfg)
    stages = {"load_models_s": time.perf_counter() - t, "runs": []}
    for r in range(repeats):
        row = {}
        with GpuSampler() as gpu:
            t = time.perf_counter()
            song = load_song(audio, lyrics, separator, classifier.sample_rate, econf)
            row["decode_separate_segment_s"] = time.perf_counter() - t
            t = time.perf_counter()
            exp = MusicLIME(classifier, econf, progress=False).explain(song)
            row["masks_predict_fit_s"] = time.perf_counter() - t
            t = time.perf_counter()
            write_explanation_files(exp, song, work / f"inproc{r}", econf.listen_top_k,
                                    econf.num_features)
            row["page_and_files_s"] = time.perf_counter() - t
        row["total_s"] = sum(row.values())
        row["predict_total_s"] = exp.timings.get("predict_total_s")
        row["window_cache_hit_rate"] = exp.timings.get("window_cache_hit_rate")
        row["gpu_util_mean"], row["gpu_util_max"] = gpu.mean, (max(gpu.samples)
                                                               if gpu.samples else None)
        stages["runs"].append(row)
        print(f"in process {r + 1}: " + ", ".join(
            f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    return stages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="paper", choices=["tiny", "mid", "paper"])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--overrides", nargs="*", default=[], help="more Hydra overrides")
    ap.add_argument("--out", default=str(HERE / "results" / "e2e.json"))
    ap.add_argument("--compare-without-cache", action="store_true",
                    help="one more explain with model.window_cache=false: its wall time and the "
                    "largest weight difference")
    args = ap.parse_args(argv)

    from hf import build_model  # bench/hf.py

    work = Path(tempfile.mkdtemp(prefix="musiclime-e2e-"))
    t0 = time.perf_counter()
    clf = build_model(work / "model", args.size, "cpu", 8)
    del clf
    build_s = time.perf_counter() - t0
    audio, lyrics = write_song(work, args.seconds)
    overrides = ["model=hf_fusion", f"model.audio_encoder={work / 'model' / 'ast'}",
                 f"model.text_encoder={work / 'model' / 'roberta'}",
                 f"model.head={work / 'model' / 'head'}", "model.batch_size=64",
                 f"explainer.num_samples={args.samples}",
                 f"explainer.mixed_precision={str(args.mixed_precision).lower()}",
                 *args.overrides]
    runs = explain_in_subprocesses(audio, lyrics, overrides, work, args.repeats)
    if isinstance(runs, int):
        return runs
    stages = explain_in_process(audio, lyrics, overrides, work, args.repeats)
    if args.compare_without_cache:
        plain = explain_in_subprocesses(audio, lyrics, [*overrides, "model.window_cache=false"],
                                        work, 1, tag="nocache")
        if isinstance(plain, int):
            return plain
        dw = max_weight_difference(work / "explain0", work / "nocache0")
        print(f"without the window cache: {plain[0]['wall_s']:.1f} s wall; "
              f"max |dw| against the cached run {dw:.2e}", flush=True)
        stages["without_cache"] = {**plain[0], "max_abs_dw": dw}
    result = {"size": args.size, "in_process": stages, "seconds": args.seconds, "samples": args.samples,
              "mixed_precision": args.mixed_precision, "build_model_s": build_s,
              "overrides": overrides, "runs": runs}
    try:
        import torch

        result["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        result["gpu"] = None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
