"""Writing files so that a crash never leaves half of one: the repository's one atomic write.

Depends on nothing of the repository, so that data/ (pseudo-label stores, the generator's manifest) and
the engine (checkpoints, logs) write files the same way.
"""
import contextlib
import os
import tempfile
from pathlib import Path

import torch

from engine.errors import OutputPathError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp's files are 0600, the files we rename into place get the usual mode


def atomic_write(path, write) -> None:
    """write(f) into a temporary file in the same folder, then rename it over `path`: readers and crashes
    see the old file or the new one, never half of one. The one atomic writer of the repository."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_save(obj, path) -> None:
    """torch.save, atomically (atomic_write)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def check_writable(path, flag: str = "--output") -> Path:
    """Fail now, before anything expensive, when the file `path` cannot be written (folder missing, a folder
    in the way, no permission): by creating and removing a temporary file next to it."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{flag} {path} is a folder; give a file name inside it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"cannot write {flag} {path}: folder {parent} does not exist (create it first)")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputPathError(f"cannot write {flag} {path}: {e.strerror or e}") from None
    return path


def make_folder(path, flag: str) -> Path:
    """mkdir -p, with the flag named when a file stands where the folder should be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} {path} is a file, not a folder: give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file further up the path, no permission
        raise OutputPathError(f"cannot create {flag} {path}: {e.strerror or e}") from None
    return path

