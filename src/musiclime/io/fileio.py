"""Atomic file writing: a killed job never leaves a file that looks complete."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DiskFullError, OutputError, describe_os_error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A write that fails because the disk is full raises :class:`~musiclime.errors.DiskFullError`
    (also when the writer, such as libsndfile, does not say why it failed but the file system
    has no room left); a read-only or forbidden folder raises
    :class:`~musiclime.errors.OutputError`. Both name ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                   suffix=suffix or ".tmp")
    except OSError as exc:
        raise _output_error(exc, path) from exc
    os.close(fd)
    # mkstemp creates the file 0600; give it the permissions a plain open() would (umask)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except Exception as exc:
        # while the half-written temp file still takes its space
        if is_disk_full(exc, path.parent):
            raise DiskFullError(describe_os_error(_as_enospc(exc), path)) from exc
        if isinstance(exc, OSError) and exc.errno in _NOT_WRITABLE:
            raise _output_error(exc, path) from exc
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


#: a file system with less room than this after a failed write is full
DISK_FULL_BYTES = 1 << 20
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ENOSPC,
                 errno.EDQUOT)


def is_disk_full(exc: BaseException, folder: str | os.PathLike) -> bool:
    """Whether a failed write failed for want of space: its error says so (ENOSPC, EDQUOT),
    or (a writer that reports a bare failure, like libsndfile's ``LibsndfileError(2)``) the
    file system of ``folder`` has less than :data:`DISK_FULL_BYTES` left."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(exc, (OSError, RuntimeError)):  # not a writer's failure
        return False
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < DISK_FULL_BYTES


def _as_enospc(exc: BaseException) -> OSError:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return exc
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _output_error(exc: OSError, path: Path) -> OutputError:
    message = describe_os_error(exc, path)
    return DiskFullError(message) if exc.errno in (errno.ENOSPC, errno.EDQUOT) \
        else OutputError(message)


def ensure_writable_dir(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` (and its parents) and check that a file can be written there, before
    any work is done; otherwise :class:`~musiclime.errors.OutputError` names ``what`` (the
    option or config key that chose the folder), the folder and what to do."""
    folder = Path(folder).expanduser()
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".musiclime-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        # name the folder the user chose, not the probe file or a parent mkdir stopped at
        error = _output_error(OSError(exc.errno, exc.strerror), folder)
        raise type(error)(f"{what}: {error}") from exc
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def to_jsonable(obj: Any) -> Any:
    """Turn numpy scalars/arrays and paths into plain JSON types (recursively)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, data: Any, indent: int = 2) -> Path:
    path = Path(path)
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(to_jsonable(data), indent=indent, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    return path


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    path = Path(path)
    with atomic_path(path, ".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    path = Path(path)
    with atomic_path(path, ".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
    return path
