"""Hugging Face classifiers: ``model=hf_audio``, ``model=hf_text`` and ``model=hf_fusion``.

- :class:`HFAudioClassifier` wraps any ``AutoModelForAudioClassification`` with its feature
  extractor (an AST fine-tuned on your labels, a wav2vec2 classifier...). Lyrics are ignored:
  explain it with ``explainer.modality=audio``.
- :class:`HFTextClassifier` wraps any ``AutoModelForSequenceClassification`` with its
  tokenizer. Audio is ignored: explain it with ``explainer.modality=lyrical``.
- :class:`HFFusionClassifier` is the MusicLIME paper's design: an audio encoder (AST by
  default) and a text encoder (RoBERTa-large by default), frozen, each pooled to one vector
  (CLS or mean), concatenated and fed to a small MLP head that ``musiclime train-classifier``
  trains (:mod:`musiclime.models.head`). It exposes ``encode_audio``, ``encode_lyrics`` and
  ``predict_from_embeddings``, so a single-modality explanation encodes the constant modality
  once (:func:`musiclime.inference.predict_masks`).

**Models** are given by hub id or by a local folder (``save_pretrained``). Nothing is
downloaded unless ``download: true``: an experiment should not silently pick up whatever a hub
repo holds today, and the machines that run sweeps often have no internet. A hub id that is not
in the local Hugging Face cache gives :class:`~musiclime.errors.ModelWeightsMissing` with the
command that downloads it. The weights' files enter the prediction cache key
(:mod:`musiclime.identity`) through ``weights_files``.

**Sample rate.** The classifier's ``sample_rate`` is the feature extractor's
(``sampling_rate``: 16 kHz for AST), so decoding, separation and composition follow it with no
configuration. ``hf_text`` has no feature extractor; its ``sample_rate`` (default 16 kHz) only
sets the rate the ignored audio is decoded at.

**Long audio.** An audio model sees at most its window: for AST, ``max_length`` frames of
10 ms (1024 frames: 10.24 s of hop, 164,080 samples at 16 kHz with the 25 ms analysis
window); for Whisper-style extractors, ``n_samples``; others take the whole clip. A longer clip
is cut into consecutive windows, the last one ending at the clip's end (it overlaps the one
before it when the length is not a multiple of the window), each window is classified (or
encoded) and the logits (or embeddings) are averaged with equal weight. ``window_seconds``
overrides the window. Without this, AST's extractor would silently truncate a 3-minute song
to its first 10 s and every later segment would get zero weight.

**Devices and precision.** ``device: auto`` uses CUDA when present; inputs are batched
``batch_size`` windows at a time. ``explainer.mixed_precision=true`` runs the forward passes
under autocast (bf16/fp16) in the predict stage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, ModelWeightsMissing
from .demo_classifier import resolve_device

log = logging.getLogger(__name__)

DEFAULT_AUDIO_ENCODER = "MIT/ast-finetuned-audioset-10-10-0.4593"
DEFAULT_TEXT_ENCODER = "FacebookAI/roberta-large"


# --------------------------------------------------------------------------- loading
def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _quiet_transformers() -> None:
    """No per-load progress bars (a sweep loads the model in every predict job)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def resolve_pretrained(name_or_path: str, what: str, download: bool = False) -> Path:
    """A local folder for a hub id or a folder; raises :class:`ModelWeightsMissing` when the
    id is not in the local cache (and ``download`` is off)."""
    _quiet_transformers()
    if not name_or_path:
        raise ConfigError(f"{what}: no model given (a Hugging Face hub id or a local folder)")
    p = Path(str(name_or_path)).expanduser()
    if p.is_dir():
        return p.resolve()
    if p.is_absolute() or str(name_or_path).startswith((".", "~")) or str(
            name_or_path).count("/") > 1:
        raise ModelWeightsMissing(f"{what}: folder {p} does not exist (a folder written by "
                                  "save_pretrained, or a hub id such as "
                                  f"{DEFAULT_AUDIO_ENCODER})")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path), local_files_only=not download))
    except Exception as exc:  # LocalEntryNotFoundError, offline errors, unknown repo ids
        if download:
            raise ModelWeightsMissing(f"{what}: could not download {name_or_path!r} from the "
                                      f"Hugging Face hub ({type(exc).__name__}: {exc})") from exc
        raise ModelWeightsMissing(
            f"{what} {name_or_path!r} is not in the local Hugging Face cache "
            f"({hf_cache_dir()}). Download it where there is internet with `hf download "
            f"{name_or_path}` (or `huggingface-cli download {name_or_path}`) and copy that cache "
            "here (or set HF_HOME to it), pass a local folder written by save_pretrained, or "
            "set model.download=true to let musiclime fetch it") from exc


