"""Separators: real Open-Unmix (a tiny local model in openunmix's format) and the oracle."""

from __future__ import annotations

import shutil
import signal

import numpy as np
import pytest
from conftest import STEM_NAMES, make_stems, make_tiny_umx_dir

from musiclime.errors import SeparatorWeightsMissing
from musiclime.separation import OpenUnmixSeparator, OracleSeparator, make_separator

SR = 22050


def _clip(seconds=2.0, sr=SR):
    n = int(seconds * sr)
    stems = make_stems(n, sr, tone_window=(n // 4, n // 2))
    return np.sum(list(stems.values()), axis=0).astype(np.float32)


@pytest.mark.parametrize("nb_channels", [1, 2])
def test_local_openunmix_dir_separates_at_another_rate(tmp_path, nb_channels,
                                                      torch_single_thread):
    model_dir = make_tiny_umx_dir(tmp_path / "umx", nb_channels=nb_channels, sample_rate=44100)
    sep = OpenUnmixSeparator(model_dir, device="cpu", niter=1)
    assert sep.is_local and sep.sample_rate == 44100
    audio = _clip()
    stems = sep.separate(audio, SR)  # 22050 Hz in, a 44100 Hz model
    assert tuple(stems) == STEM_NAMES
    for y in stems.values():
        assert y.dtype == np.float32 and y.shape == audio.shape
        assert np.all(np.isfinite(y))
    # a real (if untrained) model: the estimates are not silent and not all the same
    assert any(np.abs(y).max() > 0 for y in stems.values())
    assert not np.array_equal(stems["vocals"], stems["drums"])
    # deterministic: the same weights give the same stems
    again = OpenUnmixSeparator(model_dir, device="cpu").separate(audio, SR)
    np.testing.assert_allclose(again["bass"], stems["bass"], atol=1e-6)


def test_identity_depends_on_weights(tmp_path, tiny_umx_dir):
    a = OpenUnmixSeparator(tiny_umx_dir, device="cpu")
    other = make_tiny_umx_dir(tmp_path / "other", seed=1)
    b = OpenUnmixSeparator(other, device="cpu")
    assert a.identity == OpenUnmixSeparator(tiny_umx_dir, device="cpu").identity
    assert a.identity != b.identity
    assert len(a.identity) == 12


def test_missing_pth_names_the_file(tmp_path, tiny_umx_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_umx_dir, broken)
    (broken / "bass.pth").unlink()
    sep = OpenUnmixSeparator(broken, device="cpu")
    with pytest.raises(SeparatorWeightsMissing) as info:
        sep.separate(_clip(0.5), SR)
    msg = str(info.value)
    assert "bass.pth" in msg and str(broken) in msg
    assert "vocals.pth" not in msg.split("lacks")[1].split(".")[0]


def test_missing_json_names_the_file(tmp_path, tiny_umx_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_umx_dir, broken)
    (broken / "separator.json").unlink()
    with pytest.raises(SeparatorWeightsMissing, match="separator.json"):
        OpenUnmixSeparator(broken, device="cpu").load()


def test_unknown_model_name():
    with pytest.raises(SeparatorWeightsMissing, match="neither a local directory"):
        OpenUnmixSeparator("/no/such/dir-or-name", device="cpu").load()


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def test_pretrained_name_without_cache_says_how_to_provide_weights(tmp_path, monkeypatch):
    # no internet here: openunmix's download from Zenodo fails fast (DNS) and must be explained.
    # Guard against a network that hangs instead of failing: give up after 30 s.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    sep = OpenUnmixSeparator("umxhq", device="cpu")
    assert not sep.is_local
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)
    try:
        with pytest.raises(SeparatorWeightsMissing) as info:
            sep.load()
    except _Hang:
        pytest.skip("the weight download hung for 30 s instead of failing (network reachable?)")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    msg = str(info.value)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert str(checkpoints) in msg
    assert "umxhq" in msg
    assert "local model directory" in msg and "separator.json" in msg
    assert "TORCH_HOME" in msg


def test_oracle_reads_stems_from_disk(song):
    sep = OracleSeparator()
    stems = sep.separate(song.mix, song.sample_rate, stems_dir=song.stems_dir)
    assert tuple(stems) == STEM_NAMES
    for name in STEM_NAMES:
        np.testing.assert_array_equal(stems[name], song.stems[name])
    # at another rate: resampled, and fitted to the length of the given mix
    half = sep.load_stems(song.stems_dir, 11025, length=100)
    assert all(y.shape == (100,) for y in half.values())
    assert sep.identity == "oracle"


def test_oracle_errors(tmp_path, song):
    sep = OracleSeparator()
    with pytest.raises(ValueError, match="stems_dir"):
        sep.separate(song.mix, song.sample_rate)
    partial = tmp_path / "stems"
    shutil.copytree(song.stems_dir, partial)
    (partial / "drums.wav").unlink()
    with pytest.raises(FileNotFoundError, match="drums.wav"):
        sep.separate(song.mix, song.sample_rate, stems_dir=partial)


def test_make_separator():
    assert isinstance(make_separator("oracle"), OracleSeparator)
    assert isinstance(make_separator("openunmix", model="umxl", device="cpu"),
                      OpenUnmixSeparator)
    with pytest.raises(ValueError, match="spleeter"):
        make_separator("spleeter")
