"""What a run ran on, recorded with every MLflow run so that a figure can be traced and rerun.

- **Environment** (:func:`environment_record`): the sha256 of the lock (``uv.lock``, which
  ``make setup`` installs exactly), whether the installed packages are the lock's, every
  installed package's version, Python, torch, CUDA and cuDNN, and the device the predictions
  ran on. Tags ``musiclime.lock_hash``, ``musiclime.env.*``; artifacts
  ``environment/environment.json`` and ``environment/requirements.txt`` (the installed
  versions, ``pip install -r`` form); the lock itself goes to the sweep's parent run.
- **Dataset** (:func:`song_table`, :func:`log_dataset`): per song the sha256 of its audio and
  lyrics files, its duration, sample rate and channels; the dataset's digest is the sha256 over
  those rows. Logged through MLflow's dataset tracking (``log_inputs``: the runs table's
  Dataset column shows ``name (digest)``, the manifest is its source) and as the table
  ``dataset/songs.json``.

``musiclime reproduce`` (:mod:`musiclime.reproduce`) reads both back and says what differs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import re
import sys
from pathlib import Path

from ..config import repo_root
from ..models.identity import file_digest

LOCK_NAME = "uv.lock"


def lock_path() -> Path | None:
    """The lock of the checkout musiclime runs from (None when installed without one)."""
    p = repo_root() / LOCK_NAME
    return p if p.is_file() else None


def _norm(name: str) -> str:
    """A distribution name in its canonical form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    """``{canonical name: version}`` of every distribution importable here."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            out.setdefault(_norm(name), dist.version)
    return dict(sorted(out.items()))


def locked_versions(path: Path) -> dict[str, set[str]]:
    """``{canonical name: versions}`` a uv lock allows (one per Python-version fork)."""
    import tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    out: dict[str, set[str]] = {}
    for pkg in data.get("package", []):
        if "version" in pkg:
            out.setdefault(_norm(pkg["name"]), set()).add(str(pkg["version"]))
    return out


def lock_mismatches(installed: dict[str, str], locked: dict[str, set[str]]) -> list[str]:
    """Installed packages whose version the lock does not hold, and packages the lock does not
    know (installed by hand), one line each. Locked packages that are not installed (another
    platform's, an extra not asked for) are not a mismatch."""
    out = []
    for name, version in installed.items():
        if name == "musiclime":
            continue
        allowed = locked.get(name)
        if allowed is None:
            out.append(f"{name} {version}: not in the lock")
        elif _plain(version) not in {_plain(v) for v in allowed}:
            out.append(f"{name} {version}: the lock has {', '.join(sorted(allowed))}")
    return out


def _plain(version: str) -> str:
    """A version without its local part (torch reports 2.11.0+cu130, the lock 2.11.0)."""
    return version.split("+", 1)[0]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_names(devices: set[str] | list[str]) -> str:
    """What ``cpu`` / ``cuda:0`` were on this host: ``cuda:0 (NVIDIA H200)``, ``cpu (model)``."""
    import torch

    names = []
    for d in sorted(set(devices)) or ["cpu"]:
        if d.startswith("cuda") and torch.cuda.is_available():
            index = int(d.split(":", 1)[1]) if ":" in d else 0
            names.append(f"{d} ({torch.cuda.get_device_name(index)})")
        elif d.startswith("cpu"):
            names.append(f"{d} ({_cpu_name()})")
        else:
            names.append(d)
    return ", ".join(names)


def environment_record(devices: set[str] | list[str] = ()) -> dict:
    """The environment this process runs in (see the module docstring). ``devices``: the
    devices the predictions ran on (their explanations record them)."""
    import torch

    lock = lock_path()
    installed = installed_versions()
    mismatches = lock_mismatches(installed, locked_versions(lock)) if lock else []
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "lock_hash": file_digest(lock) if lock else None,
        "lock_file": str(lock) if lock else None,
        "matches_lock": bool(lock) and not mismatches,
        "lock_mismatches": mismatches,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(cudnn) if cudnn else None,
        "device": device_names(devices),
        "executable": sys.executable,
        "packages": installed,
    }


