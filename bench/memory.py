"""Peak memory of one explanation vs num_samples (30 s at 44.1 kHz, `both` modality), and of
one long song from the file to the explanation.

Each point runs in a fresh process (peak RSS is per process), on the same synthetic stems and
lyrics, with a light energy-based classifier so the explainer's own memory is what is measured.
Prints a table and the ratio of the largest to the smallest peak; writes bench/results/memory.json.

    python bench/memory.py [--samples 500 2000 5000] [--seconds 30] [--rate 44100]

``--long-song`` instead writes a synthetic 10-minute stereo 44.1 kHz WAV (16-bit, into a
temporary folder, deleted afterwards) and, in a fresh process, runs the whole song path:
``load_song`` (decode, separation by the shipped demo Open-Unmix model on the CPU,
factorization) and ``MusicLIME.explain`` with the demo classifier and num_samples=64. It prints
the peak RSS after each stage against the goal (2.5 GB) and writes
bench/results/memory-long-song.json.

    python bench/memory.py --long-song [--long-seconds 600] [--long-samples 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class EnergyClassifier:
    """P(class 0) = sigmoid of the log energy ratio of the first to the second half."""

    class_names = ["first", "second"]

    def __init__(self, sample_rate):
        self.sample_rate = sample_rate

    def predict_proba(self, lyrics, audio):
        import numpy as np
        import torch

        half = audio.shape[1] // 2
        e1 = audio[:, :half].pow(2).mean(1) + 1e-8
        e2 = audio[:, half:].pow(2).mean(1) + 1e-8
        p = torch.sigmoid(torch.log(e1 / e2)).double().cpu().numpy()
        n_words = np.array([len(t.split()) for t in lyrics]) / 100.0
        p = np.clip(p * 0.9 + 0.1 * np.tanh(n_words), 0, 1)
        return np.stack([p, 1 - p], axis=1)


def child(num_samples: int, seconds: float, rate: int) -> dict:
    import numpy as np

    from musiclime import ExplainerConfig, MusicLIME, factorize

    n = int(seconds * rate)
    rng = np.random.default_rng(0)
    stems = {s: (0.1 * rng.standard_normal(n)).astype(np.float32)
             for s in ("vocals", "drums", "bass", "other")}
    mix = sum(stems.values()).astype(np.float32)
    lyrics = "\n".join(f"line number {i} of the song" for i in range(12))
    cfg = ExplainerConfig(num_samples=num_samples)
    song = factorize(mix, stems, rate, lyrics, cfg)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    exp = MusicLIME(EnergyClassifier(rate), cfg, progress=False).explain(song)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"num_samples": num_samples, "seconds": seconds, "rate": rate,
            "peak_rss_mb": peak, "rss_before_explain_mb": rss_before, "wall_s": wall,
            "batch_size": None, "r2": exp.fits[exp.predicted_label].score}


#: Peak RSS goal of the long-song case (bytes): a 10-minute song must fit a small machine.
LONG_SONG_GOAL_BYTES = 2.5e9


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_long_song(folder: Path, seconds: float, rate: int = 44100) -> tuple[Path, Path]:
    """A stereo 16-bit WAV of ``seconds`` (tones, a pulsed noise beat, different per channel)
    and a lyrics file, written 10 s at a time so the writer stays small."""
    import numpy as np

    from musiclime.io.audio import encode_audio

    audio, lyrics = folder / "long.wav", folder / "long.txt"
    rng = np.random.default_rng(0)
    n, block = int(seconds * rate), 10 * rate

    def blocks():
        for lo in range(0, n, block):
            t = np.arange(lo, min(n, lo + block)) / rate
            beat = (np.sin(2 * np.pi * 2 * t) > 0.9) * rng.standard_normal(t.size)
            left = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
            right = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 440 * t)
            yield np.stack([left + 0.05 * beat, right + 0.05 * beat], 1).astype(np.float32)

    encode_audio(audio, blocks(), rate, "WAV", "PCM_16")
    lyrics.write_text("\n".join(f"line {i} of a very long song" for i in range(40)) + "\n",
                      encoding="utf-8")
    return audio, lyrics


def long_song_child(audio: str, lyrics: str, num_samples: int) -> dict:
    """The library's song path on one file; peak RSS after each stage (cumulative peaks)."""
    import torch

    from musiclime import ExplainerConfig, MusicLIME, load_song
    from musiclime.models import DemoClassifier
    from musiclime.models.separation import OpenUnmixSeparator

    stages = {"imports": peak_rss_bytes()}
    t0 = time.perf_counter()
    clf = DemoClassifier.load(device="cpu")
    separator = OpenUnmixSeparator("demo", device="cpu")
    separator.load()
    stages["models"] = peak_rss_bytes()
    cfg = ExplainerConfig(num_samples=num_samples)
    t1 = time.perf_counter()
    song = load_song(audio, lyrics, separator, clf.sample_rate, cfg)
    t2 = time.perf_counter()
    stages["load_song"] = peak_rss_bytes()
    exp = MusicLIME(clf, cfg, progress=False).explain(song)
    t3 = time.perf_counter()
    stages["explain"] = peak_rss_bytes()
    return {"seconds": song.audio.n_samples / song.audio.sample_rate,
            "num_samples": num_samples, "torch_threads": torch.get_num_threads(),
            "peak_rss_bytes": stages["explain"], "stage_peak_rss_bytes": stages,
            "chunk_seconds": getattr(separator, "chunk_seconds", None),
            "load_song_s": t2 - t1, "explain_s": t3 - t2, "models_s": t1 - t0,
            "warnings": list(getattr(exp, "warnings", []))}


