"""Cases 1-3 of ``bench/run.py``: one explanation per fresh process, by musiclime and by the
reference stand-in (``bench/reference.py``) on the same classifier, clip and masks: wall time,
classifier time, peak RSS (case 1, **e2e**), musiclime's predict time over its classifier time
(case 2, **overhead**) and peak RSS against num_samples (case 3, **memory**). Also the
benchmark's :class:`Settings`.

A child process is this file run as ``python bench/cases.py --child JSON``: its peak RSS is
that one explanation's own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from inputs import DEMO_CORPUS, demo_clip, load_demo  # noqa: E402
from memory import EnergyClassifier  # noqa: E402
from reference import list_predict_fn, reference_explain  # noqa: E402

GiB = 2 ** 30


@dataclass
class Settings:
    seconds: float = 30.0
    rate: int = 44100  # the energy classifier's rate; the demo classifier works at 22050
    e2e_samples: list[int] = field(default_factory=lambda: [1000, 5000])
    e2e_classifiers: list[str] = field(default_factory=lambda: ["energy", "demo"])
    memory_samples: list[int] = field(default_factory=lambda: [500, 2000, 5000])
    reference_max_gib: float = 8.0  # skip the reference where its waveform list exceeds this
    sweep_songs: int = 4
    sweep_kernel_widths: list[float] = field(default_factory=lambda: [0.1, 0.25, 1.0])
    sweep_samples: list[int] = field(default_factory=lambda: [250, 500, 1000])
    sweep_method: str = "library"
    reuse_samples: int = 200
    dedup_samples: int = 500
    kernel_width: float = 0.25
    corpus: str = str(DEMO_CORPUS)
    allow_untrained: bool = False

    @classmethod
    def quick(cls) -> Settings:
        return cls(seconds=6.0, e2e_samples=[100, 300], memory_samples=[100, 200, 300],
                   sweep_songs=2, sweep_samples=[25, 50, 100], reuse_samples=40,
                   dedup_samples=120, allow_untrained=True)


def make_classifier(kind: str, rate: int = 44100, allow_untrained: bool = False):
    if kind == "energy":
        return EnergyClassifier(rate)
    if kind == "demo":
        return load_demo(allow_untrained)
    raise ValueError(f"unknown classifier {kind!r}")


def classifier_rate(kind: str, rate: int) -> int:
    return 22050 if kind == "demo" else rate


def reference_bytes(num_samples: int, seconds: float, rate: int) -> float:
    return float(num_samples) * seconds * rate * 4


# --- case 1: one explanation, one implementation ------------------------------------------------
def explain_once(impl: str, clf, clip: dict, num_samples: int, modality: str = "both",
                 kernel_width: float = 0.25, labels=(1,)) -> dict:
    """One explanation by ``impl`` (``musiclime`` or ``reference``) on the same masks.

    Peak RSS is only meaningful when this is the only thing the process did (see ``child``).
    """
    import torch

    from musiclime import ExplainerConfig, MusicLIME, factorize
    from musiclime.core.explainer import make_masks
    from musiclime.core.inference import auto_batch_size

    rate = clip["rate"]
    n_audio_samples = len(clip["mix"])
    cfg = ExplainerConfig(num_samples=num_samples, modality=modality, kernel_width=kernel_width,
                          labels=list(labels), num_features=10, seed=0)
    batch = auto_batch_size(n_audio_samples, torch.device("cpu"))
    out = {"impl": impl, "num_samples": num_samples, "modality": modality, "rate": rate,
           "seconds": n_audio_samples / rate, "clip": clip["source"], "batch_size": batch}
    if impl == "musiclime":
        rss0 = _peak_rss_mb()
        t0 = time.perf_counter()
        song = factorize(clip["mix"], clip["stems"], rate, clip["lyrics"], cfg)
        exp = MusicLIME(clf, cfg, progress=False).explain(song)
        wall = time.perf_counter() - t0
        fits = {k: f.weights for k, f in exp.fits.items()}
        out.update(wall_s=wall, rss_before_mb=rss0,
                   classifier_s=exp.timings["classifier_s"],
                   predict_total_s=exp.timings["predict_total_s"],
                   compose_s=exp.timings["compose_s"],
                   lyrics_compose_s=exp.timings["lyrics_compose_s"],
                   fit_s=exp.timings["fit_s"],
                   n_features=len(exp.columns), prediction=exp.prediction,
                   scores={k: f.score for k, f in exp.fits.items()})
    elif impl == "reference":
        song = factorize(clip["mix"], clip["stems"], rate, clip["lyrics"], cfg)
        masks, layout = make_masks(song.feature_table, cfg)
        del song
        fn = list_predict_fn(clf, batch)
        rss0 = _peak_rss_mb()
        t0 = time.perf_counter()
        res = reference_explain(clip["stems"], clip["lyrics"], fn, masks, modality=modality,
                                labels=labels, kernel_width=kernel_width,
                                num_features=masks.shape[1])
        wall = time.perf_counter() - t0
        fits = {k: f["weights"] for k, f in res["fits"].items()}
        t = res["timings"]
        out.update(wall_s=wall, rss_before_mb=rss0, classifier_s=t["classifier_s"],
                   predict_total_s=t["perturb_s"] + t["predict_s"], compose_s=t["perturb_s"],
                   fit_s=t["fit_s"], factorize_s=t["factorize_s"],
                   waveform_list_mb=res["waveform_bytes"] / 2 ** 20,
                   n_features=masks.shape[1],
                   prediction=[float(p) for p in res["predictions"][0]],
                   scores={k: f["score"] for k, f in res["fits"].items()})
    else:
        raise ValueError(impl)
    out["weights"] = {str(k): [float(x) for x in w] for k, w in fits.items()}
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(spec: dict) -> dict:
    """One ``explain_once`` in this (fresh) process."""
    rate = classifier_rate(spec["classifier"], spec["rate"])
    clf = make_classifier(spec["classifier"], rate, spec.get("allow_untrained", False))
    clip = demo_clip(spec["seconds"], rate, spec.get("corpus", DEMO_CORPUS))
    res = explain_once(spec["impl"], clf, clip, spec["num_samples"],
                       kernel_width=spec.get("kernel_width", 0.25))
    res["classifier"] = spec["classifier"]
    res["classifier_trained"] = bool(getattr(clf, "trained", True))
    return res


def run_child(spec: dict, timeout: float = 900) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {**spec, "error": (proc.stderr or proc.stdout)[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare_weights(a: dict, b: dict) -> dict:
    """How close two explanations' weights are (same label, same columns)."""
    out = {}
    for label, wa in a.get("weights", {}).items():
        wb = b.get("weights", {}).get(label)
        if wb is None:
            continue
        wa, wb = np.asarray(wa), np.asarray(wb)
        top_a = set(np.argsort(-np.abs(wa))[:5])
        top_b = set(np.argsort(-np.abs(wb))[:5])
        corr = float(np.corrcoef(wa, wb)[0, 1]) if wa.std() > 0 and wb.std() > 0 else 1.0
        out[label] = {"max_abs_diff": float(np.max(np.abs(wa - wb))),
                      "max_abs_weight": float(np.max(np.abs(wa))), "pearson": corr,
                      "top5_overlap": len(top_a & top_b)}
    return out