def snapshot_digests(path: Path) -> dict[str, str] | None:
    """``{file: blob name}`` for a Hugging Face cache snapshot (``.../snapshots/<commit>/``),
    whose files link to blobs named by their content's sha256 (git sha1 for small files);
    None for any other folder (its files are hashed)."""
    path = Path(path)
    if path.parent.name != "snapshots":
        return None
    out = {}
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        if not f.is_symlink():
            return None
        out[f"{path.parent.parent.name}@{path.name}/{f.relative_to(path)}"] = Path(
            os.readlink(f)).name
    return out


def _set_weights(clf, paths: list[Path]) -> None:
    """What identifies the weights in the prediction cache key (musiclime.identity)."""
    clf.weights_files, clf.weights_digests = [], {}
    for p in paths:
        digests = snapshot_digests(p)
        if digests is None:
            clf.weights_files.append(Path(p))
        else:
            clf.weights_digests.update(digests)


def _class_names(config) -> list[str]:
    n = int(config.num_labels)
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"class_{i}"))) for i in range(n)]


def _as_batch(audio: torch.Tensor | np.ndarray, rate: int) -> torch.Tensor:
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(audio)
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2 or not audio.is_floating_point():
        raise ValueError(f"audio must be a 2-D float tensor [batch, samples] of mono waveforms "
                         f"at {rate} Hz, got {getattr(audio, 'shape', type(audio).__name__)}")
    if audio.shape[1] == 0:
        raise ValueError("audio has zero samples")
    return audio


def _check_lyrics(lyrics: Sequence[str] | str) -> list[str]:
    if isinstance(lyrics, str):
        raise ValueError("lyrics must be a list of strings (one per batch item), got a str")
    return ["" if t is None else str(t) for t in lyrics]


# --------------------------------------------------------------------------- windows
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


class _AudioFrontEnd:
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


def _windowed(frontend: _AudioFrontEnd, audio: torch.Tensor, batch_size: int,
              device: torch.device, fn) -> torch.Tensor:
    """``fn(features) -> [n, D]`` over every window, averaged per clip: ``[batch, D]``."""
    clips, per_clip = frontend.windows(audio)
    outs = []
    with torch.inference_mode():
        for i in range(0, clips.shape[0], batch_size):
            outs.append(fn(frontend.features(clips[i:i + batch_size], device)).float())
    out = torch.cat(outs, dim=0)
    return out.reshape(audio.shape[0], per_clip, -1).mean(dim=1)


