"""Source separators: ``separate(audio, sample_rate) -> {stem: waveform}``.

Implementations:

- :class:`OpenUnmixSeparator`: Open-Unmix through openunmix's own loader, from a pretrained
  name (``umxhq``, ``umxl``; weights must be in the torch hub cache, since nothing is
  downloaded here) or a local model directory in openunmix's format (``separator.json``,
  ``<target>.json``, ``<target>.pth``). Audio is resampled to the model's rate and back. Long
  songs are separated in overlapping chunks stitched by a crossfade (:func:`chunk_plan`,
  :func:`crossfade_ramp`), so memory is set by the chunk length, not by the song's.
- :class:`OracleSeparator`: the ground-truth stems shipped with a dataset.

Separation does not depend on any explainer parameter, so the workflow runs it once per
(song, separator) and caches the stems.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError, SeparatorWeightsMissing
from ..io.audio import load_audio, resample

log = logging.getLogger(__name__)

STEMS = ("vocals", "drums", "bass", "other")
PRETRAINED = ("umxhq", "umxl", "umx", "umxse")


@runtime_checkable
class Separator(Protocol):
    """Anything that splits a mono waveform into named stems at the same rate and length
    (sample-aligned with the input: sample ``i`` of a stem belongs to sample ``i`` of the mix)."""

    stems: tuple[str, ...]

    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]: ...

    @property
    def identity(self) -> str: ...


def default_separator_dir() -> Path:
    """The project's own small Open-Unmix model, trained on the demo corpus and shipped."""
    return Path(__file__).resolve().parent.parent / "assets" / "demo_separator"


def _resolve_device(device: str | None):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _hub_checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


