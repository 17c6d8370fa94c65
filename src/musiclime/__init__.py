"""musiclime: reproducible MusicLIME explanations of multimodal (audio + lyrics) music classifiers.

The public API, importable without Snakemake::

    from musiclime import (load_audio, OpenUnmixSeparator, OracleSeparator, MusicLIME,
                           ExplainerConfig, load_song, Explanation)
"""

__version__ = "0.1.0"

from .audio import load_audio, resample, write_wav  # noqa: E402
from .classifier import CallableClassifier, Classifier, as_classifier  # noqa: E402
from .errors import (  # noqa: E402
    AudioDecodeError,
    ClassifierOutputError,
    ConfigError,
    MusicLimeError,
    SampleRateError,
    SeparatorWeightsMissing,
)
from .explainer import (  # noqa: E402
    ExplainerConfig,
    MusicLIME,
    Song,
    factorize,
    fit_explanation,
    load_song,
    make_masks,
)
from .explanation import Explanation  # noqa: E402
from .factorization import AudioFactorization, segment_bounds  # noqa: E402
from .features import Feature, FeatureTable  # noqa: E402
from .lyrics import LineUnits, WordUnits, make_lyrics_units  # noqa: E402
from .masks import MaskLayout, sample_masks  # noqa: E402
from .separation import STEMS, OpenUnmixSeparator, OracleSeparator  # noqa: E402
from .surrogate import exponential_kernel, fit_lime  # noqa: E402

__all__ = [
    "__version__", "load_audio", "resample", "write_wav", "CallableClassifier", "Classifier",
    "as_classifier", "AudioDecodeError", "ClassifierOutputError", "ConfigError",
    "MusicLimeError", "SampleRateError", "SeparatorWeightsMissing", "ExplainerConfig",
    "MusicLIME", "Song", "factorize", "fit_explanation", "load_song", "make_masks",
    "Explanation", "AudioFactorization", "segment_bounds", "Feature", "FeatureTable",
    "LineUnits", "WordUnits", "make_lyrics_units", "MaskLayout", "sample_masks", "STEMS",
    "OpenUnmixSeparator", "OracleSeparator", "exponential_kernel", "fit_lime",
]
