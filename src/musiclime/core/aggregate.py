"""Global per-class importances from many songs' local MusicLIME explanations.

The MusicLIME paper's global aggregation (after van der Linden et al., "Global aggregations of
local explanations for black box models"), computed from the per-song :class:`Explanation`
records.

Definitions (exactly what :func:`aggregate` computes)
----------------------------------------------------
Contributions.
    A song contributes to one class only, ``c`` = its predicted class
    (``exp.predicted_label``), and only with the weights of the surrogate fitted for that
    label. Weights for other explained labels are ignored. A song whose predicted label was
    not explained is skipped (counted; a warning is logged). Only **positive** weights count;
    zero and negative weights are dropped.

Global features ("roll-ups").
    Local features are mapped to keys that generalise across songs:

    - ``stem``: the audio feature's stem (``drums``);
    - ``segment``: the audio feature's segment index (``T3``);
    - ``stem_segment``: stem and segment (``drums_T3``, the local feature's name);
    - ``lyrics_text``: the lyric unit's text, lower-cased and stripped (a word for word
      units, the whole line for line units); units whose text is empty after stripping are
      dropped;
    - ``lyrics_position``: the line index (``L4``), for line units only; songs explained with
      word units contribute nothing to this table.

    Only features the song's explanation actually perturbed (``exp.columns``) take part.

Within-song summing.
    Several local features of one song can map to the same key (all ``drums_T*`` map to
    ``drums``; a repeated chorus line maps to one ``lyrics_text``). Their positive weights are
    summed within the song first: ``s_kj = sum of w > 0 over song k's local features with key
    j``. The per-song value ``s_kj`` is then aggregated across songs.

Per class ``c`` and key ``j`` over the songs ``k`` contributing to ``c``:

    - ``lime_importance``  ``I_cj = sqrt(sum_k s_kj)``;
    - ``count``: with ``avg_count="positive"`` (default) the number of songs of class ``c``
      with ``s_kj > 0`` (at least one positive local weight under key ``j``); with
      ``avg_count="present"`` the number of songs of class ``c`` that perturbed at least one
      local feature under key ``j``, whatever the sign of its weight;
    - ``avg_importance``  ``AVG_cj = sum_k s_kj / count`` (0 when the sum is 0);
    - ``entropy``  ``H_j = -sum_c p_cj log2 p_cj`` with ``p_cj = I_cj / sum_c' I_c'j``, the
      sum running over **all** classes in ``class_names`` (classes with no contribution have
      ``p = 0``, and ``0 log 0 = 0``). ``H_j`` is a property of the key, the same on each of
      its rows. It is NaN for a key with ``sum_c I_cj = 0`` (possible only with
      ``avg_count="present"``);
    - ``hw_importance``  ``HW_cj = (1 - (H_j - Hmin) / (Hmax - Hmin)) * I_cj``, with Hmin and
      Hmax over the keys of the same table that have a finite ``H``; factor 1 when
      ``Hmax == Hmin``;
    - ``n_songs_class``: the number of songs that contributed to class ``c``.

One row per (class, key) with ``count > 0``; rows are sorted by class index, then
``lime_importance`` descending, then key name.

Modality (:func:`modality_table`, ``global_modality.csv``): per predicted class, over every song
whose explanation holds a modality game (:mod:`musiclime.core.modality`; the game does not need
the predicted label to be explained, so no song is skipped), the means of the predicted label's
game on the probability scale: ``share_audio`` (MM-SHAP, with its ``share_audio_std``), the bar's
parts ``part_audio``/``part_lyrics``/``part_interaction`` (audio alone, lyrics alone, together;
they add up to 1), ``shapley_audio``, ``shapley_lyrics`` and ``interaction``. Shares and parts
average the songs where they are defined (``n_measured``; a song whose output no modality
moves has none); the values average all ``n_songs``.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..io.fileio import atomic_path
from .explanation import Explanation
from .features import Feature

log = logging.getLogger(__name__)

ROLLUPS = ("stem", "segment", "stem_segment", "lyrics_text", "lyrics_position")
AUDIO_ROLLUPS = ("stem", "segment", "stem_segment")
LYRICS_ROLLUPS = ("lyrics_text", "lyrics_position")
AVG_COUNTS = ("positive", "present")
COLUMNS = ["class", "feature", "kind", "lime_importance", "avg_importance", "hw_importance",
           "count", "entropy", "n_songs_class"]


def feature_key(feature: Feature, rollup: str, lyrics_unit: str) -> str | None:
    """The global key of one local feature under ``rollup``; ``None`` if it has none."""
    if rollup in AUDIO_ROLLUPS:
        if feature.kind != "audio":
            return None
        if rollup == "stem":
            return str(feature.stem)
        if rollup == "segment":
            return f"T{int(feature.segment)}"
        return f"{feature.stem}_T{int(feature.segment)}"
    if rollup in LYRICS_ROLLUPS:
        if feature.kind != "lyrics":
            return None
        if rollup == "lyrics_text":
            text = str(feature.name).strip().lower()
            return text or None
        if lyrics_unit != "line":
            return None
        return f"L{int(feature.unit_index)}"
    raise ValueError(f"rollup must be one of {ROLLUPS}, got {rollup!r}")


def _check_classes(explanations: list[Explanation]) -> list[str]:
    if not explanations:
        return []
    names = list(explanations[0].class_names)
    for exp in explanations[1:]:
        if list(exp.class_names) != names:
            raise ValueError(f"{exp.song_id}: class_names {list(exp.class_names)} differ from "
                             f"{names} ({explanations[0].song_id})")
    return names


def contributing(explanations: Iterable[Explanation]) -> tuple[list[Explanation], list[str]]:
    """Split into songs whose predicted label was explained and the song ids of the rest."""
    used, skipped = [], []
    for exp in explanations:
        (used if exp.predicted_label in exp.fits else skipped).append(exp)
    if skipped:
        log.warning("%d song(s) skipped: their predicted label was not explained (%s)",
                    len(skipped), ", ".join(e.song_id for e in skipped[:10])
                    + (", ..." if len(skipped) > 10 else ""))
    return used, [e.song_id for e in skipped]


def song_contributions(exp: Explanation, rollup: str) -> tuple[dict[str, float], set[str]]:
    """One song's ``{key: summed positive weight}`` for its predicted label, and the keys of
    every perturbed local feature (whatever its weight)."""
    sums: dict[str, float] = defaultdict(float)
    present: set[str] = set()
    unit = exp.features.lyrics_unit
    for idx, w in exp.weights(exp.predicted_label).items():
        key = feature_key(exp.features[idx], rollup, unit)
        if key is None:
            continue
        present.add(key)
        if w > 0:
            sums[key] += float(w)
    return dict(sums), present


def _entropy(values: list[float]) -> float:
    total = sum(values)
    if total <= 0:
        return math.nan
    h = 0.0
    for v in values:
        if v > 0:
            p = v / total
            h -= p * math.log2(p)
    return max(h, 0.0)


def aggregate(explanations: list[Explanation], rollup: str,
              avg_count: str = "positive") -> pd.DataFrame:
    """Global per-class importances of ``rollup`` keys (see the module docstring)."""
    if rollup not in ROLLUPS:
        raise ValueError(f"rollup must be one of {ROLLUPS}, got {rollup!r}")
    if avg_count not in AVG_COUNTS:
        raise ValueError(f"avg_count must be one of {AVG_COUNTS}, got {avg_count!r}")
    class_names = _check_classes(explanations)
    used, _ = contributing(explanations)
    return _aggregate(used, class_names, rollup, avg_count)


def _aggregate(used: list[Explanation], class_names: list[str], rollup: str,
               avg_count: str) -> pd.DataFrame:
    kind = "audio" if rollup in AUDIO_ROLLUPS else "lyrics"

    sums: dict[tuple[int, str], float] = defaultdict(float)
    n_pos: dict[tuple[int, str], int] = defaultdict(int)
    n_present: dict[tuple[int, str], int] = defaultdict(int)
    n_songs: dict[int, int] = defaultdict(int)
    for exp in used:
        c = exp.predicted_label
        n_songs[c] += 1
        song_sums, present = song_contributions(exp, rollup)
        for key, s in song_sums.items():
            sums[c, key] += s
            n_pos[c, key] += 1
        for key in present:
            n_present[c, key] += 1

    counts = n_pos if avg_count == "positive" else n_present
    cells = {ck: n for ck, n in counts.items() if n > 0}
    importance = {ck: math.sqrt(sums.get(ck, 0.0)) for ck in cells}

    keys = sorted({key for _, key in cells})
    n_classes = max([len(class_names)] + [c + 1 for c, _ in cells])
    entropy = {key: _entropy([importance.get((c, key), 0.0) for c in range(n_classes)])
               for key in keys}
    finite = [h for h in entropy.values() if not math.isnan(h)]
    h_min, h_max = (min(finite), max(finite)) if finite else (0.0, 0.0)

    rows = []
    for (c, key), count in cells.items():
        total = sums.get((c, key), 0.0)
        h = entropy[key]
        if math.isnan(h):
            factor = 0.0  # I_cj = 0 here, so HW_cj = 0 whatever the factor
        elif h_max > h_min:
            factor = 1.0 - (h - h_min) / (h_max - h_min)
        else:
            factor = 1.0
        rows.append({"class": class_names[c] if c < len(class_names) else str(c),
                     "feature": key, "kind": kind, "lime_importance": importance[c, key],
                     "avg_importance": total / count, "hw_importance": factor * importance[c, key],
                     "count": int(count), "entropy": h, "n_songs_class": int(n_songs[c]),
                     "_c": c})
    rows.sort(key=lambda r: (r["_c"], -r["lime_importance"], r["feature"]))
    df = pd.DataFrame(rows, columns=COLUMNS + ["_c"]).drop(columns="_c")
    return df.astype({"count": "int64", "n_songs_class": "int64"}).reset_index(drop=True)


def aggregate_all(explanations: list[Explanation],
                  avg_count: str = "positive") -> dict[str, pd.DataFrame]:
    """:func:`aggregate` for every roll-up in :data:`ROLLUPS` (skipped songs warned once)."""
    if avg_count not in AVG_COUNTS:
        raise ValueError(f"avg_count must be one of {AVG_COUNTS}, got {avg_count!r}")
    class_names = _check_classes(explanations)
    used, _ = contributing(explanations)
    return {rollup: _aggregate(used, class_names, rollup, avg_count) for rollup in ROLLUPS}


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike) -> list[Path]:
    """Write ``global_<rollup>.csv`` for each table (atomically); return the paths."""
    out_dir = Path(out_dir)
    paths = []
    for rollup, df in tables.items():
        path = out_dir / f"global_{rollup}.csv"
        with atomic_path(path, ".csv") as tmp:
            df.to_csv(tmp, index=False, float_format="%.10g")
        paths.append(path)
    return paths


MODALITY_COLUMNS = ["class", "n_songs", "n_measured", "share_audio", "share_audio_std",
                    "part_audio", "part_lyrics", "part_interaction", "shapley_audio",
                    "shapley_lyrics", "interaction"]


def modality_table(explanations: list[Explanation]) -> pd.DataFrame:
    """The per-class means of the modality game (see the module docstring); one row per class
    with at least one song that has a game, in class order."""
    class_names = _check_classes(explanations)
    songs: dict[int, list] = defaultdict(list)
    for exp in explanations:
        game = exp.modality_values(exp.predicted_label)
        if game is not None:
            songs[exp.predicted_label].append(game)
    rows = []
    for c in sorted(songs):
        games = songs[c]
        parts = pd.DataFrame([g.parts() for g in games])
        share = pd.Series([g.share_audio for g in games], dtype="float64").dropna()
        rows.append({
            "class": class_names[c] if c < len(class_names) else str(c),
            "n_songs": len(games), "n_measured": int(share.size),
            "share_audio": share.mean() if share.size else math.nan,
            "share_audio_std": share.std(ddof=0) if share.size else math.nan,
            **{f"part_{k}": parts[k].mean() for k in ("audio", "lyrics", "interaction")},
            "shapley_audio": sum(g.shapley_audio for g in games) / len(games),
            "shapley_lyrics": sum(g.shapley_lyrics for g in games) / len(games),
            "interaction": sum(g.interaction for g in games) / len(games)})
    return pd.DataFrame(rows, columns=MODALITY_COLUMNS)


def load_explanations(paths: Iterable[str | os.PathLike]) -> list[Explanation]:
    """Load explanation JSON files, in the given order."""
    return [Explanation.load(p) for p in paths]


def aggregate_songs(explanations: list[Explanation], avg_count: str = "positive"
                    ) -> tuple[dict[str, pd.DataFrame], dict]:
    """Every rollup's table of ``explanations`` and what the summary says of them:
    ``n_songs``, ``n_songs_used``, ``skipped`` (song ids whose predicted label was not
    explained), ``n_songs_per_class`` (contributing songs, every class listed), ``avg_count``."""
    class_names = _check_classes(explanations)
    if avg_count not in AVG_COUNTS:
        raise ValueError(f"avg_count must be one of {AVG_COUNTS}, got {avg_count!r}")
    used, skipped = contributing(explanations)
    per_class = {name: 0 for name in class_names}
    for exp in used:
        name = exp.label_name(exp.predicted_label)
        per_class[name] = per_class.get(name, 0) + 1
    tables = {rollup: _aggregate(used, class_names, rollup, avg_count) for rollup in ROLLUPS}
    return tables, {"n_songs": len(explanations), "n_songs_used": len(used),
                    "skipped": skipped, "n_songs_per_class": per_class, "avg_count": avg_count}
