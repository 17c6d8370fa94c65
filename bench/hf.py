"""Hugging Face fusion model (AST + RoBERTa + head): samples/s and musiclime's overhead.

    python bench/hf.py                       # CPU, "mid" size, 30 s clip (a few minutes)
    python bench/hf.py --size paper --device cuda --samples 1000   # the paper's sizes on a GPU
    python bench/run.py --cases hf           # the same, from the main benchmark

The model is built from configs with random weights (``musiclime_demo.hf_models``: the compute
of the real architecture, meaningless outputs), saved, and loaded through
``HFFusionClassifier.load`` as a downloaded model would be. Sizes: ``tiny`` (2 layers, 32 wide),
``mid`` (AST 6 layers x 384, RoBERTa 6 x 512), ``paper`` (AST-base 12 x 768 and RoBERTa-large
24 x 1024, as in the MusicLIME paper). The clip is synthetic (4 stems, 12 lyric lines),
``--seconds`` long at 16 kHz: a 30 s clip is 3 AST windows per perturbed song.

Two things are timed, interleaved A B A B ... ``--repeats`` times (shared machines are noisy;
the minimum and the median are reported):

- **A, musiclime**: ``predict_masks`` for ``--samples`` masks (``modality=both``): composing
  every perturbed song on the device, encoding, the head.
- **B, the classifier alone**: ``predict_proba`` on the same perturbed songs, composed
  beforehand (not timed), in the same batches.

overhead = A / B (goal <= 1.05). With CUDA, the GPU's utilisation is sampled every 50 ms during
A (NVML). ``--mixed-precision`` adds a run under autocast (``explainer.mixed_precision``: fp16 on
CUDA, bf16 on the CPU) for both A and B.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (ROOT / "src", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

SIZES = {  # AST and RoBERTa sizes beyond musiclime_demo.hf_models' tiny and paper
    "mid": ({"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 6,
             "intermediate_size": 1536},
            {"hidden_size": 512, "num_hidden_layers": 6, "num_attention_heads": 8,
             "intermediate_size": 2048, "vocab_size": 50265}),
}


def build_model(folder: Path, size: str, device: str, batch_size: int):
    import torch

    from musiclime.models.head import FusionHead, HeadConfig, save_head
    from musiclime.models.hf import HFFusionClassifier
    from musiclime_demo import hf_models

    if size in SIZES:
        hf_models.AST_SIZES[size], hf_models.ROBERTA_SIZES[size] = SIZES[size]
    lyrics = [f"line number {i} of the song, robot {i % 3}" for i in range(200)]
    ast = hf_models.build_ast(folder / "ast", size)
    rob = hf_models.build_roberta(folder / "roberta", lyrics, size)
    probe = HFFusionClassifier.load(str(ast), str(rob), device="cpu")
    torch.manual_seed(0)
    save_head(FusionHead(HeadConfig(probe.audio_dim, probe.text_dim, ["ai", "human"])),
              folder / "head")
    del probe
    return HFFusionClassifier.load(str(ast), str(rob), head=str(folder / "head"),
                                   device=device, batch_size=batch_size)


class GpuSampler:
    """Mean GPU utilisation (%) over a stretch of time, from NVML every ``period`` s."""

    def __init__(self, period: float = 0.05):
        self.period, self.samples, self._stop = period, [], threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVML: no utilisation figure
            self._nvml = None

    def __enter__(self):
        if self._nvml is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            time.sleep(self.period)

    def __exit__(self, *exc):
        self._stop.set()
        if self._nvml is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def synthetic_song(seconds: float, rate: int = 16000):
    from inputs import synthetic_clip  # bench/inputs.py

    from musiclime import ExplainerConfig, factorize

    clip = synthetic_clip(seconds, rate)
    return factorize(clip["mix"], clip["stems"], rate, clip["lyrics"], ExplainerConfig(),
                     song_id="clip")


def run(size: str = "mid", device: str = "auto", samples: int = 200, seconds: float = 30.0,
        repeats: int = 3, batch_size: int = 0, model_batch: int = 0,
        mixed_precision: bool = False, cpu_extractor: bool = False, log=print) -> dict:
    import torch

    from musiclime import ExplainerConfig
    from musiclime.core.composition import WaveformComposer
    from musiclime.core.explainer import make_masks
    from musiclime.core.inference import auto_batch_size, predict_masks
    from musiclime.models.demo_classifier import resolve_device
    from musiclime.models.hf import window_starts

    dev = resolve_device(device)
    model_batch = model_batch or (64 if dev.type == "cuda" else 8)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        clf = build_model(Path(tmp), size, str(dev), model_batch)
        if cpu_extractor:  # the feature extractor's own per-clip CPU fbanks, for comparison
            clf.frontend.batched_ast = False
        build_s = time.perf_counter() - t0
    song = synthetic_song(seconds)
    cfg = ExplainerConfig(num_samples=samples, modality="both", seed=0)
    masks, layout = make_masks(song.feature_table, cfg)
    composer = WaveformComposer(song.audio, device=dev)
    batch = batch_size or auto_batch_size(composer.n_samples, dev)
    pre = precompose(song, composer, masks, layout, batch)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def musiclime_once(amp: bool):
        sync()
        t = time.perf_counter()
        with GpuSampler() as gpu:
            preds = predict_masks(clf, composer, song.lyrics, masks, layout, batch_size=batch,
                                  progress=False, mixed_precision=amp)
            sync()
        return time.perf_counter() - t, gpu.mean, preds

    def alone_once(amp: bool):
        sync()
        t = time.perf_counter()
        # the dtype predict_masks autocasts to
        ctx = torch.autocast(dev.type, dtype=torch.float16 if dev.type == "cuda"
                             else torch.bfloat16) if amp else _null()
        with ctx, torch.inference_mode():
            for texts, wav in pre:
                clf.predict_proba(texts, wav)
        sync()
        return time.perf_counter() - t

    windows = len(window_starts(int(round(seconds * 16000)), clf.frontend.window))
    out = {"size": size, "device": str(dev), "gpu": torch.cuda.get_device_name(0)
           if dev.type == "cuda" else None, "samples": int(masks.shape[0]),
           "seconds": seconds, "windows_per_song": windows, "batch": batch,
           "model_batch": model_batch, "cpu_extractor": cpu_extractor, "build_s": build_s,
           "runs": {}}
    for amp in ([False, True] if mixed_precision else [False]):
        musiclime_once(amp)  # warm-up (kernels, allocator, tokenizer caches)
        alone_once(amp)
        a, b, util = [], [], []
        for r in range(repeats):
            ta, u, preds = musiclime_once(amp)
            tb = alone_once(amp)
            a.append(ta)
            b.append(tb)
            util.append(u)
            log(f"  [{'amp' if amp else 'fp32'}] repeat {r + 1}: musiclime {ta:.2f} s, "
                f"classifier alone {tb:.2f} s, ratio {ta / tb:.3f}"
                + (f", GPU {u:.0f}%" if u is not None else ""))
        out["runs"]["amp" if amp else "fp32"] = {
            **speed_summary(a, b, int(masks.shape[0])),
            "gpu_util_mean": [x for x in util if x is not None] or None,
            "timings": preds.timings}
    return out


def precompose(song, composer, masks, layout, batch: int) -> list:
    """The classifier-alone side's inputs: every perturbed song composed once, beforehand
    (``(texts, waveforms)`` per batch), so its timing is the classifier's alone."""
    audio_masks, lyric_masks = layout.split(masks)
    pre = []
    for i in range(0, masks.shape[0], batch):
        am = audio_masks[i:i + batch] if audio_masks is not None else None
        wav = composer.compose(am).clone() if am is not None else composer.original(
            min(batch, masks.shape[0] - i)).clone()
        texts = [song.lyrics.compose(row) for row in lyric_masks[i:i + batch]] if (
            lyric_masks is not None) else [song.lyrics.full_text()] * wav.shape[0]
        pre.append((texts, wav))
    return pre


