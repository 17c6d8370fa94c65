"""musiclime: reproducible MusicLIME explanations of multimodal (audio + lyrics) music classifiers.

The public API, importable without Snakemake::

    from musiclime import (load_audio, OpenUnmixSeparator, OracleSeparator, MusicLIME,
                           ExplainerConfig, load_song, Explanation)

Names are imported on first use, so a workflow job that only decodes audio does not pay for
importing torch, lime and scikit-learn.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "io.audio": ["load_audio", "resample", "write_wav"],
    "core.classifier": ["CallableClassifier", "Classifier", "as_classifier"],
    "errors": ["AudioDecodeError", "ClassifierOutputError", "ConfigError", "MusicLimeError",
               "SampleRateError", "SeparatorWeightsMissing"],
    "core.explainer": ["ExplainerConfig", "MusicLIME", "fit_explanation", "make_masks"],
    "core.song": ["Song", "factorize", "load_song"],
    "core.explanation": ["Explanation"],
    "core.factorization": ["AudioFactorization", "segment_bounds"],
    "core.features": ["Feature", "FeatureTable"],
    "core.fit_quality": ["FitQuality", "FitWarning"],
    "core.lyrics": ["LineUnits", "WordUnits", "make_lyrics_units"],
    "core.masks": ["MaskLayout", "sample_masks"],
    "core.interactions": ["InteractionParams", "estimate_interactions"],
    "models.separation": ["STEMS", "OpenUnmixSeparator", "OracleSeparator"],
    "core.surrogate": ["exponential_kernel", "fit_ridge", "fit_lime"],  # fit_lime: deprecated
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["__version__", *_WHERE]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'musiclime' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
