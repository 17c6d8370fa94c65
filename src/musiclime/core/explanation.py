"""The explanation record: what one song's MusicLIME explanation is, saved as JSON.

The JSON is a superset of the reference explainer's ``save_to_json`` output: the same
``metadata`` (timestamp, song_info, model_info, explanation_params) and ``explanations``
(``label_<i>``: prediction_label, intercept, score, local_prediction, top_features) keys, plus
all feature weights, the kernel's weight spread, the prediction, the parameters and timings,
``metadata.warnings``: one line per thing that makes the explanation suspect (silent audio,
tiny segments, no lyric units, an unsure classifier); empty when nothing was found, and the fit's
diagnostics (:mod:`musiclime.core.fit_quality`): ``metadata.fit_quality`` (samples, features,
effective samples, per label the in-sample and held-out R^2) and ``metadata.fit_warnings``
(``{"code", "message", "label"}`` for each condition that makes the fit's numbers meaningless).
Records written before these keys existed load with ``fit_quality=None``.

Uncertainty (:mod:`musiclime.core.uncertainty`), per explained label: every entry of ``weights``
has ``weight_se`` (standard error) and ``interval90`` (``[lower, upper]``, nominal 90%; ``null`` where
the sample does not determine the weight); ``topk_stability`` lists the top-``k`` features
(signed weight, descending) with the probability that each stays in the top-``k`` under
resampling; ``uncertainty`` says how (``method``, ``level``, ``k``, ``draws``). Records written
before these keys existed load with ``uncertainty={}``.

Modality (:mod:`musiclime.core.modality`): ``metadata.modality_game`` holds the song's four
coalition rows (``coalitions``, ``probabilities`` per class, ``mask_rows``: the mask row each was
read from, ``null`` where the game predicted it); every explained label has ``modality``: the
coalition values, the exact Shapley values ``shapley_audio`` and ``shapley_lyrics``, the
``interaction``, ``share_audio``/``share_lyrics`` (MM-SHAP) and ``share_interaction``, on the
probability scale, plus a ``logit`` record of the same where the label's surrogate was fitted on
the logit. Records written before the game existed load with ``modality_game=None``.

Pairwise interactions (:mod:`musiclime.core.interactions`), where ``explainer.interactions`` is
not ``none``: every explained label has ``interactions``, its top-``k`` pairs by ``|value|``,
each ``{"features": [i, j], "names": [name_i, name_j], "value", "kind"}`` (feature indices and
names as in ``weights``; ``kind``: ``audio×audio``, ``audio×lyrics`` or ``lyrics×lyrics``;
``value`` on the probability scale); ``metadata.interaction_game`` says how they were estimated
(``estimator``, ``budget``, ``top_k``, ``seed``, ``rows_reused``: rows found among the masks,
``rows_predicted``: rows predicted for the game). Records without them load with
``interactions=None``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..io.fileio import read_json, write_json
from .features import FeatureTable
from .fit_quality import FitQuality, FitWarning
from .interactions import InteractionParams, InteractionResult, PairInteraction
from .modality import ModalityGame, ModalityValues
from .surrogate import LabelFit
from .uncertainty import WeightUncertainty


@dataclass
class Explanation:
    """One song's explanation: per-label surrogate fits over the perturbed features."""

    song_id: str
    class_names: list[str]
    modality: str
    features: FeatureTable
    columns: list[int]  # feature index of every mask column
    fits: dict[int, LabelFit]
    prediction: list[float]  # the unperturbed prediction (row 0)
    num_samples: int
    kernel: dict
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    song_info: dict = field(default_factory=dict)
    timestamp: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    #: what made the input or the explanation suspect (silence, tiny segments, no lyric units,
    #: an unsure classifier), one line each; also logged as warnings when found
    warnings: list[str] = field(default_factory=list)
    #: the fit's diagnostics and warnings (:mod:`musiclime.core.fit_quality`); None for a record
    #: written before musiclime computed them
    fit_quality: FitQuality | None = None
    #: per label, the standard errors, intervals and top-k stability of the weights
    #: (:mod:`musiclime.core.uncertainty`); empty for a record written before musiclime
    #: computed them
    uncertainty: dict[int, WeightUncertainty] = field(default_factory=dict)
    #: the song's modality game (:mod:`musiclime.core.modality`); None for a record written
    #: before musiclime played it
    modality_game: ModalityGame | None = None
    #: per label, the top pairwise interactions (:mod:`musiclime.core.interactions`); None
    #: where none were estimated
    interactions: InteractionResult | None = None

    # --- queries ------------------------------------------------------------------------------
    @property
    def predicted_label(self) -> int:
        return int(np.argmax(self.prediction))

    @property
    def labels(self) -> list[int]:
        return list(self.fits)

    @property
    def fit_warnings(self) -> list[FitWarning]:
        """What makes this fit's numbers meaningless (:mod:`musiclime.core.fit_quality`)."""
        return list(self.fit_quality.warnings) if self.fit_quality is not None else []

    def heldout_text(self, label: int | None = None, digits: int = 3) -> str:
        """The held-out R^2 of ``label``'s surrogate as shown beside the in-sample one:
        ``0.834``, ``n/a (too few samples)``, or ``n/a (not computed)`` for an old record."""
        label = self.predicted_label if label is None else int(label)
        quality = self.fit_quality.labels.get(label) if self.fit_quality is not None else None
        return quality.heldout_text(digits) if quality is not None else "n/a (not computed)"

    def heldout_phrase(self, label: int | None = None, digits: int = 3) -> str:
        """``0.834 held-out`` or ``held-out n/a (too few samples)``: what follows an in-sample
        R^2 wherever one is shown."""
        text = self.heldout_text(label, digits)
        return f"held-out {text}" if text.startswith("n/a") else f"{text} held-out"

    def modality_values(self, label: int | None = None,
                        scale: str = "probability") -> ModalityValues | None:
        """``label``'s modality game on ``scale`` (:mod:`musiclime.core.modality`); None for a
        record without one."""
        label = self.predicted_label if label is None else int(label)
        return None if self.modality_game is None else self.modality_game.values(label, scale)

    def modality_record(self, label: int) -> dict | None:
        """``label``'s ``modality`` entry of the JSON (see the module docstring)."""
        from .targets import fitted_target

        values = self.modality_values(label)
        if values is None:
            return None
        record = values.as_dict()
        if fitted_target(self.params, label) == "logit":
            record["logit"] = self.modality_values(label, "logit").as_dict()
        return record

    def label_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def weights(self, label: int | None = None) -> dict[int, float]:
        """``{feature index: weight}`` for every perturbed feature."""
        label = self.predicted_label if label is None else label
        fit = self.fits[label]
        return {int(f): float(w) for f, w in zip(self.columns, fit.weights, strict=True)}

    def weight_uncertainty(self, label: int | None = None) -> dict[int, dict]:
        """``{feature index: {"weight_se", "interval90": (lower, upper)}}`` of ``label``'s weights;
        empty for a record without uncertainty."""
        label = self.predicted_label if label is None else label
        u = self.uncertainty.get(label)
        if u is None:
            return {}
        return {int(f): {"weight_se": float(u.se[c]),
                         "interval90": (float(u.lower[c]), float(u.upper[c]))}
                for c, f in enumerate(self.columns)}

    def topk_stability(self, label: int | None = None) -> dict[int, float]:
        """``{feature index: P(stays in the top-k)}`` for ``label``'s top-``k`` (rank order)."""
        label = self.predicted_label if label is None else label
        u = self.uncertainty.get(label)
        return {} if u is None else {int(self.columns[c]): p for c, p in u.topk.items()}

    def ranked(self, label: int | None = None) -> list[tuple[int, float]]:
        """``(feature index, weight)`` sorted by |weight|, largest first (lime's order)."""
        items = list(self.weights(label).items())
        return sorted(items, key=lambda kv: (-abs(kv[1]), kv[0]))

    def get_explanation(self, label: int, num_features: int = 10) -> list[dict]:
        """The reference's list of ``{"type", "feature", "weight"}`` for the top features."""
        if label not in self.fits:
            return []
        out = []
        for idx, w in self.ranked(label)[:num_features]:
            f = self.features[idx]
            out.append({"type": "audio" if f.kind == "audio" else "lyrics",
                        "feature": f.name, "weight": w})
        return out

    def top_features(self, label: int | None = None, k: int = 10, kind: str | None = None,
                     positive_only: bool = False) -> list[tuple[str, float]]:
        out = []
        for idx, w in self.ranked(label):
            f = self.features[idx]
            if (kind and f.kind != kind) or (positive_only and w <= 0):
                continue
            out.append((f.name, w))
            if len(out) == k:
                break
        return out

    def audio_weight_grid(self, label: int | None = None) -> np.ndarray:
        """(stems, segments) grid of audio weights; NaN for audio left unperturbed."""
        grid = np.full((len(self.features.stems), self.features.n_segments), np.nan)
        for idx, w in self.weights(label).items():
            f = self.features[idx]
            if f.kind == "audio":
                grid[self.features.stems.index(f.stem), f.segment] = w
        return grid

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self, num_features: int = 10) -> dict:
        n_audio, n_lyrics = self.features.n_audio, self.features.n_lyrics
        explanations = {}
        for label, fit in self.fits.items():
            top = self.get_explanation(label, num_features)
            explanations[f"label_{label}"] = {
                "prediction_label": self.label_name(label),
                "intercept": fit.intercept,
                "score": fit.score,
                "local_prediction": fit.local_pred,
                "top_features": [
                    {"rank": i + 1, "type": t["type"], "feature": t["feature"],
                     "weight": float(t["weight"])} for i, t in enumerate(top)],
                # musiclime additions
                "label": label,
                "weights": [{"index": idx, "feature": self.features[idx].name,
                             "type": "audio" if self.features[idx].kind == "audio" else "lyrics",
                             "weight": w} for idx, w in self.weights(label).items()],
            }
            if self.modality_game is not None:
                explanations[f"label_{label}"]["modality"] = self.modality_record(label)
            if self.interactions is not None:
                explanations[f"label_{label}"]["interactions"] = self.interaction_records(label)
            if label in self.uncertainty:
                explanations[f"label_{label}"].update(
                    self._uncertainty_dict(label, explanations[f"label_{label}"]["weights"]))
        return {
            "metadata": {
                "timestamp": self.timestamp,
                "song_info": self.song_info,
                "model_info": {
                    "total_audio_components": n_audio,
                    "total_text_lines": n_lyrics,
                    "total_features": n_audio + n_lyrics,
                    "class_names": self.class_names,
                },
                "explanation_params": {
                    "num_samples": self.num_samples,
                    "num_features_shown": num_features,
                    "modality": self.modality,
                    **self.params,
                },
                "musiclime_version": __version__,
                "song_id": self.song_id,
                "prediction": {
                    "probabilities": [float(p) for p in self.prediction],
                    "predicted_label": self.predicted_label,
                    "predicted_class": self.label_name(self.predicted_label),
                },
                "kernel": self.kernel,
                "timings": self.timings,
                "warnings": list(self.warnings),
                **({"fit_quality": self.fit_quality.as_dict(),
                    "fit_warnings": [w.as_dict() for w in self.fit_quality.warnings]}
                   if self.fit_quality is not None else {}),
                **({"modality_game": self.modality_game.as_dict()}
                   if self.modality_game is not None else {}),
                **({"interaction_game": self.interactions.game_record()}
                   if self.interactions is not None else {}),
            },
            "explanations": explanations,
            "features": self.features.to_dict(),
            "columns": [int(c) for c in self.columns],
        }

    def interaction_records(self, label: int) -> list[dict]:
        """``label``'s ``interactions`` entry of the JSON (see the module docstring)."""
        if self.interactions is None:
            return []
        return [{"features": [int(i) for i in p.features],
                 "names": [self.features[int(i)].name for i in p.features],
                 "value": _num(p.value), "kind": p.kind}
                for p in self.interactions.pairs.get(int(label), [])]

    def _uncertainty_dict(self, label: int, weights: list[dict]) -> dict:
        """``label``'s uncertainty for the JSON: ``se`` and ``interval90`` into its ``weights``
        entries (one per mask column, in column order), and the keys to add beside them;
        ``null`` for a non-finite number."""
        u = self.uncertainty[label]
        for c, entry in enumerate(weights):
            entry["weight_se"] = _num(u.se[c])
            entry["interval90"] = [_num(u.lower[c]), _num(u.upper[c])]
        return {"topk_stability": [
            {"rank": r + 1, "index": int(self.columns[c]),
             "feature": self.features[int(self.columns[c])].name, "probability": _num(p)}
            for r, (c, p) in enumerate(u.topk.items())], "uncertainty": u.info()}

    def save_json(self, path: str | os.PathLike, num_features: int = 10) -> Path:
        """Write the JSON (atomically) to exactly ``path``."""
        return write_json(path, self.to_dict(num_features))

    @classmethod
    def from_dict(cls, d: dict) -> Explanation:
        meta = d["metadata"]
        fits, uncertainty = {}, {}
        for entry in d["explanations"].values():
            label = int(entry["label"])
            weights = np.array([w["weight"] for w in entry["weights"]], dtype=np.float64)
            fits[label] = LabelFit(label=label, intercept=entry["intercept"], weights=weights,
                                   score=entry["score"], local_pred=entry["local_prediction"])
            if "uncertainty" in entry:
                uncertainty[label] = _load_uncertainty(entry, [int(c) for c in d["columns"]])
        params = dict(meta["explanation_params"])
        for key in ("num_samples", "num_features_shown", "modality"):
            params.pop(key, None)
        return cls(song_id=meta["song_id"], class_names=meta["model_info"]["class_names"],
                   modality=meta["explanation_params"]["modality"],
                   features=FeatureTable.from_dict(d["features"]), columns=d["columns"],
                   fits=fits, prediction=meta["prediction"]["probabilities"],
                   num_samples=meta["explanation_params"]["num_samples"],
                   kernel=meta["kernel"], params=params, timings=meta.get("timings", {}),
                   song_info=meta.get("song_info", {}), timestamp=meta["timestamp"],
                   warnings=list(meta.get("warnings", [])),
                   fit_quality=(FitQuality.from_dict(meta["fit_quality"],
                                                     meta.get("fit_warnings", []))
                                if meta.get("fit_quality") else None),
                   uncertainty=uncertainty,
                   modality_game=(ModalityGame.from_dict(meta["modality_game"])
                                  if meta.get("modality_game") else None),
                   interactions=_load_interactions(meta, d["explanations"]))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Explanation:
        return cls.from_dict(read_json(path))


