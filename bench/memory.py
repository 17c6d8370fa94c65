"""Peak memory of one explanation vs num_samples (30 s at 44.1 kHz, `both` modality).

Each point runs in a fresh process (peak RSS is per process), on the same synthetic stems and
lyrics, with a light energy-based classifier so the explainer's own memory is what is measured.
Prints a table and the ratio of the largest to the smallest peak; writes bench/results/memory.json.

    python bench/memory.py [--samples 500 2000 5000] [--seconds 30] [--rate 44100]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, nargs="+", default=[500, 2000, 5000])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(HERE / "results" / "memory.json"))
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.seconds, args.rate)))
        return 0
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
