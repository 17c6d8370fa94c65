"""Shared fixtures: synthetic songs with known evidence, and a tiny real Open-Unmix model.

Everything here writes real files (soundfile WAV/FLAC, torch state dicts in openunmix's own
format) so the code under test reads them exactly as it reads user data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

STEM_NAMES = ("vocals", "drums", "bass", "other")
TONE_HZ = 880.0
TONE_AMP = 0.3
#: energy ToneKeywordClassifier measures for a full-amplitude tone: (A * L / 2)^2 / L^2
TONE_REFERENCE_ENERGY = TONE_AMP ** 2 / 4
KEYWORD = "robot"
KEYWORD_LINE = "the robot sings tonight"
LYRICS = "\n".join([
    "[Verse 1]",
    "walking down the road",
    KEYWORD_LINE,
    "",
    "(ooh yeah)",
    "and the night is long",
    "we dance (alone) in the rain",
]) + "\n"
LYRICS_NO_KEYWORD = LYRICS.replace(KEYWORD, "choir")
#: the lyric units LineUnits keeps from LYRICS, in order
LYRIC_LINES = ["walking down the road", KEYWORD_LINE, "and the night is long",
               "we dance (alone) in the rain"]

#: How `make test` spreads the tests over its pytest-xdist workers (``--dist loadgroup
#: --no-loadscope-reorder``). The longest files start first, so that the workers do not both
#: end on one (a CI run measured on 2 cores: test_slurm 705 s, test_workflow 2,000 s,
#: test_faults 1,800 s, test_reproduce 550 s, test_pipeline 700 s, test_long_songs 600 s, ...).
LONGEST_FIRST = ("test_workflow.py", "test_faults.py", "test_slurm.py", "test_reproduce.py",
                 "test_pipeline.py", "test_long_songs.py", "test_hf_models.py",
                 "test_fewer_calls.py", "test_mlflow_ui.py", "test_sanity.py",
                 "test_hard_corpus.py", "test_strategies.py", "test_readme_example.py")
#: Files whose tests are independent runs sharing only a cheap fixture (a small corpus): their
#: tests go to the workers one by one. Every other file stays on one worker as a whole, so its
#: module fixtures (a pipeline run that several tests read, a cluster) run once.
SPREAD_TESTS = ("test_workflow.py", "test_faults.py", "test_pipeline.py")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order
    for item in items:
        if item.path.name not in SPREAD_TESTS:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@dataclass
class SyntheticSong:
    root: Path
    audio_path: Path  # the mix (wav, float)
    flac_path: Path  # the same mix as FLAC
    lyrics_path: Path
    stems_dir: Path
    sample_rate: int
    seconds: float
    segments: int
    tone_stem: str | None
    tone_segment: int | None
    stems: dict[str, np.ndarray] = field(repr=False)
    mix: np.ndarray = field(repr=False)

    @property
    def segment_seconds(self) -> float:
        return self.seconds / self.segments

    @property
    def tone_window(self) -> tuple[float, float]:
        t = self.tone_segment
        return t * self.segment_seconds, (t + 1) * self.segment_seconds

    @property
    def tone_feature(self) -> str:
        return f"{self.tone_stem}_T{self.tone_segment}"


def make_stems(n: int, sr: int, seed: int = 0, tone_stem: str | None = "other",
               tone_window: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Four float32 stems; a pure 880 Hz tone only in ``tone_stem`` during ``tone_window``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    stems = {
        "vocals": 0.1 * np.sin(2 * np.pi * 310.0 * t),
        "drums": 0.02 * rng.standard_normal(n),
        "bass": 0.2 * np.sin(2 * np.pi * 110.0 * t),
        "other": 0.05 * np.sin(2 * np.pi * 523.0 * t),
    }
    if tone_stem is not None and tone_window is not None:
        a, b = tone_window
        stems[tone_stem][a:b] += TONE_AMP * np.sin(2 * np.pi * TONE_HZ * t[a:b])
    return {k: v.astype(np.float32) for k, v in stems.items()}


def write_song(root: Path, seconds: float = 8.0, sr: int = 22050, segments: int = 10,
               tone_stem: str | None = "other", tone_segment: int | None = 3,
               lyrics: str = LYRICS, seed: int = 0) -> SyntheticSong:
    """Write ``stems/{vocals,drums,bass,other}.wav``, ``mix.wav``, ``mix.flac`` and lyrics."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sr))
    window = None
    if tone_stem is not None and tone_segment is not None:
        base = n // segments
        window = (tone_segment * base, (tone_segment + 1) * base)
    stems = make_stems(n, sr, seed, tone_stem, window)
    stems_dir = root / "stems"
    stems_dir.mkdir(exist_ok=True)
    for name in STEM_NAMES:
        sf.write(stems_dir / f"{name}.wav", stems[name], sr, subtype="FLOAT")
    mix = np.sum([stems[k] for k in STEM_NAMES], axis=0).astype(np.float32)
    sf.write(root / "mix.wav", mix, sr, subtype="FLOAT")
    sf.write(root / "mix.flac", mix, sr)
    (root / "lyrics.txt").write_text(lyrics, encoding="utf-8")
    return SyntheticSong(root=root, audio_path=root / "mix.wav", flac_path=root / "mix.flac",
                         lyrics_path=root / "lyrics.txt", stems_dir=stems_dir, sample_rate=sr,
                         seconds=seconds, segments=segments, tone_stem=tone_stem,
                         tone_segment=tone_segment, stems=stems, mix=mix)