class OpenUnmixSeparator:
    """Open-Unmix, loaded by ``openunmix.utils.load_separator`` and run on mono audio.

    Parameters
    ----------
    model:
        A pretrained name (``umxhq``, ``umxl``) or a local model directory in openunmix's format.
        ``None`` or ``"demo"`` selects the project's shipped demo separator.
    targets:
        Stems to estimate (the model's targets). Default: vocals, drums, bass, other.
    niter:
        Wiener/EM post-filter iterations (openunmix's ``niter``); 0 uses the raw soft masks.
    device:
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    chunk_seconds:
        Separate songs longer than this in overlapping chunks of this length (seconds, overlap
        included); ``None`` separates every song in one pass. Open-Unmix's memory grows with
        the length it sees (a 10-minute song in one pass peaks at about 4 GB on top of the
        process), so chunks bound it. Songs no longer than one chunk are separated in one
        pass, bit for bit as with ``None``.
    chunk_overlap_seconds:
        How much consecutive chunks share; the crossfade spans the whole overlap. It gives
        each chunk's recurrent layers context before the crossfade takes over.

    Stitching (see :func:`chunk_plan` and :func:`crossfade_ramp`): at the model's rate, chunk
    ``k`` covers ``[k*H, min(k*H + C, n))`` with hop ``H = C - O``, where the chunk length
    ``C`` and the overlap ``O`` are rounded to whole STFT hops so that every chunk's frames
    lie on the one-pass frame grid. The last chunk ends at ``n`` and is longer than ``O``.
    Where chunks ``k`` and ``k+1`` overlap, chunk ``k+1`` is weighted by the raised-cosine
    ramp ``r[i] = sin^2(pi/2 * (i + 0.5) / O)`` (``i = 0..O-1``) and chunk ``k`` by
    ``1 - r[i]``, both in float32, where ``(1 - r) + r == 1`` exactly; elsewhere the one
    chunk that covers a sample has weight 1. So the weights sum to exactly 1 at every sample,
    each sample's estimate is a convex mix of the chunk estimates that cover it, and the
    stems keep the input's length and stay sample-aligned with it. The ramp is close to 0 at
    each chunk's edges, where a chunk lacks context.
    """

    def __init__(self, model: str | os.PathLike | None = None,
                 targets: tuple[str, ...] | list[str] = STEMS, niter: int = 1,
                 wiener_win_len: int | None = 300, device: str | None = "auto",
                 chunk_seconds: float | None = 30.0, chunk_overlap_seconds: float = 4.0):
        if model in (None, "demo"):
            model = default_separator_dir()
        self.model = str(model)
        self.stems = tuple(targets)
        self.niter = int(niter)
        self.wiener_win_len = wiener_win_len
        self.device = _resolve_device(device)
        if chunk_seconds is not None:
            if not isinstance(chunk_seconds, (int, float)) or isinstance(chunk_seconds, bool) \
                    or chunk_seconds <= 0:
                raise ConfigError(f"separator.chunk_seconds={chunk_seconds!r}: must be a number "
                                  "of seconds > 0, or null to separate in one pass")
            chunk_seconds = float(chunk_seconds)
        if not isinstance(chunk_overlap_seconds, (int, float)) \
                or isinstance(chunk_overlap_seconds, bool) or chunk_overlap_seconds <= 0 \
                or (chunk_seconds is not None and 2 * chunk_overlap_seconds > chunk_seconds):
            raise ConfigError(
                f"separator.chunk_overlap_seconds={chunk_overlap_seconds!r}: must be a number "
                f"of seconds > 0 and at most half of separator.chunk_seconds ({chunk_seconds})")
        self.chunk_seconds = chunk_seconds
        self.chunk_overlap_seconds = float(chunk_overlap_seconds)
        self._separator = None

    # --- loading -----------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return Path(self.model).expanduser().exists()

    def _check_local_dir(self) -> None:
        root = Path(self.model).expanduser()
        if not root.is_dir():
            raise SeparatorWeightsMissing(
                f"separator.model={self.model}: {root} is a file; give the Open-Unmix model "
                "folder that holds it (separator.json, <target>.json, <target>.pth)")
        missing = [name for name in ["separator.json"]
                   + [f"{t}.json" for t in self.stems] if not (root / name).is_file()]
        missing += [f"{t}.pth" for t in self.stems if not any(root.glob(f"{t}*.pth"))]
        if missing:
            raise SeparatorWeightsMissing(
                f"separator.model={self.model}: the Open-Unmix model directory {root} lacks "
                f"{', '.join(missing)}. A local model directory needs separator.json, "
                f"<target>.json and <target>.pth for every target ({', '.join(self.stems)}), as "
                "written by openunmix's training script; or set separator.model to a "
                f"pretrained name ({', '.join(PRETRAINED)}) or demo."
            )

    def load(self):
        """Load (once) and return the ``openunmix.model.Separator``."""
        if self._separator is not None:
            return self._separator
        from openunmix import utils as umx_utils

        if self.is_local:
            self._check_local_dir()
        elif self.model not in PRETRAINED:
            raise SeparatorWeightsMissing(
                f"separator model {self.model!r} is neither a local directory nor a pretrained "
                f"Open-Unmix name ({', '.join(PRETRAINED)}). Give a path to a directory with "
                "separator.json, <target>.json and <target>.pth, or a pretrained name."
            )
        try:
            separator = umx_utils.load_separator(
                model_str_or_path=self.model, targets=list(self.stems), niter=self.niter,
                residual=False, wiener_win_len=self.wiener_win_len, device=self.device,
                pretrained=True,
            )
        except SeparatorWeightsMissing:
            raise
        except Exception as exc:
            if self.is_local:
                raise SeparatorWeightsMissing(
                    f"cannot load the Open-Unmix model directory {self.model}: {exc}"
                ) from exc
            raise SeparatorWeightsMissing(
                f"the pretrained Open-Unmix weights {self.model!r} are not available offline "
                f"({type(exc).__name__}: {exc}). openunmix downloads them from Zenodo into the "
                f"torch hub cache ({_hub_checkpoint_dir()}), and this machine cannot reach it. "
                f"Either run `python -c \"import openunmix; openunmix.{self.model}()\"` on a "
                "machine with internet and copy its torch hub checkpoints folder to the path "
                "above (or set TORCH_HOME), or set separator.model to a local model directory "
                "(separator.json, <target>.json, <target>.pth). The shipped offline default is "
                "separator=demo."
            ) from exc
        separator.freeze()
        separator.to(self.device)
        self._separator = separator
        return separator

    @property
    def sample_rate(self) -> int:
        if self.is_local:
            self._check_local_dir()  # name the config key and every missing file
            cfg = json.loads((Path(self.model).expanduser() / "separator.json").read_text())
            return int(cfg["sample_rate"])
        return 44100

    @property
    def identity(self) -> str:
        """A short fingerprint of the weights: stems depend on nothing else."""
        h = hashlib.sha256()
        h.update(f"openunmix|{self.stems}|niter={self.niter}|wwl={self.wiener_win_len}".encode())
        if self.chunk_seconds is not None:  # one-pass identities stay what they were
            h.update(f"|chunk={self.chunk_seconds:g}|overlap={self.chunk_overlap_seconds:g}"
                     .encode())
        if self.is_local:
            root = Path(self.model).expanduser()
            for name in sorted(p.name for p in root.glob("*.pth")):
                h.update(name.encode())
                h.update((root / name).read_bytes())
        else:
            h.update(self.model.encode())
        return h.hexdigest()[:12]

    # --- separation --------------------------------------------------------------------------
    def chunk_samples(self, model_rate: int, hop: int = 1) -> tuple[int, int] | None:
        """``(chunk, overlap)`` in samples at ``model_rate``, whole multiples of ``hop`` (the
        STFT hop); ``None`` when chunking is off."""
        if self.chunk_seconds is None:
            return None
        overlap = max(1, round(self.chunk_overlap_seconds * model_rate / hop)) * hop
        step = max(1, round((self.chunk_seconds - self.chunk_overlap_seconds) * model_rate
                            / hop)) * hop
        return step + overlap, overlap

    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Stems of mono ``audio`` at ``sample_rate``: float32, the input's length and rate."""
        separator = self.load()
        model_rate = int(separator.sample_rate.item() if hasattr(separator.sample_rate, "item")
                         else separator.sample_rate)
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"separate() expects mono audio (samples,), got shape {audio.shape}")
        n = audio.shape[0]
        x = resample(audio, sample_rate, model_rate)
        hop = int(getattr(getattr(separator, "stft", None), "n_hop", 1) or 1)
        sizes = self.chunk_samples(model_rate, hop)
        if sizes is None or x.shape[0] <= sizes[0]:
            est = self._separate_pass(separator, x)
        else:
            chunk, overlap = sizes
            est = np.zeros((len(self.stems), x.shape[0]), dtype=np.float32)
            ramp = crossfade_ramp(overlap)
            fade_out = np.float32(1) - ramp
            plan = chunk_plan(x.shape[0], chunk, overlap)
            log.info("separating %.0f s in %d chunks of %.0f s (overlap %.1f s)",
                     x.shape[0] / model_rate, len(plan), chunk / model_rate,
                     overlap / model_rate)
            for k, (start, end) in enumerate(plan):
                part = self._separate_pass(separator, x[start:end])
                if k > 0:
                    part[:, :overlap] *= ramp
                if k < len(plan) - 1:
                    part[:, -overlap:] *= fade_out
                est[:, start:end] += part
        del x
        stems = {}
        for i, name in enumerate(self.stems):
            y = resample(est[i], model_rate, sample_rate)
            stems[name] = fit_length(y, n)
        return stems

    def _separate_pass(self, separator, x: np.ndarray) -> np.ndarray:
        """One Open-Unmix pass over mono ``x`` (at the model's rate): ``(targets, len(x))``."""
        import torch

        # Open-Unmix works on (nb_samples, nb_channels, time). A stereo model gets the mono input
        # duplicated and its estimates averaged back to mono; a mono model (nb_channels=1) gets
        # one channel: duplicated channels make its Wiener/EM post-filter (niter >= 1) invert a
        # singular covariance and return NaN.
        mono_model = bool(getattr(getattr(separator, "complexnorm", None), "mono", False))
        batch = torch.from_numpy(np.stack([x] if mono_model else [x, x])[None]).to(self.device)
        with torch.inference_mode():
            estimates = separator(batch)  # (1, targets, channels, time)
            if not torch.isfinite(estimates).all():
                # Identical stereo channels make the EM post-filter's covariance singular in
                # float32 now and then; the same filter in float64 is stable.
                log.warning("Open-Unmix returned NaN in float32 (niter=%d); separating again in "
                            "float64", self.niter)
                separator.to(torch.float64)
                try:
                    estimates = separator(batch.double())
                finally:
                    separator.to(torch.float32)
            if not torch.isfinite(estimates).all():
                raise ValueError(f"Open-Unmix ({self.model}) returned NaN stems even in float64; "
                                 "set separator.niter=0 to skip the Wiener post-filter")
        return estimates[0].mean(dim=1).cpu().numpy().astype(np.float32)


