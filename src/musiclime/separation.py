"""Source separators: ``separate(audio, sample_rate) -> {stem: waveform}``.

Implementations:

- :class:`OpenUnmixSeparator`: Open-Unmix through openunmix's own loader, from a pretrained
  name (``umxhq``, ``umxl``; weights must be in the torch hub cache, since nothing is
  downloaded here) or a local model directory in openunmix's format (``separator.json``,
  ``<target>.json``, ``<target>.pth``). Audio is resampled to the model's rate and back.
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

from .audio import load_audio, resample
from .errors import SeparatorWeightsMissing

log = logging.getLogger(__name__)

STEMS = ("vocals", "drums", "bass", "other")
PRETRAINED = ("umxhq", "umxl", "umx", "umxse")


@runtime_checkable
class Separator(Protocol):
    """Anything that splits a mono waveform into named stems at the same rate and length."""

    stems: tuple[str, ...]

    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]: ...

    @property
    def identity(self) -> str: ...


def default_separator_dir() -> Path:
    """The project's own small Open-Unmix model, trained on the demo corpus and shipped."""
    return Path(__file__).resolve().parent / "assets" / "demo_separator"


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
    """

    def __init__(self, model: str | os.PathLike | None = None,
                 targets: tuple[str, ...] | list[str] = STEMS, niter: int = 1,
                 wiener_win_len: int | None = 300, device: str | None = "auto"):
        if model in (None, "demo"):
            model = default_separator_dir()
        self.model = str(model)
        self.stems = tuple(targets)
        self.niter = int(niter)
        self.wiener_win_len = wiener_win_len
        self.device = _resolve_device(device)
        self._separator = None

    # --- loading -----------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return Path(self.model).expanduser().exists()

    def _check_local_dir(self) -> None:
        root = Path(self.model).expanduser()
        missing = [name for name in ["separator.json"]
                   + [f"{t}.json" for t in self.stems] if not (root / name).is_file()]
        missing += [f"{t}.pth" for t in self.stems if not any(root.glob(f"{t}*.pth"))]
        if missing:
            raise SeparatorWeightsMissing(
                f"Open-Unmix model directory {root} lacks {', '.join(missing)}. A local model "
                "directory needs separator.json, <target>.json and <target>.pth for every target "
                f"({', '.join(self.stems)}), as written by openunmix's training script."
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
            cfg = json.loads((Path(self.model).expanduser() / "separator.json").read_text())
            return int(cfg["sample_rate"])
        return 44100

    @property
    def identity(self) -> str:
        """A short fingerprint of the weights: stems depend on nothing else."""
        h = hashlib.sha256()
        h.update(f"openunmix|{self.stems}|niter={self.niter}|wwl={self.wiener_win_len}".encode())
        if self.is_local:
            root = Path(self.model).expanduser()
            for name in sorted(p.name for p in root.glob("*.pth")):
                h.update(name.encode())
                h.update((root / name).read_bytes())
        else:
            h.update(self.model.encode())
        return h.hexdigest()[:12]

    # --- separation --------------------------------------------------------------------------
    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        import torch

        separator = self.load()
        model_rate = int(separator.sample_rate.item() if hasattr(separator.sample_rate, "item")
                         else separator.sample_rate)
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"separate() expects mono audio (samples,), got shape {audio.shape}")
        n = audio.shape[0]
        x = resample(audio, sample_rate, model_rate)
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
        est = estimates[0].mean(dim=1).cpu().numpy().astype(np.float32)
        stems = {}
        for i, name in enumerate(self.stems):
            y = resample(est[i], model_rate, sample_rate)
            stems[name] = fit_length(y, n)
        return stems


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

    def load_stems(self, stems_dir: str | os.PathLike, sample_rate: int,
                   length: int | None = None) -> dict[str, np.ndarray]:
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
        return self.load_stems(stems_dir, sample_rate, length=len(audio))


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
