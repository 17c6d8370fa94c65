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
  once (:func:`musiclime.core.inference.predict_masks`).

**Models** are given by hub id or by a local folder (``save_pretrained``). Nothing is
downloaded unless ``download: true``: an experiment should not silently pick up whatever a hub
repo holds today, and the machines that run sweeps often have no internet. A hub id that is not
in the local Hugging Face cache gives :class:`~musiclime.errors.ModelWeightsMissing` with the
command that downloads it. The weights' files enter the prediction cache key
(:mod:`musiclime.models.identity`) through ``weights_files``
(:mod:`musiclime.models.hf_loading`).

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

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .demo_classifier import resolve_device
from .hf_frontend import (  # noqa: F401 (ast_fbank, extractor_window, window_starts: public here)
    AudioFrontEnd,
    TextFrontEnd,
    WindowCache,
    as_batch,
    ast_fbank,
    check_lyrics,
    extractor_window,
    pool,
    window_starts,
    windowed,
)
from .hf_loading import (  # noqa: F401 (hf_cache_dir, snapshot_digests...: public here)
    DEFAULT_AUDIO_ENCODER,
    DEFAULT_TEXT_ENCODER,
    accepts_pooling_flag,
    hf_cache_dir,
    label_names,
    resolve_pretrained,
    set_weights,
    snapshot_digests,
)

#: the modules these classifiers' predictions depend on besides this one: their sources enter
#: the code fingerprint of a ``musiclime.models.hf.*`` target (:mod:`musiclime.models.identity`)
CODE_MODULES = ("musiclime.models.hf_frontend", "musiclime.models.hf_loading")


# --------------------------------------------------------------------------- hf_audio
class HFAudioClassifier:
    """Any ``AutoModelForAudioClassification`` (with its feature extractor); lyrics ignored.

    >>> clf = HFAudioClassifier.load("path/or/hub-id")      # doctest: +SKIP
    >>> clf.predict_proba(["ignored"], torch.zeros(1, 16000 * 30))  # doctest: +SKIP
    """

    def __init__(self, model, feature_extractor, device: str | torch.device = "auto",
                 batch_size: int = 8, window_seconds: float | None = None,
                 window_cache: bool = True):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.frontend = AudioFrontEnd(feature_extractor, window_seconds)
        self.window_cache = WindowCache() if window_cache else None
        self.sample_rate = self.frontend.sample_rate
        self.class_names = label_names(model.config)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ConfigError(f"model.batch_size must be >= 1, got {batch_size}")
        self.weights_files: list[Path] = []

    @classmethod
    def load(cls, model: str, device: str = "auto", batch_size: int = 8,
             window_seconds: float | None = None, download: bool = False,
             window_cache: bool = True) -> HFAudioClassifier:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        path = resolve_pretrained(model, "model.model (audio classifier)", download)
        clf = cls(AutoModelForAudioClassification.from_pretrained(path),
                  AutoFeatureExtractor.from_pretrained(path), device=device,
                  batch_size=batch_size, window_seconds=window_seconds,
                  window_cache=window_cache)
        set_weights(clf, [path])
        return clf

    def logits(self, audio: torch.Tensor) -> torch.Tensor:
        """Window-averaged logits ``[batch, classes]``."""
        audio = as_batch(audio, self.sample_rate)
        return windowed(self.frontend, audio, self.batch_size, self.device,
                        lambda feats: self.model(**feats).logits, self.window_cache)

    def reset_cache(self) -> None:
        """Forget the windows seen so far (:class:`~.hf_frontend.WindowCache`)."""
        if self.window_cache is not None:
            self.window_cache.reset()

    def predict_proba(self, lyrics: Sequence[str], audio: torch.Tensor) -> np.ndarray:
        logits = self.logits(audio)
        return torch.softmax(logits.double(), dim=1).cpu().numpy()

    def __repr__(self) -> str:
        return (f"HFAudioClassifier({type(self.model).__name__}, classes={self.class_names}, "
                f"sample_rate={self.sample_rate}, window={self.frontend.window}, "
                f"device={self.device})")


