"""Exceptions that name the input at fault and say what to do about it."""


class MusicLimeError(Exception):
    """Base class of every error musiclime raises on purpose."""


class InputError(MusicLimeError):
    """An input file (audio, lyrics, manifest, stems) is missing or cannot be read."""


class AudioDecodeError(InputError):
    """An audio file could not be read, or holds no samples."""


class SampleRateError(MusicLimeError):
    """Two stages disagree on the sample rate they work at."""


class SeparatorWeightsMissing(MusicLimeError):
    """Open-Unmix weights are neither cached nor available as a local directory."""


class ClassifierOutputError(MusicLimeError):
    """The classifier returned something that is not a batch of probability rows."""


class ConfigError(MusicLimeError):
    """A configuration value is unknown or out of range."""


class ModelWeightsMissing(MusicLimeError):
    """A classifier's weights (a Hugging Face hub id, a folder) are not on this machine."""
