"""The run folder lock: one process at a time writes into a run folder (a trainer's --checkpoint_dir, the
generator's --out, a pseudo-label store, the memmap arrays, the stage runner's --out).

The lock is a file created with O_CREAT | O_EXCL (atomic on local disks and on NFS v3+ shared by the nodes of
a multi-node run: rank 0 alone takes it), holding the holder's pid, host, start time and command. A second
run is refused at start, naming them. A lock left by a process of this host that no longer runs (killed -9,
a crash of the machine) is taken over with a warning; one of another host is never guessed at: the message
says how to remove it. Released when the process exits (atexit) or by release().
"""
import atexit
import contextlib
import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path

from engine.errors import OutputPathError

LOCK_FILE = ".lock"
_HELD = {}  # lock path -> RunLock, this process's


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


class RunLock:
    """The lock of `folder`: its file LOCK_FILE inside it, or `path` (a file beside the folder, for a folder that
    must stay empty until the run writes it); acquire() or refuse."""

    def __init__(self, folder=None, flag: str = "--checkpoint_dir", path=None):
        self.path = Path(path) if path is not None else Path(folder) / LOCK_FILE
        self.folder = Path(folder) if folder is not None else self.path.parent
        self.flag = flag

    def _record(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])[:500]}

    def _holder(self) -> dict:
        try:
            holder = json.loads(self.path.read_text())
            return holder if isinstance(holder, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # being written at this instant, or damaged
            return {}

    def acquire(self) -> "RunLock":
        """Take the lock, or raise OutputPathError naming its holder. Re-entrant within one process."""
        if self.path in _HELD:
            return _HELD[self.path]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:
                    continue  # released meanwhile: try again
                if not holder:
                    time.sleep(0.2)  # a holder writing its record this instant
                    holder = self._holder() or {}
                here = socket.gethostname()
                pid, host = holder.get("pid"), holder.get("host")
                if host == here and pid == os.getpid():  # this process, an earlier run of it (tests, notebooks)
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                if host == here and isinstance(pid, int) and not _alive(pid):
                    warnings.warn(f"{self.folder}: taking over the lock of pid {pid} (started {holder.get('started')}), "
                                  f"which no longer runs on {here}", stacklevel=2)
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                who = f"pid {pid} on host {host}" if pid else "an unknown process"
                raise OutputPathError(
                    f"{self.flag} {self.folder} is in use by {who} since {holder.get('started', '?')} "
                    f"({holder.get('command', '?')}): wait for it to finish, or choose another {self.flag}; if that "
                    f"process is gone, delete {self.path}")
            with os.fdopen(fd, "w") as f:
                json.dump(self._record(), f)
            _HELD[self.path] = self
            return self
        raise OutputPathError(f"{self.flag} {self.folder}: could not take its lock {self.path}; try again")

    def release(self) -> None:
        if _HELD.pop(self.path, None) is not None:
            holder = self._holder()
            if holder and holder.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def lock_folder(folder, flag: str) -> RunLock:
    """Take the lock of a run folder for the rest of this process (released at exit): a second run is refused."""
    return RunLock(folder, flag).acquire()


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD.values()):
        lock.release()