def speed_summary(musiclime_s: list[float], alone_s: list[float], samples: int) -> dict:
    """Samples per second and musiclime's overhead over the classifier alone, per repeat."""
    ratios = [x / y for x, y in zip(musiclime_s, alone_s, strict=True)]
    return {"musiclime_s": musiclime_s, "alone_s": alone_s, "ratio_min": min(ratios),
            "ratio_median": statistics.median(ratios),
            "samples_per_s_max": samples / min(musiclime_s),
            "samples_per_s_median": samples / statistics.median(musiclime_s)}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="mid", choices=["tiny", "mid", "paper"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="perturbed songs per batch (0: auto)")
    ap.add_argument("--model-batch", type=int, default=0,
                    help="windows/texts per forward pass (0: 64 on a GPU, 8 on a CPU)")
    ap.add_argument("--mixed-precision", action="store_true")
    ap.add_argument("--cpu-extractor", action="store_true", help="AST features by the "
                    "extractor itself (per clip, CPU) instead of musiclime's batched ast_fbank")
    ap.add_argument("--out", default=str(HERE / "results" / "hf.json"))
    args = ap.parse_args(argv)
    res = run(args.size, args.device, args.samples, args.seconds, args.repeats, args.batch,
              args.model_batch, args.mixed_precision, args.cpu_extractor)
    print(report(res))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


def report(res: dict) -> str:
    lines = [f"hf_fusion ({res['size']}) on {res['gpu'] or res['device']}: {res['samples']} "
             f"masks of a {res['seconds']:.0f} s clip ({res['windows_per_song']} AST windows "
             f"each), batch {res['batch']}, model batch {res['model_batch']}"
             + (", AST features by the extractor (CPU)" if res.get("cpu_extractor") else "")]
    for name, r in res["runs"].items():
        util = r["gpu_util_mean"]
        lines.append(
            f"  {name}: {r['samples_per_s_max']:.1f} samples/s (median "
            f"{r['samples_per_s_median']:.1f}); overhead musiclime / classifier alone: min "
            f"{r['ratio_min']:.3f}, median {r['ratio_median']:.3f}"
            + (f"; GPU utilisation {statistics.median(util):.0f}% (median of repeats)"
               if util else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