# --------------------------------------------------------------------------- hf_text
class HFTextClassifier:
    """Any ``AutoModelForSequenceClassification`` (with its tokenizer); audio ignored.

    Lyrics longer than the model's ``max_length`` (RoBERTa: 512 tokens) are truncated, with a
    warning in the log: lyric units past the cut get zero weight.
    """

    def __init__(self, model, tokenizer, device: str | torch.device = "auto",
                 batch_size: int = 16, sample_rate: int = 16000, max_length: int | None = None):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.frontend = TextFrontEnd(tokenizer, max_length)
        self.class_names = label_names(model.config)
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
        set_weights(clf, [path])
        return clf

    def logits(self, lyrics: Sequence[str]) -> torch.Tensor:
        texts = check_lyrics(lyrics)
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
class HFFusionClassifier:
    """Frozen audio and text encoders, pooled and concatenated, and a trained MLP head.

    Build it with :meth:`load`; ``head=None`` gives the encoders alone (what
    ``musiclime train-classifier`` needs); predicting then asks for a head.
    """

    def __init__(self, audio_model, feature_extractor, text_model, tokenizer,
                 head=None, device: str | torch.device = "auto", batch_size: int = 8,
                 audio_pooling: str = "cls", text_pooling: str = "cls",
                 window_seconds: float | None = None, max_length: int | None = None,
                 encoder_names: tuple[str, str] = ("", ""), window_cache: bool = True):
        self.device = resolve_device(device)
        self.audio_model = audio_model.to(self.device).eval()
        self.text_model = text_model.to(self.device).eval()
        self.frontend = AudioFrontEnd(feature_extractor, window_seconds)
        self.window_cache = WindowCache() if window_cache else None
        self.text_frontend = TextFrontEnd(tokenizer, max_length)
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
             max_length: int | None = None, download: bool = False,
             window_cache: bool = True) -> HFFusionClassifier:
        from transformers import AutoFeatureExtractor, AutoModel, AutoTokenizer

        apath = resolve_pretrained(audio_encoder, "model.audio_encoder", download)
        tpath = resolve_pretrained(text_encoder, "model.text_encoder", download)
        clf = cls(AutoModel.from_pretrained(apath), AutoFeatureExtractor.from_pretrained(apath),
                  AutoModel.from_pretrained(tpath, add_pooling_layer=False)
                  if accepts_pooling_flag(tpath) else AutoModel.from_pretrained(tpath),
                  AutoTokenizer.from_pretrained(tpath), device=device,
                  batch_size=batch_size, audio_pooling=audio_pooling, text_pooling=text_pooling,
                  window_seconds=window_seconds, max_length=max_length,
                  encoder_names=(str(audio_encoder), str(text_encoder)),
                  window_cache=window_cache)
        clf.encoder_paths = (apath, tpath)
        paths = [apath, tpath]
        if head is not None:
            from .head import load_head

            hdir = Path(str(head)).expanduser()
            clf.set_head(load_head(hdir))
            paths.append(hdir.resolve())
        set_weights(clf, paths)
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
        audio = as_batch(audio, self.sample_rate)
        return windowed(self.frontend, audio, self.batch_size, self.device,
                        lambda feats: pool(self.audio_model(**feats), self.audio_pooling),
                        self.window_cache)

    def reset_cache(self) -> None:
        """Forget the windows seen so far (:class:`~.hf_frontend.WindowCache`)."""
        if self.window_cache is not None:
            self.window_cache.reset()

    def encode_lyrics(self, lyrics: Sequence[str]) -> torch.Tensor:
        """Pooled text embeddings ``[batch, text_dim]``."""
        texts = check_lyrics(lyrics)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                feats = self.text_frontend.tokens(texts[i:i + self.batch_size], self.device)
                out = self.text_model(**feats)
                outs.append(pool(out, self.text_pooling, feats.get("attention_mask")).float())
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
        lyrics = check_lyrics(lyrics)
        audio = as_batch(audio, self.sample_rate)
        if len(lyrics) != audio.shape[0]:
            raise ValueError(f"got {len(lyrics)} lyrics for {audio.shape[0]} audio clips")
        return self.predict_from_embeddings(self.encode_audio(audio), self.encode_lyrics(lyrics))

    def __repr__(self) -> str:
        return (f"HFFusionClassifier(audio={self.encoder_names[0]!r}, "
                f"text={self.encoder_names[1]!r}, head={'yes' if self.head else 'none'}, "
                f"sample_rate={self.sample_rate}, device={self.device})")

