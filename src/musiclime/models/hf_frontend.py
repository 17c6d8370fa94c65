"""What a batch becomes before a Hugging Face model sees it, for :mod:`musiclime.models.hf`.

Audio: each clip is cut into the model's windows (:func:`window_starts`, sized by
:func:`extractor_window` or ``window_seconds``), the windows go through the feature extractor
``batch_size`` at a time (AST's Kaldi fbanks batched on the model's device by
:func:`ast_fbank`), and the model's per-window outputs are averaged per clip
(:func:`windowed`). Lyrics: tokenised, cut at the text model's ``max_length`` with a warning
(:class:`TextFrontEnd`). Encoder outputs are pooled to one vector by :func:`pool`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)


def as_batch(audio: torch.Tensor | np.ndarray, rate: int) -> torch.Tensor:
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(audio)
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2 or not audio.is_floating_point():
        raise ValueError(f"audio must be a 2-D float tensor [batch, samples] of mono waveforms "
                         f"at {rate} Hz, got {getattr(audio, 'shape', type(audio).__name__)}")
    if audio.shape[1] == 0:
        raise ValueError("audio has zero samples")
    return audio


def check_lyrics(lyrics: Sequence[str] | str) -> list[str]:
    if isinstance(lyrics, str):
        raise ValueError("lyrics must be a list of strings (one per batch item), got a str")
    return ["" if t is None else str(t) for t in lyrics]



def extractor_window(feature_extractor, sample_rate: int) -> int | None:
    """Samples one forward pass of the model sees, from its feature extractor (None: any)."""
    max_frames = getattr(feature_extractor, "max_length", None)
    if max_frames and hasattr(feature_extractor, "num_mel_bins"):
        # AST / kaldi fbank: 25 ms frames every 10 ms
        hop, win = sample_rate // 100, int(round(sample_rate * 0.025))
        return int((int(max_frames) - 1) * hop + win)
    n = getattr(feature_extractor, "n_samples", None)
    if n:
        return int(n)
    return None


def window_starts(n_samples: int, window: int | None) -> list[int]:
    """Starts of consecutive windows covering ``n_samples``; the last ends at the end."""
    if window is None or n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window, window))
    return starts + [n_samples - window]


def ast_fbank(windows: torch.Tensor, feature_extractor) -> torch.Tensor:
    """``ASTFeatureExtractor``'s features for a batch ``[n, samples]``, on its device.

    The extractor computes Kaldi fbanks (``torchaudio.compliance.kaldi.fbank``: 25 ms Hann
    frames every 10 ms, DC offset removed, pre-emphasis 0.97, 512-point power spectrum,
    ``num_mel_bins`` mel filters from 20 Hz to Nyquist, natural log) one clip at a time on the
    CPU, pads or cuts them to ``max_length`` frames and normalises with its mean and std. This
    is the same computation for a whole batch at once, on the GPU when the audio is there (a
    test checks it against the extractor). On a GPU, the per-clip CPU extractor would cap an
    AST at a fraction of the GPU's speed.
    """
    with torch.autocast(windows.device.type, enabled=False):  # fp16 would overflow the power
        return _ast_fbank(windows, feature_extractor)


def _ast_fbank(windows: torch.Tensor, feature_extractor) -> torch.Tensor:
    from torchaudio.compliance.kaldi import get_mel_banks

    fe = feature_extractor
    x = windows.to(torch.float32)
    rate = int(fe.sampling_rate)
    size, shift, nfft = int(rate * 0.025), int(rate * 0.010), 512
    while nfft < size:
        nfft *= 2
    if x.shape[1] < size:  # shorter than one frame (the extractor itself fails there)
        x = torch.nn.functional.pad(x, (0, size - x.shape[1]))
    n_frames = 1 + (x.shape[1] - size) // shift
    frames = x.unfold(1, size, shift)[:, :n_frames]  # [n, m, size]
    frames = frames - frames.mean(dim=2, keepdim=True)
    prev = torch.cat([frames[:, :, :1], frames[:, :, :-1]], dim=2)
    frames = frames - 0.97 * prev
    frames = frames * torch.hann_window(size, periodic=False, device=x.device, dtype=x.dtype)
    power = torch.fft.rfft(frames, n=nfft).abs().pow(2.0)
    banks, _ = get_mel_banks(int(fe.num_mel_bins), nfft, float(rate), 20.0, 0.0, 100.0, -500.0,
                             1.0)
    banks = torch.nn.functional.pad(banks.to(x.device, x.dtype), (0, 1))
    eps = torch.tensor(torch.finfo(x.dtype).eps, device=x.device, dtype=x.dtype)
    fbank = torch.max(power @ banks.T, eps).log()  # [n, m, mel]
    m = int(fe.max_length)
    if fbank.shape[1] < m:
        fbank = torch.nn.functional.pad(fbank, (0, 0, 0, m - fbank.shape[1]))
    fbank = fbank[:, :m]
    if getattr(fe, "do_normalize", True):
        fbank = (fbank - fe.mean) / (fe.std * 2)
    return fbank


class AudioFrontEnd:
    """Feature extraction and windowing shared by the audio classifier and the fusion model."""

    def __init__(self, feature_extractor, window_seconds: float | None):
        self.feature_extractor = feature_extractor
        self.sample_rate = int(feature_extractor.sampling_rate)
        if window_seconds:
            self.window = int(round(float(window_seconds) * self.sample_rate))
        else:
            self.window = extractor_window(feature_extractor, self.sample_rate)
        # AST's extractor is re-done batched on the device (ast_fbank); others run as they are
        self.batched_ast = type(feature_extractor).__name__ == "ASTFeatureExtractor"

    def windows(self, audio: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Every clip's windows, clip-major ``[batch * per_clip, window]``, and per_clip."""
        starts = window_starts(audio.shape[1], self.window)
        w = self.window or audio.shape[1]
        if len(starts) == 1:
            return audio[:, :w], 1
        return torch.stack([audio[:, s:s + w] for s in starts], dim=1).reshape(-1, w), len(
            starts)

    def features(self, clips: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        if self.batched_ast:
            return {"input_values": ast_fbank(clips.to(device), self.feature_extractor)}
        arrays = list(clips.detach().to("cpu", torch.float32).numpy())
        feats = self.feature_extractor(arrays, sampling_rate=self.sample_rate,
                                       return_tensors="pt")
        return {k: v.to(device) for k, v in feats.items() if isinstance(v, torch.Tensor)}


class WindowCache:
    """The model's output for every window content already seen in one prediction run.

    A perturbed song differs from the original only inside the segments whose features are
    switched off, and a model window spans one segment or two: with 4 stems it can hold at most
    2^4 = 16 different contents over one segment and 2^8 = 256 over two, however many masks
    are drawn. So most windows of most perturbed songs were seen before (in a 3-minute song of
    10 segments explained with 1000 masks, about 4 in 5). Each distinct content goes through
    the model once; the others are looked up.

    Windows are told apart by a float64 random projection of their samples (``dims`` numbers,
    computed on the model's device in chunks of 64 windows): two windows share an output only
    when every projection agrees, i.e. when their samples are equal (up to float64 rounding of
    the projection). :meth:`reset` empties the cache; :func:`musiclime.core.inference.predict_masks`
    calls the classifier's ``reset_cache()`` before each run, so a run never depends on an
    earlier one and ``explain`` and the workflow see the same sequence of computations.
    ``max_entries`` bounds memory (the oldest entries go first).
    """

    def __init__(self, max_entries: int = 65536, dims: int = 8, seed: int = 0):
        self.max_entries, self.dims, self.seed = int(max_entries), int(dims), int(seed)
        self.table: dict[bytes, torch.Tensor] = {}
        self.hits = self.misses = 0
        self._projection: torch.Tensor | None = None

    def reset(self) -> None:
        self.table.clear()
        self.hits = self.misses = 0

    @property
    def hit_rate(self) -> float | None:
        seen = self.hits + self.misses
        return self.hits / seen if seen else None

    def keys(self, clips: torch.Tensor) -> list[bytes]:
        """One key per window (row of ``clips``)."""
        n = clips.shape[1]
        proj = self._projection
        if proj is None or proj.shape[0] != n or proj.device != clips.device:
            gen = torch.Generator().manual_seed(self.seed)
            proj = torch.randn(n, self.dims, generator=gen, dtype=torch.float64)
            proj = self._projection = proj.to(clips.device)
        rows = [clips[i:i + 64].to(torch.float64) @ proj for i in range(0, clips.shape[0], 64)]
        return [row.tobytes() for row in torch.cat(rows).cpu().numpy()]

    def lookup(self, clips: torch.Tensor, compute) -> torch.Tensor:
        """``compute(windows) -> [n, D]`` for the windows not seen before; every window's
        output, in order: ``[len(clips), D]``."""
        keys = self.keys(clips)
        todo: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self.table and key not in todo:
                todo[key] = i
        if todo:
            index = torch.tensor(list(todo.values()), device=clips.device)
            for key, row in zip(todo, compute(clips.index_select(0, index)), strict=True):
                self.table[key] = row
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        out = torch.stack([self.table[key] for key in keys])
        while len(self.table) > self.max_entries:  # oldest first (dicts keep insertion order)
            del self.table[next(iter(self.table))]
        return out


def windowed(frontend: AudioFrontEnd, audio: torch.Tensor, batch_size: int,
             device: torch.device, fn, cache: WindowCache | None = None) -> torch.Tensor:
    """``fn(features) -> [n, D]`` over every window (each distinct one once, with a
    ``cache``), averaged per clip: ``[batch, D]``."""
    clips, per_clip = frontend.windows(audio)

    def compute(windows: torch.Tensor) -> torch.Tensor:
        return torch.cat([fn(frontend.features(windows[i:i + batch_size], device)).float()
                          for i in range(0, windows.shape[0], batch_size)], dim=0)

    with torch.inference_mode():
        out = compute(clips) if cache is None else cache.lookup(clips, compute)
    return out.reshape(audio.shape[0], per_clip, -1).mean(dim=1)


class TextFrontEnd:
    def __init__(self, tokenizer, max_length: int | None):
        self.tokenizer = tokenizer
        limit = getattr(tokenizer, "model_max_length", None)
        if max_length is None and limit and limit < 100_000:
            max_length = int(limit)
        self.max_length = max_length
        self._warned = False

    def tokens(self, texts: list[str], device: torch.device) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, padding=True, truncation=self.max_length is not None,
                             max_length=self.max_length, return_tensors="pt")
        if self.max_length is not None and not self._warned:
            full = self.tokenizer(texts[:1], truncation=False)["input_ids"][0]
            if len(full) > self.max_length:
                self._warned = True
                log.warning("lyrics of %d tokens are cut to the text model's %d: words past "
                            "the cut cannot change its output (zero weight)", len(full),
                            self.max_length)
        return {k: v.to(device) for k, v in enc.items()}



def pool(outputs, pooling: str, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    hidden = outputs.last_hidden_state
    if pooling == "cls":
        # AST's pooler is the mean of its [CLS] and distillation tokens (no weights); text
        # encoders are loaded without their pooler (RoBERTa's is untrained), so: the <s> token
        pooled = getattr(outputs, "pooler_output", None)
        return pooled if pooled is not None else hidden[:, 0]
    if pooling == "mean":
        if attention_mask is None:
            return hidden.mean(dim=1)
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
    raise ConfigError(f"pooling must be 'cls' or 'mean', got {pooling!r}")