# --------------------------------------------------------------------------- hf_audio
class HFAudioClassifier:
    """Any ``AutoModelForAudioClassification`` (with its feature extractor); lyrics ignored.

    >>> clf = HFAudioClassifier.load("path/or/hub-id")      # doctest: +SKIP
    >>> clf.predict_proba(["ignored"], torch.zeros(1, 16000 * 30))  # doctest: +SKIP
    """

    def __init__(self, model, feature_extractor, device: str | torch.device = "auto",
                 batch_size: int = 8, window_seconds: float | None = None):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.frontend = _AudioFrontEnd(feature_extractor, window_seconds)
        self.sample_rate = self.frontend.sample_rate
        self.class_names = _class_names(model.config)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ConfigError(f"model.batch_size must be >= 1, got {batch_size}")
        self.weights_files: list[Path] = []

    @classmethod
    def load(cls, model: str, device: str = "auto", batch_size: int = 8,
             window_seconds: float | None = None, download: bool = False) -> HFAudioClassifier:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        path = resolve_pretrained(model, "model.model (audio classifier)", download)
        clf = cls(AutoModelForAudioClassification.from_pretrained(path),
                  AutoFeatureExtractor.from_pretrained(path), device=device,
                  batch_size=batch_size, window_seconds=window_seconds)
        _set_weights(clf, [path])
        return clf

    def logits(self, audio: torch.Tensor) -> torch.Tensor:
        """Window-averaged logits ``[batch, classes]``."""
        audio = _as_batch(audio, self.sample_rate)
        return _windowed(self.frontend, audio, self.batch_size, self.device,
                         lambda feats: self.model(**feats).logits)

    def predict_proba(self, lyrics: Sequence[str], audio: torch.Tensor) -> np.ndarray:
        logits = self.logits(audio)
        return torch.softmax(logits.double(), dim=1).cpu().numpy()

    def __repr__(self) -> str:
        return (f"HFAudioClassifier({type(self.model).__name__}, classes={self.class_names}, "
                f"sample_rate={self.sample_rate}, window={self.frontend.window}, "
                f"device={self.device})")


# --------------------------------------------------------------------------- hf_text
class _TextFrontEnd:
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


class HFTextClassifier:
    """Any ``AutoModelForSequenceClassification`` (with its tokenizer); audio ignored.

    Lyrics longer than the model's ``max_length`` (RoBERTa: 512 tokens) are truncated, with a
    warning in the log: lyric units past the cut get zero weight.
    """

    def __init__(self, model, tokenizer, device: str | torch.device = "auto",
                 batch_size: int = 16, sample_rate: int = 16000, max_length: int | None = None):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.frontend = _TextFrontEnd(tokenizer, max_length)
        self.class_names = _class_names(model.config)
        self.sample_rate = int(sample_rate)
        self.batch_size = int(batch_size)
        self.weights_files: list[Path] = []

    @classmethod
    def load(cls, model: str, device: str = "auto", batch_size: int = 16,
             sample_rate: int = 16000, max_length: int | None = None,
             download: bool = False) -> HFTextClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_pretrained(model, "model.model (text classifier)", download)
        clf = cls(AutoModelForSequenceClassification.from_pretrained(path),
                  AutoTokenizer.from_pretrained(path), device=device, batch_size=batch_size,
                  sample_rate=sample_rate, max_length=max_length)
        _set_weights(clf, [path])
        return clf

    def logits(self, lyrics: Sequence[str]) -> torch.Tensor:
        texts = _check_lyrics(lyrics)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                feats = self.frontend.tokens(texts[i:i + self.batch_size], self.device)
                outs.append(self.model(**feats).logits.float())
        return torch.cat(outs, dim=0)

    def predict_proba(self, lyrics: Sequence[str], audio: torch.Tensor) -> np.ndarray:
        return torch.softmax(self.logits(lyrics).double(), dim=1).cpu().numpy()

    def __repr__(self) -> str:
        return (f"HFTextClassifier({type(self.model).__name__}, classes={self.class_names}, "
                f"max_length={self.frontend.max_length}, device={self.device})")