def explain_whitebox(song: SyntheticSong, **settings):
    """``(explanation, factorized song, classifier)``: ``song`` explained (oracle stems, no
    progress bar) for the white-box classifier that hears only its tone and reads only
    :data:`KEYWORD`; ``settings`` are ``ExplainerConfig`` fields."""
    from musiclime.core.explainer import ExplainerConfig, MusicLIME, load_song
    from musiclime.models.separation import OracleSeparator
    from musiclime.models.whitebox import ToneKeywordClassifier

    config = ExplainerConfig(**settings)
    factorized = load_song(song.audio_path, song.lyrics_path, OracleSeparator(),
                           song.sample_rate, config, stems_dir=song.stems_dir)
    start, end = song.tone_window
    clf = ToneKeywordClassifier(sample_rate=song.sample_rate, tone_hz=TONE_HZ, start=start,
                                end=end, keyword=KEYWORD, reference_energy=TONE_REFERENCE_ENERGY)
    return MusicLIME(clf, config, progress=False).explain(factorized), factorized, clf


@pytest.fixture(scope="session")
def song(tmp_path_factory) -> SyntheticSong:
    """8 s at 22050 Hz; the 880 Hz tone is in ``other`` during segment 3 of 10 (2.4-3.2 s)."""
    return write_song(tmp_path_factory.mktemp("song"))


@pytest.fixture(scope="session")
def short_song(tmp_path_factory) -> SyntheticSong:
    """4 s at 22050 Hz (for CLI runs); tone in ``other`` during segment 6 of 10 (2.4-2.8 s)."""
    return write_song(tmp_path_factory.mktemp("short_song"), seconds=4.0, tone_segment=6)


def make_tiny_umx_dir(root: Path, nb_channels: int = 2, sample_rate: int = 44100,
                      nfft: int = 512, nhop: int = 128, hidden_size: int = 8,
                      targets=STEM_NAMES, seed: int = 0) -> Path:
    """A randomly initialised Open-Unmix model directory in openunmix's on-disk format.

    ``openunmix.utils.load_separator`` reads ``separator.json`` (sample_rate, nfft, nhop,
    nb_channels), ``<target>.json`` (``args``: nfft, nb_channels, hidden_size) and the
    ``<target>.pth`` state dict (whose ``input_mean`` length sets ``max_bin``).
    """
    import torch
    from openunmix.model import OpenUnmix

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "separator.json").write_text(json.dumps(
        {"sample_rate": sample_rate, "nfft": nfft, "nhop": nhop, "nb_channels": nb_channels}))
    torch.manual_seed(seed)
    for target in targets:
        model = OpenUnmix(nb_bins=nfft // 2 + 1, nb_channels=nb_channels,
                          hidden_size=hidden_size)
        (root / f"{target}.json").write_text(json.dumps(
            {"args": {"nfft": nfft, "nhop": nhop, "nb_channels": nb_channels,
                      "hidden_size": hidden_size, "sample_rate": sample_rate}}))
        torch.save(model.state_dict(), root / f"{target}.pth")
    return root


