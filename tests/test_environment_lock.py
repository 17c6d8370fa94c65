"""The locked environment: uv.lock is current, pins the exact torch/torchaudio pair, and a venv
made from it (not this long-lived one) imports what musiclime needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from musiclime.config import repo_root
from musiclime.tracking.provenance import (
    environment_record,
    installed_versions,
    lock_mismatches,
    locked_versions,
)

ROOT = repo_root()
LOCK = ROOT / "uv.lock"


def uv() -> str:
    """The uv that `make setup` bootstraps (.tools/), else one on PATH. CI always has it."""
    found = ROOT / ".tools" / "bin" / "uv"
    if found.is_file():
        return str(found)
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    if os.environ.get("CI"):
        pytest.fail("no uv: `make setup` installs it into .tools/")
    pytest.skip("no uv here (make setup installs it into .tools/)")


def lock_packages() -> dict[str, set[str]]:
    return locked_versions(LOCK)


def test_lock_pins_the_exact_torch_torchaudio_pair():
    pkgs = lock_packages()
    assert len(pkgs["torch"]) == 1 and pkgs["torch"] == pkgs["torchaudio"], pkgs["torchaudio"]
    # and pip users get the same pair from pyproject.toml
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_version,) = pkgs["torch"]
    assert f"torch=={torch_version}" in deps and f"torchaudio=={torch_version}" in deps


def test_every_locked_package_has_a_hash():
    data = tomllib.loads(LOCK.read_text())
    unhashed = []
    for pkg in data["package"]:
        if "registry" not in pkg.get("source", {}):
            continue  # the project itself (editable)
        files = ([pkg["sdist"]] if "sdist" in pkg else []) + pkg.get("wheels", [])
        if not files or not all(f.get("hash", "").startswith("sha256:") for f in files):
            unhashed.append(pkg["name"])
    assert not unhashed


def test_lock_is_current_with_pyproject():
    proc = subprocess.run([uv(), "lock", "--check", "--offline"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    assert proc.returncode == 0, proc.stderr


def test_lock_mismatches_name_what_differs_from_the_lock():
    locked = {"numpy": {"2.4.6", "2.5.5"}, "torch": {"2.11.0"}}
    assert lock_mismatches({"numpy": "2.5.5", "torch": "2.11.0+cu130"}, locked) == []
    assert lock_mismatches({"numpy": "2.3.0", "extra-pkg": "1.0", "torch": "2.11.0"},
                           locked) == ["numpy 2.3.0: the lock has 2.4.6, 2.5.5",
                                       "extra-pkg 1.0: not in the lock"]


def test_environment_record_names_the_lock_and_this_interpreter():
    import hashlib
    import platform

    import torch

    env = environment_record({"cpu"})
    assert env["lock_hash"] == hashlib.sha256(LOCK.read_bytes()).hexdigest()
    assert env["python"] == platform.python_version() and env["torch"] == torch.__version__
    assert env["device"].startswith("cpu (")
    assert env["packages"] == installed_versions()
    assert env["matches_lock"] == (not env["lock_mismatches"])


@pytest.mark.slow
def test_a_fresh_venv_from_the_lock_imports_musiclime_openunmix_and_torchaudio(tmp_path):
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([uv(), "sync", "--locked", "--extra", "demo", "--python",
                           os.environ.get("PYTHON", "python3")],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = ("import musiclime, openunmix, torch, torchaudio, torchaudio.functional, "
            "tinysoundfont; from musiclime.tracking.provenance import environment_record; "
            "e = environment_record(); print(torch.__version__, torchaudio.__version__, "
            "e['matches_lock'], musiclime.__file__)")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    torch_v, audio_v, matches, where = out.stdout.split()
    assert torch_v.split("+")[0] == audio_v.split("+")[0]
    assert matches == "True"  # nothing but the lock is installed in it
    assert Path(where).is_relative_to(ROOT / "src")
