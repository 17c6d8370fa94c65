"""What reruns of an explainer on one explained song need: the settings that made the
explanation (:func:`config_from_explanation`) and a check that the song factorizes into its
features (:func:`check_song`). Shared by the evaluate stage and the sanity cascade."""

from __future__ import annotations

import dataclasses

from ..core.explainer import ExplainerConfig, Song
from ..core.explanation import Explanation

#: the explanation's own settings that a rerun keeps (the rest come from ``config``)
_SURROGATE_KEYS = ("kernel_width", "distance_scale", "feature_selection", "ridge_alpha",
                   "exhaustive", "num_features", "estimator", "target", "sampler")


def config_from_explanation(exp: Explanation, config: ExplainerConfig | None = None,
                            label: int | None = None) -> ExplainerConfig:
    """The explainer settings that made ``exp`` (for reruns): ``config`` (or the explanation's
    recorded params) with the explanation's modality, sample count and surrogate settings."""
    fields = {f.name for f in dataclasses.fields(ExplainerConfig)}
    if config is not None:
        base = dataclasses.asdict(config)
        base.update({k: exp.params[k] for k in _SURROGATE_KEYS if k in exp.params})
        if "seed" in exp.params:
            base["seed"] = exp.params["seed"]
    else:
        base = {k: v for k, v in exp.params.items() if k in fields}
    base.update(num_samples=int(exp.num_samples), modality=exp.modality)
    if label is not None:
        base["labels"] = [int(label)]
    return ExplainerConfig(**base)


def check_song(exp: Explanation, song: Song) -> None:
    table = song.feature_table
    if [f.name for f in table.features] != [f.name for f in exp.features.features]:
        raise ValueError(
            f"song {song.song_id!r} does not factorize into the explanation's features "
            f"({len(table)} vs {len(exp.features)}); factorize it with the explanation's "
            "segmentation and lyrics unit")
