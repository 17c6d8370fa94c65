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


def one_line(exc: BaseException) -> str:
    """What went wrong, in one line: a musiclime error in its own words; any other exception
    with its type; running out of memory (``MemoryError``) as such."""
    message = " ".join(str(exc).split())
    kind = type(exc).__name__
    if isinstance(exc, MemoryError):
        return f"out of memory ({kind}: {message})" if message else f"out of memory ({kind})"
    if isinstance(exc, MusicLimeError):
        return message or kind
    return f"{kind}: {message or kind}"