# --------------------------------------------------------------------------- hf_fusion
def _pool(outputs, pooling: str, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
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


class HFFusionClassifier:
    """Frozen audio and text encoders, pooled and concatenated, and a trained MLP head.

    Build it with :meth:`load`; ``head=None`` gives the encoders alone (what
    ``musiclime train-classifier`` needs); predicting then asks for a head.
    """

    def __init__(self, audio_model, feature_extractor, text_model, tokenizer,
                 head=None, device: str | torch.device = "auto", batch_size: int = 8,
                 audio_pooling: str = "cls", text_pooling: str = "cls",
                 window_seconds: float | None = None, max_length: int | None = None,
                 encoder_names: tuple[str, str] = ("", "")):
        self.device = resolve_device(device)
        self.audio_model = audio_model.to(self.device).eval()
        self.text_model = text_model.to(self.device).eval()
        self.frontend = _AudioFrontEnd(feature_extractor, window_seconds)
        self.text_frontend = _TextFrontEnd(tokenizer, max_length)
        self.sample_rate = self.frontend.sample_rate
        self.batch_size = int(batch_size)
        self.audio_pooling, self.text_pooling = audio_pooling, text_pooling
        for p in (audio_pooling, text_pooling):
            if p not in ("cls", "mean"):
                raise ConfigError(f"model.audio_pooling/text_pooling must be cls or mean, got {p!r}")
        self.encoder_names = encoder_names
        self.encoder_paths: tuple[Path, ...] = ()
        self.weights_files: list[Path] = []
        self.head = None
        self.class_names: list[str] = []
        if head is not None:
            self.set_head(head)

    @classmethod
    def load(cls, audio_encoder: str = DEFAULT_AUDIO_ENCODER,
             text_encoder: str = DEFAULT_TEXT_ENCODER, head: str | None = None,
             device: str = "auto", batch_size: int = 8, audio_pooling: str = "cls",
             text_pooling: str = "cls", window_seconds: float | None = None,
             max_length: int | None = None, download: bool = False) -> HFFusionClassifier:
        from transformers import AutoFeatureExtractor, AutoModel, AutoTokenizer

        apath = resolve_pretrained(audio_encoder, "model.audio_encoder", download)
        tpath = resolve_pretrained(text_encoder, "model.text_encoder", download)
        clf = cls(AutoModel.from_pretrained(apath), AutoFeatureExtractor.from_pretrained(apath),
                  AutoModel.from_pretrained(tpath, add_pooling_layer=False)
                  if _accepts_pooling_flag(tpath) else AutoModel.from_pretrained(tpath),
                  AutoTokenizer.from_pretrained(tpath), device=device,
                  batch_size=batch_size, audio_pooling=audio_pooling, text_pooling=text_pooling,
                  window_seconds=window_seconds, max_length=max_length,
                  encoder_names=(str(audio_encoder), str(text_encoder)))
        clf.encoder_paths = (apath, tpath)
        paths = [apath, tpath]
        if head is not None:
            from .head import load_head

            hdir = Path(str(head)).expanduser()
            clf.set_head(load_head(hdir))
            paths.append(hdir.resolve())
        _set_weights(clf, paths)
        return clf

    # ------------------------------------------------------------------ encoders
    @property
    def audio_dim(self) -> int:
        return int(self.audio_model.config.hidden_size)

    @property
    def text_dim(self) -> int:
        return int(self.text_model.config.hidden_size)

    def encoder_identity(self) -> dict:
        """What the embeddings depend on (a head records it; train-classifier keys its cache)."""
        from .identity import code_fingerprint, file_digest

        files = {}
        for root in getattr(self, "encoder_paths", ()):
            digests = snapshot_digests(root)
            if digests is not None:
                files.update(digests)
                continue
            for f in sorted(p for p in Path(root).rglob("*") if p.is_file()):
                if f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model"):
                    files[f"{Path(root).name}/{f.relative_to(root)}"] = file_digest(f)[:16]
        return {"audio_encoder": self.encoder_names[0], "text_encoder": self.encoder_names[1],
                "audio_pooling": self.audio_pooling, "text_pooling": self.text_pooling,
                "window": self.frontend.window, "max_length": self.text_frontend.max_length,
                "sample_rate": self.sample_rate, "files": files,
                "code": code_fingerprint(__name__ + ".HFFusionClassifier")}

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Pooled audio embeddings ``[batch, audio_dim]``, averaged over windows."""
        audio = _as_batch(audio, self.sample_rate)
        return _windowed(self.frontend, audio, self.batch_size, self.device,
                         lambda feats: _pool(self.audio_model(**feats), self.audio_pooling))

    def encode_lyrics(self, lyrics: Sequence[str]) -> torch.Tensor:
        """Pooled text embeddings ``[batch, text_dim]``."""
        texts = _check_lyrics(lyrics)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                feats = self.text_frontend.tokens(texts[i:i + self.batch_size], self.device)
                out = self.text_model(**feats)
                outs.append(_pool(out, self.text_pooling, feats.get("attention_mask")).float())
        return torch.cat(outs, dim=0)

    # ------------------------------------------------------------------ head
    def set_head(self, head) -> None:
        if head.audio_dim != self.audio_dim or head.text_dim != self.text_dim:
            raise ConfigError(
                f"the head was trained on {head.audio_dim}+{head.text_dim}-dim embeddings, but "
                f"these encoders give {self.audio_dim}+{self.text_dim}; train a head for them "
                "with `musiclime train-classifier model=hf_fusion ... --out DIR`")
        self.head = head.to(self.device).eval()
        self.class_names = list(head.class_names)

    @property
    def net(self) -> torch.nn.Module:
        """The three networks as one Module, ``audio`` (the audio encoder), ``lyrics`` (the
        text encoder) and ``head``, in that order: what ``metrics.sanity=true`` re-initialises
        layer by layer from the output down (:mod:`musiclime.metrics.sanity`), the head first,
        then each encoder from its last layer to its embeddings, as for the demo classifier."""
        return torch.nn.ModuleDict({"audio": self.audio_model, "lyrics": self.text_model,
                                    "head": self._need_head()})

    def _need_head(self):
        if self.head is None:
            raise ConfigError("model=hf_fusion has no head: train one with `musiclime "
                              "train-classifier model=hf_fusion dataset.manifest=... --out DIR`, "
                              "then pass model.head=DIR")
        return self.head

    def predict_from_embeddings(self, audio_emb: torch.Tensor,
                                lyrics_emb: torch.Tensor) -> np.ndarray:
        """Class probabilities; a batch of 1 on either side is broadcast."""
        head = self._need_head()
        a, t = audio_emb.to(self.device).float(), lyrics_emb.to(self.device).float()
        n = max(a.shape[0], t.shape[0])
        if a.shape[0] not in (1, n) or t.shape[0] not in (1, n):
            raise ValueError(f"embedding batches differ: audio {a.shape[0]}, lyrics {t.shape[0]}")
        with torch.inference_mode():
            logits = head(a.expand(n, -1), t.expand(n, -1))
        return torch.softmax(logits.double(), dim=1).cpu().numpy()

    def predict_proba(self, lyrics: Sequence[str], audio: torch.Tensor) -> np.ndarray:
        self._need_head()
        lyrics = _check_lyrics(lyrics)
        audio = _as_batch(audio, self.sample_rate)
        if len(lyrics) != audio.shape[0]:
            raise ValueError(f"got {len(lyrics)} lyrics for {audio.shape[0]} audio clips")
        return self.predict_from_embeddings(self.encode_audio(audio), self.encode_lyrics(lyrics))

    def __repr__(self) -> str:
        return (f"HFFusionClassifier(audio={self.encoder_names[0]!r}, "
                f"text={self.encoder_names[1]!r}, head={'yes' if self.head else 'none'}, "
                f"sample_rate={self.sample_rate}, device={self.device})")


def _accepts_pooling_flag(path: Path) -> bool:
    """BERT-family encoders take ``add_pooling_layer`` (RoBERTa's pooler is untrained)."""
    import json

    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return cfg.get("model_type") in {"roberta", "bert", "xlm-roberta", "camembert"}
