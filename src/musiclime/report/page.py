"""One explanation as a self-contained HTML page: ``explanation.html`` next to its JSON.

What the page shows, for the explained label (the predicted one unless told otherwise):

- the modality bar (:func:`~musiclime.report.page_sections.modality_bar`): what the audio does
  alone, the lyrics alone and the two together in the exact audio x lyrics game of the explained
  label, with each modality's Shapley value and share (:mod:`musiclime.core.modality`);
- the prediction (every class's probability) and the fit: weighted R² of the surrogate
  in-sample and held-out (never the first alone, :mod:`musiclime.core.fit_quality`), intercept,
  local prediction, ``num_samples``, modality, effective samples per feature; the kernel (its
  formula, width, distance scale, weight min/mean/max, effective samples
  ``(sum w)^2 / sum w^2``) and every explainer setting (``exp.params``), plus the
  explanation's warnings; a fit whose numbers mean nothing (``exp.fit_warnings``: more
  features than samples, a collapsed kernel, too few effective samples, all-zero weights)
  opens the page with a banner that says so;
- the stem x segment heatmap of the audio weights, with a play button on every cell that plays
  exactly that stem during that segment, and a button that plays the sum of the top-k positive
  audio components (audioLIME's listenable explanation, :func:`musiclime.report.listen.listenable_audio`)
  and one that plays the original mix;
- the ranked top features;
- where the explanation has pairwise interactions, the label's top pairs by |value|, each
  playable: its stem-segments, its lyric units outlined
  (:mod:`~musiclime.report.page_interactions`); no panel without them;
- the lyrics, each line (or word, for word units) highlighted by its weight: red positive, blue
  negative, opacity ``|w| / vmax``. Audio cells use the same colours and the same ``vmax`` (the
  largest |weight| of the label over both modalities), so colours compare across modalities.

Self-contained: CSS and JS are inline and audio is embedded as data URIs, so the file can be
mailed, attached to an MLflow run or opened offline. To keep it small, the audio is one mono
clip per stem (the player seeks to a cell's segment and stops at its end) plus the mix and the
top-k sum (trimmed to the span of its components), resampled to ``audio_rate`` (16 kHz) and
encoded as Ogg Vorbis (``codec="vorbis"``, 2-5 kB per second of clip: a 20 s song's page is
0.35 MB with tonal stems, 0.7 MB with broadband noise; a 4-minute demo song's 7.0 MB, a
10-minute one's 15.3 MB).
``codec="wav"`` (16-bit PCM, 32 kB per second at 16 kHz: 4.3 MB for a 20 s song) also plays in
browsers without Ogg Vorbis (older Safari). Without a song (``song=None``, e.g. re-rendering
from ``explanation.json``) the page has no audio and the lyrics are the explanation's units.

Long songs keep whole stems: the cells tile the song, so a clip per cell would embed the same
audio plus a Vorbis header per cell, and files beside the page would lose the single file.
Clips are encoded block by block (:func:`musiclime.io.audio.encode_audio`): one libsndfile call
with a whole stem crashes its Vorbis encoder past a minute or two of audio.

The page is assembled here from its audio (:mod:`~musiclime.report.page_audio`), its sections
(:mod:`~musiclime.report.page_sections`, :mod:`~musiclime.report.page_interactions`) and its
fixed skeleton, stylesheet and player scripts (:mod:`~musiclime.report.page_assets`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..core.explanation import Explanation
from ..io.fileio import atomic_path
from . import page_sections as sections
from .page_assets import PAGE_CSS, PAGE_JS, PAGE_TEMPLATE, PANEL_CSS, PANEL_JS
from .page_audio import PAGE_CODECS, audio_data_uri, page_clips, vorbis_available
from .page_interactions import interaction_panel
from .page_sections import NEGATIVE_RGB, POSITIVE_RGB, esc, weight_colour
from .plots import explained_label

__all__ = ["NEGATIVE_RGB", "PAGE_CODECS", "POSITIVE_RGB", "audio_data_uri",
           "render_explanation_page", "weight_colour", "write_explanation_page"]

log = logging.getLogger(__name__)


def render_explanation_page(exp: Explanation, song=None, label: int | None = None,
                            listen_top_k: int = 3, num_features: int = 10,
                            codec: str = "vorbis", audio_rate: int = 16000) -> str:
    """The page as one HTML string (see the module docstring).

    ``song``: the :class:`~musiclime.core.explainer.Song` the explanation was made on (its audio
    factorization and lyrics); without it the page has no audio. ``codec``: ``vorbis`` or
    ``wav`` (falls back to ``wav`` when libsndfile cannot write Vorbis).
    """
    if codec not in PAGE_CODECS:
        raise ValueError(f"codec must be one of {PAGE_CODECS}, got {codec!r}")
    if codec == "vorbis" and not vorbis_available():
        log.info("libsndfile cannot write Ogg Vorbis; the page embeds 16-bit WAV")
        codec = "wav"
    label = explained_label(exp, label)
    weights = np.array(list(exp.weights(label).values()), dtype=np.float64)
    vmax = float(np.max(np.abs(weights))) if weights.size else 0.0
    vmax = vmax or 1.0  # one colour scale for audio and lyrics
    with_audio = song is not None and getattr(song, "audio", None) is not None
    clips, topk = (page_clips(exp, song, label, listen_top_k, codec, audio_rate)
                   if with_audio else ({}, {"components": []}))
    stem_index = {s: i for i, s in enumerate(exp.features.stems)}
    # no interactions, no panel: not even its style or script (the page is as it was)
    panel = interaction_panel(exp, label, with_audio, stem_index)
    return PAGE_TEMPLATE.format(
        css=PAGE_CSS + (PANEL_CSS if panel else ""), js=PAGE_JS + (PANEL_JS if panel else ""),
        song_id=esc(exp.song_id),
        label_name=esc(exp.label_name(label)), summary=sections.summary(exp, label),
        warnings=sections.warnings_section(exp), modality=sections.modality_bar(exp, label),
        prediction=sections.prediction_table(exp, label), fit=sections.fit_tables(exp, label),
        audio_note="" if with_audio else
        '<p class="note">no audio on this page (rendered without the song)</p>',
        controls=sections.audio_controls(exp, song, label, clips, topk, listen_top_k)
        if with_audio else "",
        heatmap=sections.heatmap(exp, label, vmax, with_audio), legend=sections.legend(vmax),
        top_features=sections.top_features(exp, label, num_features, vmax, with_audio,
                                           stem_index),
        interactions=panel, lyrics_unit=esc(exp.features.lyrics_unit), lyrics=sections.lyrics(exp, label, vmax, song),
        settings=sections.settings(exp), extra=sections.details(exp),
        timestamp=esc(exp.timestamp), audio_tags=sections.audio_tags(clips))


def write_explanation_page(exp: Explanation, song, path: str | os.PathLike,
                           **kwargs) -> Path:
    """Write :func:`render_explanation_page` atomically to exactly ``path``."""
    path = Path(path)
    page = render_explanation_page(exp, song, **kwargs)
    with atomic_path(path, ".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
