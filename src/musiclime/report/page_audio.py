"""The explanation page's audio (:mod:`musiclime.report.page`): every stem, the mix and the
top-k sum as data URIs, one mono clip each, resampled to the page's rate and encoded block by
block (Ogg Vorbis, or 16-bit WAV where libsndfile cannot write Vorbis)."""

from __future__ import annotations

import base64
import io

import numpy as np
import soundfile as sf

from ..core.explanation import Explanation
from ..io.audio import encode_audio, resample
from . import listen

PAGE_CODECS = ("vorbis", "wav")
_MIME = {"vorbis": "audio/ogg", "wav": "audio/wav"}
_FORMAT = {"vorbis": ("OGG", "VORBIS"), "wav": ("WAV", "PCM_16")}


def vorbis_available() -> bool:
    return "VORBIS" in sf.available_subtypes("OGG")


def audio_data_uri(audio: np.ndarray, sample_rate: int, codec: str = "vorbis") -> str:
    """``data:audio/...;base64,...`` of a mono clip (clipped to [-1, 1])."""
    if codec not in PAGE_CODECS:
        raise ValueError(f"codec must be one of {PAGE_CODECS}, got {codec!r}")
    y = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    buf = io.BytesIO()
    # block by block: one libsndfile call with a whole long stem crashes the Vorbis encoder
    encode_audio(buf, y, sample_rate, *_FORMAT[codec])
    return f"data:{_MIME[codec]};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def page_clips(exp: Explanation, song, label: int, listen_top_k: int, codec: str,
               audio_rate: int) -> tuple[dict[str, str], dict]:
    """Data URIs of every stem, the mix and the top-k sum, and what the top-k clip holds
    (its component indices and the span in seconds it was trimmed to)."""
    fac = song.audio
    if fac.n_components != exp.features.n_audio:
        raise ValueError(f"the song's factorization has {fac.n_components} audio components "
                         f"but the explanation was made on {exp.features.n_audio}")
    rate = min(int(fac.sample_rate), int(audio_rate))

    def uri(y: np.ndarray) -> str:
        return audio_data_uri(resample(y, fac.sample_rate, rate), rate, codec)

    # the stems and the mix are the same for every explanation of a song: a fit job that
    # writes the pages of a whole sweep encodes them once (cached on the factorization)
    cache = fac.__dict__.setdefault("_page_clip_cache", {})
    key = (rate, codec)
    if key not in cache:
        stems = fac.feature_stems
        cache[key] = {f"stem-{i}": uri(stems[i]) for i in range(len(fac.feature_stem_names))}
        cache[key]["mix"] = uri(fac.mix)
    clips = dict(cache[key])
    top = listen.top_audio_components(exp, listen_top_k, label)
    topk = {"components": top, "start": 0.0, "end": 0.0}
    if top:
        spans = [fac.component_info(c)[2:] for c in top]
        a, b = min(s for s, _ in spans), max(e for _, e in spans)
        y = listen.listenable_audio(exp, fac, listen_top_k, label)[a:b]
        clips["topk"] = uri(y)
        topk.update(start=a / fac.sample_rate, end=b / fac.sample_rate)
    return clips, topk
