"""The shipped demo Open-Unmix separator loads with openunmix unchanged and separates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from musiclime_demo import corpus as dc
from musiclime_demo.train_separator import DEFAULT_OUT, TARGETS, sha256

openunmix = pytest.importorskip("openunmix")
from openunmix import predict, utils  # noqa: E402


@pytest.fixture(scope="module")
def song():
    # an index far outside the 200-song corpus: never seen in training
    return dc.render_song(100_123, seed=0, duration=6.0)


@pytest.fixture(scope="module")
def separator():
    sep = utils.load_separator(str(DEFAULT_OUT), targets=list(TARGETS), niter=0)
    sep.freeze()
    return sep


def _snr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / (np.sum((ref - est) ** 2) + 1e-12) + 1e-12))


def test_shipped_files_are_complete_and_match_their_hashes():
    conf = json.loads((DEFAULT_OUT / "separator.json").read_text())
    assert conf["sample_rate"] == dc.SAMPLE_RATE and conf["nb_channels"] == 1
    assert {"nfft", "nhop"} <= conf.keys()
    training = json.loads((DEFAULT_OUT / "training.json").read_text())
    for t in TARGETS:
        args = json.loads((DEFAULT_OUT / f"{t}.json").read_text())["args"]
        assert {"nfft", "nb_channels", "hidden_size"} <= args.keys()
        pth = DEFAULT_OUT / f"{t}.pth"
        assert pth.stat().st_size < 2_000_000
        assert training["sha256"][f"{t}.pth"] == sha256(pth)
    evaluation = json.loads((DEFAULT_OUT / "evaluation.json").read_text())
    for t in TARGETS:
        sdr = evaluation["sdr"]
        assert sdr["separator"][t]["median"] > sdr["mixture"][t]["median"]


def test_separates_a_clip_with_openunmix_predict(song, separator):
    clip = torch.from_numpy(song.mix[: 3 * dc.SAMPLE_RATE])[None]
    est = predict.separate(clip, rate=dc.SAMPLE_RATE, separator=separator)
    assert set(est) == set(TARGETS)
    for t in TARGETS:
        assert est[t].shape[0] == 1 and est[t].shape[-1] == clip.shape[-1]
        assert torch.isfinite(est[t]).all()


def test_loads_by_path_through_predict_separate(song):
    clip = torch.from_numpy(song.mix[: dc.SAMPLE_RATE])[None]
    est = predict.separate(
        clip,
        rate=dc.SAMPLE_RATE,
        model_str_or_path=str(DEFAULT_OUT),
        targets=list(TARGETS),
        niter=0,
    )
    assert set(est) == set(TARGETS) and all(v.shape[-1] == clip.shape[-1] for v in est.values())


def test_estimates_beat_the_mixture(song, separator):
    mix = torch.from_numpy(song.mix)[None]
    est = predict.separate(mix, rate=dc.SAMPLE_RATE, separator=separator)
    better = 0
    for t in TARGETS:
        ref = song.stems[t].astype(np.float64)
        e = est[t][0].mean(dim=0).numpy().astype(np.float64)
        if _snr(ref, e) > _snr(ref, song.mix.astype(np.float64)) + 1.0:
            better += 1
    assert better >= 3