@pytest.fixture(scope="session")
def tiny_umx_dir(tmp_path_factory) -> Path:
    """A stereo tiny Open-Unmix model at 44.1 kHz."""
    return make_tiny_umx_dir(tmp_path_factory.mktemp("tiny_umx"))


@pytest.fixture
def torch_single_thread():
    """Run torch on one thread for the test (restored afterwards).

    Open-Unmix's LSTM runs hundreds of tiny sequential steps; on a busy 2-core machine the
    OpenMP threads of each step wait on each other and a 2-s separation takes tens of seconds
    instead of half a second.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- a real headless Chromium (Debian's chromium + chromium-driver; `make system-deps`) --------
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

needs_chromium = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"{CHROMIUM} and {CHROMEDRIVER} are not installed: run `make system-deps` "
           "(apt-get install -y chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (one per test module) that may play audio without a gesture."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1300,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def audio_state(driver, clip: str) -> dict:
    """The page's ``<audio data-clip=clip>``: paused, currentTime, readyState, error code."""
    return driver.execute_script(
        "var a = document.querySelector('audio[data-clip=\"' + arguments[0] + '\"]');"
        "return {paused: a.paused, time: a.currentTime, ready: a.readyState,"
        " error: a.error && a.error.code};", clip)


# --- file systems that refuse writes (a read-only mount, an immutable folder, a full disk) ----
def _sh(*cmd: str) -> bool:
    import subprocess

    return subprocess.run(list(cmd), capture_output=True).returncode == 0


@pytest.fixture
def make_read_only():
    """``make_read_only(folder, how="mount")`` makes ``folder`` refuse writes, even root's:
    ``mount`` bind-mounts it read-only over itself (EROFS), ``immutable`` sets ``chattr +i``
    (EPERM); without root, ``chmod a-w`` (EACCES) stands in for both. Skips when the machine
    allows none of them; undone after the test."""
    undo = []

    def make(folder: Path, how: str = "mount") -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            folder.chmod(0o555)
            undo.append(lambda: folder.chmod(0o755))
        elif how == "mount" and _sh("mount", "--bind", str(folder), str(folder)):
            undo.append(lambda: _sh("umount", str(folder)))
            if not _sh("mount", "-o", "remount,bind,ro", str(folder)):
                pytest.skip("cannot remount a bind mount read-only here")
        elif _sh("chattr", "+i", str(folder)):  # also where mounting is not allowed
            undo.append(lambda: _sh("chattr", "-i", str(folder)))
        else:
            pytest.skip(f"cannot make {folder} read-only here (no mount or chattr rights)")
        return folder

    yield make
    for step in reversed(undo):
        step()


@pytest.fixture
def small_tmpfs(tmp_path):
    """``small_tmpfs(kib)``: a fresh tmpfs of ``kib`` KiB (a disk that fills up), unmounted
    after the test. Skips without root or mount rights."""
    mounts = []

    def make(kib: int) -> Path:
        folder = tmp_path / f"tmpfs{len(mounts)}"
        folder.mkdir()
        if os.geteuid() != 0 or not _sh("mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs",
                                        str(folder)):
            pytest.skip("mounting a small tmpfs needs root (a full disk is simulated with one)")
        mounts.append(folder)
        return folder

    yield make
    for folder in mounts:
        _sh("umount", "-l", str(folder))