def long_song(args) -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="musiclime-long-song-") as tmp:
        audio, lyrics = write_long_song(Path(tmp), args.long_seconds)
        out = subprocess.run([sys.executable, __file__, "--long-child", str(audio),
                              str(lyrics), "--long-samples", str(args.long_samples)],
                             capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-4000:], file=sys.stderr)
        return out.returncode
    r = json.loads(out.stdout.strip().splitlines()[-1])
    goal = LONG_SONG_GOAL_BYTES
    print(f"long song: {r['seconds']:.0f} s stereo 44.1 kHz WAV, demo separator "
          f"(chunk_seconds={r['chunk_seconds']}), demo classifier, num_samples="
          f"{r['num_samples']}, torch threads {r['torch_threads']}")
    for stage, peak in r["stage_peak_rss_bytes"].items():
        print(f"  peak RSS after {stage:<10} {peak / 1e9:6.2f} GB")
    print(f"  load_song {r['load_song_s']:.1f} s, explain {r['explain_s']:.1f} s")
    met = r["peak_rss_bytes"] <= goal
    print(f"peak RSS {r['peak_rss_bytes'] / 1e9:.2f} GB (goal <= {goal / 1e9:.2f} GB): "
          f"{'MET' if met else 'NOT MET'}")
    Path(args.long_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.long_out).write_text(json.dumps({**r, "goal_bytes": goal, "met": met}, indent=2))
    return 0 if met else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, nargs="+", default=[500, 2000, 5000])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(HERE / "results" / "memory.json"))
    ap.add_argument("--long-song", action="store_true",
                    help="measure one long song from file to explanation instead")
    ap.add_argument("--long-seconds", type=float, default=600.0)
    ap.add_argument("--long-samples", type=int, default=64)
    ap.add_argument("--long-out", default=str(HERE / "results" / "memory-long-song.json"))
    ap.add_argument("--long-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.seconds, args.rate)))
        return 0
    if args.long_child is not None:
        print(json.dumps(long_song_child(*args.long_child, args.long_samples)))
        return 0
    if args.long_song:
        return long_song(args)
    rows = []
    for n in args.samples:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--seconds",
                              str(args.seconds), "--rate", str(args.rate)],
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    # What materialising every perturbed waveform (the reference) would need, for scale:
    for r in rows:
        r["reference_waveforms_mb"] = r["num_samples"] * args.seconds * args.rate * 4 / 2**20
    base = rows[0]["peak_rss_mb"]
    print(f"{'num_samples':>11} {'peak RSS MB':>12} {'ratio':>6} {'wall s':>7} "
          f"{'reference waveforms MB':>23}")
    for r in rows:
        r["ratio_to_first"] = r["peak_rss_mb"] / base
        print(f"{r['num_samples']:>11} {r['peak_rss_mb']:>12.0f} {r['ratio_to_first']:>6.3f} "
              f"{r['wall_s']:>7.1f} {r['reference_waveforms_mb']:>23.0f}")
    spread = max(r["peak_rss_mb"] for r in rows) / min(r["peak_rss_mb"] for r in rows)
    verdict = "flat (within 10%)" if spread <= 1.10 else "NOT flat"
    print(f"peak RSS max/min = {spread:.3f}: {verdict}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "max_over_min": spread}, indent=2))
    return 0 if spread <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