def environment_tags(env: dict) -> dict[str, str]:
    return {"musiclime.lock_hash": env["lock_hash"] or "none (not installed from a lock)",
            "musiclime.env.matches_lock": str(env["matches_lock"]).lower(),
            "musiclime.env.python": env["python"], "musiclime.env.torch": env["torch"],
            "musiclime.env.cuda": env["cuda"] or "none",
            "musiclime.env.device": env["device"][:5000]}


def requirements_text(env: dict) -> str:
    return "".join(f"{name}=={version}\n" for name, version in env["packages"].items())


#: environment keys compared by ``musiclime reproduce``, in the order it reports them
_COMPARED = ("lock_hash", "python", "torch", "cuda", "cudnn", "device")


def environment_differences(recorded: dict, current: dict) -> list[str]:
    """One line per difference between two :func:`environment_record`\\ s."""
    out = []
    for key in _COMPARED:
        if recorded.get(key) != current.get(key):
            out.append(f"{key}: recorded {recorded.get(key)}, now {current.get(key)}")
    old, new = recorded.get("packages", {}), current.get("packages", {})
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            out.append(f"package {name}: recorded {old.get(name, 'not installed')}, "
                       f"now {new.get(name, 'not installed')}")
    return out


# --- the dataset --------------------------------------------------------------------------------
def song_row(song_id: str, audio: str, lyrics: str | None) -> dict:
    """One song's files as a dataset row: digests of its audio and lyrics, duration, rate."""
    import soundfile as sf

    row = {"song_id": song_id, "audio": audio, "audio_sha256": file_digest(audio),
           "lyrics": lyrics or "",
           "lyrics_sha256": file_digest(lyrics) if lyrics and Path(lyrics).is_file() else "",
           "duration_s": None, "sample_rate": None, "channels": None}
    try:
        info = sf.info(audio)
        row.update(duration_s=round(float(info.duration), 6), sample_rate=int(info.samplerate),
                   channels=int(info.channels))
    except (RuntimeError, OSError, sf.LibsndfileError):
        pass  # a format libsndfile cannot describe: its decode job says more
    return row


def song_table(sources: list) -> list[dict]:
    """Rows of :func:`song_row` for the workflow's song sources, sorted by song id."""
    return [song_row(s.song_id, s.audio, s.lyrics)
            for s in sorted(sources, key=lambda s: s.song_id)]


def dataset_digest(rows: list[dict]) -> str:
    """The sha256 (first 16 hex digits) over every song's id and file digests."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r["song_id"]):
        h.update(f"{r['song_id']}\0{r['audio_sha256']}\0{r['lyrics_sha256']}\n".encode())
    return h.hexdigest()[:16]


def dataset_differences(recorded: list[dict]) -> list[str]:
    """One line per recorded song whose files are gone or whose content changed."""
    out = []
    for r in recorded:
        for kind in ("audio", "lyrics"):
            path, digest = r.get(kind), r.get(f"{kind}_sha256")
            if not path or not digest:
                continue
            if not Path(path).is_file():
                out.append(f"song {r['song_id']}: its {kind} file {path} is gone")
                continue
            now = file_digest(path)
            if now != digest:
                out.append(f"song {r['song_id']}: its {kind} file {path} changed "
                           f"(sha256 {digest[:12]} recorded, {now[:12]} now)")
    return out


def log_dataset(client, run_id: str, name: str, manifest: str, rows: list[dict]) -> str:
    """Log the songs as the run's input dataset (MLflow's dataset tracking: the runs table's
    Dataset column) and as the table ``dataset/songs.json``; returns the dataset digest."""
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    digest = dataset_digest(rows)
    frame = pd.DataFrame(rows)
    dataset = mlflow.data.from_pandas(frame, source=manifest, name=name, digest=digest)
    client.log_inputs(run_id, datasets=[DatasetInput(
        dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "explained")])])
    client.log_text(run_id, json.dumps(rows, indent=1), "dataset/songs.json")
    return digest


def log_environment(client, run_id: str, env: dict) -> None:
    for key, value in environment_tags(env).items():
        client.set_tag(run_id, key, value)
    client.log_text(run_id, json.dumps(env, indent=1, sort_keys=True),
                    "environment/environment.json")
    client.log_text(run_id, requirements_text(env), "environment/requirements.txt")