def chunk_plan(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of the chunks that cover ``[0, n)``.

    Chunk ``k`` starts at ``k * (chunk - overlap)`` and is ``chunk`` long; the last one ends at
    ``n``. Consecutive chunks share exactly ``overlap`` samples, and every chunk is longer than
    ``overlap``, so no sample is covered by more than two chunks.
    """
    if not 0 < overlap <= chunk - overlap:
        raise ValueError(f"overlap ({overlap}) must be > 0 and at most half the chunk "
                         f"({chunk})")
    step = chunk - overlap
    plan, start = [], 0
    while True:
        end = min(start + chunk, n)
        plan.append((start, end))
        if end >= n:
            return plan
        start += step


def crossfade_ramp(overlap: int) -> np.ndarray:
    """Fade-in weights of the later chunk over an overlap of ``overlap`` samples (float32):
    ``r[i] = sin^2(pi/2 * (i + 0.5) / overlap)``. The earlier chunk gets ``1 - r``; in float32
    ``(1 - r) + r`` is exactly 1 for every ``r`` in [0, 1]."""
    i = np.arange(overlap, dtype=np.float64)
    return (np.sin(0.5 * np.pi * (i + 0.5) / overlap) ** 2).astype(np.float32)


class OracleSeparator:
    """Ground-truth stems from disk: ``<stems_dir>/<stem>.wav`` for every stem.

    ``stems_dir`` is given per song (datasets ship one folder of stems per song).
    """

    #: reads each song's stems from its ``stems_dir`` instead of computing them
    uses_stems_dir = True

    def __init__(self, stems: tuple[str, ...] | list[str] = STEMS):
        self.stems = tuple(stems)

    @property
    def identity(self) -> str:
        return "oracle"

    def read_stem_files(self, stems_dir: str | os.PathLike, sample_rate: int,
                        length: int | None = None) -> dict[str, np.ndarray]:
        """The ground-truth ``<stem>.wav`` files of ``stems_dir``, decoded at ``sample_rate``
        (and trimmed or padded to ``length``). Not :meth:`musiclime.workflow.files.Stems.load`,
        which reads a separate stage's output."""
        stems_dir = Path(stems_dir)
        out = {}
        for name in self.stems:
            path = stems_dir / f"{name}.wav"
            if not path.is_file():
                raise FileNotFoundError(
                    f"oracle separator: ground-truth stem {path} is missing; the dataset must "
                    f"ship {', '.join(s + '.wav' for s in self.stems)} in each song's stems folder"
                )
            y, _ = load_audio(path, sample_rate)
            out[name] = y if length is None else fit_length(y, length)
        return out

    def separate(self, audio: np.ndarray, sample_rate: int, stems_dir=None) -> dict[str, np.ndarray]:
        if stems_dir is None:
            raise ValueError("the oracle separator needs the song's stems_dir")
        return self.read_stem_files(stems_dir, sample_rate, length=len(audio))


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to ``n`` samples (resampling round trips can be off by a few)."""
    if y.shape[0] >= n:
        return np.ascontiguousarray(y[:n], dtype=np.float32)
    return np.pad(y, (0, n - y.shape[0])).astype(np.float32)


def make_separator(kind: str = "openunmix", **kwargs) -> Separator:
    """Build a separator from a config entry (``kind``: openunmix or oracle)."""
    if kind == "openunmix":
        return OpenUnmixSeparator(**kwargs)
    if kind == "oracle":
        return OracleSeparator(**{k: v for k, v in kwargs.items() if k == "stems"})
    raise ValueError(f"unknown separator kind {kind!r}; use 'openunmix' or 'oracle'")