def _num(value) -> float | None:
    """A float for the JSON, ``None`` (``null``) for inf and NaN."""
    value = float(value)
    return value if np.isfinite(value) else None


def _load_interactions(meta: dict, explanations: dict) -> InteractionResult | None:
    """The :class:`InteractionResult` of a record (see the module docstring), or None."""
    game = meta.get("interaction_game")
    if not game:
        return None
    params = InteractionParams(game["estimator"], int(game["budget"]), int(game["top_k"]),
                               int(game["seed"]))
    pairs = {int(e["label"]): [PairInteraction((int(p["features"][0]), int(p["features"][1])),
                                               np.nan if p["value"] is None else p["value"],
                                               p["kind"])
                               for p in e.get("interactions", [])]
             for e in explanations.values()}
    return InteractionResult(params, pairs, int(game["rows_reused"]),
                             int(game["rows_predicted"]))


def _load_uncertainty(entry: dict, columns: list[int]) -> WeightUncertainty:
    """One label's :class:`WeightUncertainty` from its JSON entry (see the module docstring)."""
    def floats(values, missing):
        return np.array([missing if v is None else v for v in values], dtype=np.float64)

    info = entry["uncertainty"]
    weights = entry["weights"]
    column_of = {f: c for c, f in enumerate(columns)}
    return WeightUncertainty(
        se=floats([w["weight_se"] for w in weights], np.inf),
        lower=floats([w["interval90"][0] for w in weights], -np.inf),
        upper=floats([w["interval90"][1] for w in weights], np.inf),
        topk={column_of[int(t["index"])]: (np.nan if t["probability"] is None
                                           else float(t["probability"]))
              for t in entry.get("topk_stability", [])},
        method=info["method"], k=int(info["k"]), level=float(info["level"]),
        draws=int(info["draws"]))
