"""Exceptions that name the input at fault and say what to do about it."""


class MusicLimeError(Exception):
    """Base class of every error musiclime raises on purpose."""


class InputError(MusicLimeError):
    """An input file (audio, lyrics, manifest, stems) is missing or cannot be read."""


class AudioDecodeError(InputError):
    """An audio file could not be read, or holds no samples."""


class SampleRateError(MusicLimeError):
    """Two stages disagree on the sample rate they work at."""


class OutputError(MusicLimeError):
    """A result cannot be written: a read-only file system, no permission, a file where a
    folder should be. Nothing already written is touched."""


class DiskFullError(OutputError):
    """The disk filled up while writing a result; what was finished before is kept."""


#: how a full disk is named in a job's one-line error (the run's summary looks for it)
DISK_FULL = "disk full writing"

#: the last line of a failed workflow job's log starts with this, then says what went wrong
ERROR_PREFIX = "musiclime: error:"


def describe_os_error(exc: OSError, path: object = None) -> str:
    """One line for an ``OSError`` a user can act on: what went wrong with which path, and
    what to do. ``path`` is named when the error does not carry a file name."""
    import errno

    where = exc.filename if exc.filename is not None else path
    where = "" if where is None else f" {where}"
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (f"{DISK_FULL}{where}: free space on that disk (or use another results_root) "
                "and rerun the same command; everything finished is kept")
    if code == errno.EROFS:
        return f"cannot write{where}: the file system is read-only; choose a writable folder"
    if code in (errno.EACCES, errno.EPERM):
        return (f"cannot write{where}: {exc.strerror or 'permission denied'} (no write "
                "permission, or the file or folder is immutable); choose a writable folder or "
                "fix its permissions")
    if code == errno.ENOTDIR:
        return (f"cannot use{where} as a folder: a part of that path is a file, not a folder; "
                "choose another path")
    if code == errno.EISDIR:
        return f"{where.strip()} is a folder where a file was expected"
    return f"{exc.strerror or type(exc).__name__}:{where or ' ' + str(exc)}"


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