def case_e2e(s: Settings, log) -> tuple[dict, dict]:
    """Children for case 1 (and case 3's points); returns (e2e rows, memory rows)."""
    e2e = []
    mem_runs: dict[int, dict] = {}
    base = {"seconds": s.seconds, "rate": s.rate, "kernel_width": s.kernel_width,
            "corpus": s.corpus, "allow_untrained": s.allow_untrained}
    for kind in s.e2e_classifiers:
        rate = classifier_rate(kind, s.rate)
        for n in s.e2e_samples:
            row = {"classifier": kind, "num_samples": n, "rate": rate}
            ml = run_child({**base, "impl": "musiclime", "classifier": kind, "num_samples": n})
            log(f"  e2e {kind} n={n} musiclime: {_brief(ml)}")
            row["musiclime"] = ml
            if kind == "energy":
                mem_runs[n] = ml
            need = reference_bytes(n, s.seconds, rate)
            if need > s.reference_max_gib * GiB:
                row["reference"] = {"skipped": f"its waveform list alone would take "
                                               f"{need / GiB:.1f} GiB (> {s.reference_max_gib} "
                                               "GiB allowed here)"}
                log(f"  e2e {kind} n={n} reference: skipped ({need / GiB:.1f} GiB of waveforms)")
            else:
                ref = run_child({**base, "impl": "reference", "classifier": kind,
                                 "num_samples": n})
                log(f"  e2e {kind} n={n} reference: {_brief(ref)}")
                row["reference"] = ref
                if "error" not in ref and "error" not in ml:
                    row["speedup"] = ref["wall_s"] / ml["wall_s"]
                    row["memory_ratio"] = ref["peak_rss_mb"] / ml["peak_rss_mb"]
                    row["agreement"] = compare_weights(ml, ref)
            e2e.append(row)
    for n in s.memory_samples:
        if n not in mem_runs:
            mem_runs[n] = run_child({**base, "impl": "musiclime", "classifier": "energy",
                                     "num_samples": n})
            log(f"  memory n={n} musiclime: {_brief(mem_runs[n])}")
    rows = [mem_runs[n] for n in s.memory_samples]
    ok = [r for r in rows if "error" not in r]
    mem = {"rows": [{"num_samples": r["num_samples"], "peak_rss_mb": r.get("peak_rss_mb"),
                     "rss_before_mb": r.get("rss_before_mb"), "wall_s": r.get("wall_s"),
                     "error": r.get("error")} for r in rows]}
    if len(ok) == len(rows) and ok:
        peaks = [r["peak_rss_mb"] for r in ok]
        mem["max_over_min"] = max(peaks) / min(peaks)
        extra = [r["peak_rss_mb"] - r["rss_before_mb"] for r in ok]
        mem["explain_increment_mb"] = extra
    return {"rows": e2e}, mem


def _brief(r: dict) -> str:
    if "error" in r:
        return "ERROR " + r["error"].strip().splitlines()[-1]
    return (f"wall {r['wall_s']:.1f}s, classifier {r['classifier_s']:.1f}s, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB")


# --- case 2: overhead -----------------------------------------------------------------------------
def overhead_of(run: dict) -> dict:
    """musiclime's predict time over its classifier time (from one run's timings)."""
    total, model = run["predict_total_s"], run["classifier_s"]
    return {"predict_total_s": total, "classifier_s": model, "ratio": total / model,
            "compose_s": run.get("compose_s"), "lyrics_compose_s": run.get("lyrics_compose_s"),
            "other_s": total - model - (run.get("compose_s") or 0)
            - (run.get("lyrics_compose_s") or 0),
            "num_samples": run.get("num_samples"), "classifier": run.get("classifier")}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--child":
        sys.exit("usage: python bench/cases.py --child JSON (run by bench/run.py)")
    print(json.dumps(child(json.loads(sys.argv[2]))))
