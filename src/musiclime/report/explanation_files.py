"""One song from files to explanation files.

``musiclime explain`` runs :func:`explain_file`; the workflow's ``fit_lime`` stage writes each
explanation's files with the same :func:`write_explanation_files`, after the same
:func:`~musiclime.core.explainer.load_song` steps ran as separate stages.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.explainer import MusicLIME, Song, load_song
from ..core.explanation import Explanation
from ..io.fileio import write_json
from . import write_explanation_page
from .listen import save_listenable
from .plots import plot_audio_heatmap, plot_lyrics_bars

log = logging.getLogger(__name__)


@dataclass
class ExplanationFiles:
    json: Path
    heatmap: Path
    lyrics: Path
    listen: Path
    #: the self-contained HTML page (:mod:`musiclime.report.page`)
    page: Path


def write_explanation_files(exp: Explanation, song: Song, out_dir: str | os.PathLike,
                            listen_top_k: int = 3, num_features: int = 10,
                            vmax: float | None = None) -> ExplanationFiles:
    """Every file of one explanation in ``out_dir``: the heatmap and lyrics PNGs, the
    listenable WAV of the top-k positive audio components, ``explanation.html`` and, last,
    ``explanation.json``. ``vmax``: a colour scale shared with other explanations (default:
    this one's largest |weight|)."""
    out = Path(out_dir)
    files = ExplanationFiles(json=out / "explanation.json", heatmap=out / "audio_heatmap.png",
                             lyrics=out / "lyrics.png", listen=out / "listen_top.wav",
                             page=out / "explanation.html")
    plot_audio_heatmap(exp, files.heatmap, vmax=vmax)
    plot_lyrics_bars(exp, files.lyrics, vmax=vmax)
    save_listenable(exp, song.audio, files.listen, k=listen_top_k)
    write_explanation_page(exp, song, files.page, listen_top_k=listen_top_k,
                           num_features=num_features)
    exp.save_json(files.json, num_features=num_features)  # last: its presence means "done"
    return files


def write_song_explanations(fitted: list[tuple[object, Explanation, str | os.PathLike]],
                            song: Song, shared_scale: bool = True
                            ) -> list[tuple[object, ExplanationFiles]]:
    """The files of several explanations of one song, ``(member, explanation, folder)`` each
    (a kernel-width or num_samples sweep's configurations), in one colour scale when
    ``shared_scale``, so their heatmaps compare by eye. Each member's settings choose its
    ``listen_top_k`` and ``num_features`` (``member.params``)."""
    vmax = None
    if shared_scale and len(fitted) > 1:
        vmax = max((abs(w) for _, exp, _ in fitted for w in exp.weights().values()),
                   default=0.0) or None
    return [(member, write_explanation_files(exp, song, out, member.params.listen_top_k,
                                             member.params.num_features, vmax=vmax))
            for member, exp, out in fitted]


def explain_file(audio_path, lyrics_path, classifier, separator, config, out_dir,
                 song_id: str | None = None, stems_dir=None, working_rate: int | None = None,
                 progress: bool = True) -> tuple[Explanation, ExplanationFiles]:
    rate = int(working_rate or classifier.sample_rate)
    song = load_song(audio_path, lyrics_path, separator, rate, config, song_id=song_id,
                     stems_dir=stems_dir)
    exp = MusicLIME(classifier, config, progress=progress).explain(song)
    files = write_explanation_files(exp, song, out_dir, config.listen_top_k, config.num_features)
    write_json(Path(out_dir) / "feature_table.json", song.feature_table.to_dict())
    return exp, files
