"""Writing files so that a crash never leaves half of one: the repository's one atomic write.

Depends on nothing of the repository, so that data/ (pseudo-label stores, the generator's manifest) and
the engine (checkpoints, logs) write files the same way.
"""
import contextlib
import json
import os
import re
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



# The flags that name what a command writes (never one of its inputs); every other flag whose value is an
# existing path is an input. Files of these kinds are never replaced by another kind's output.
OUTPUT_FLAGS = ("output", "scores_json", "out", "out_dir", "visualize", "checkpoint_dir", "tracks_out")
_VIDEO_FOLDER = re.compile(r"video_\d+")
_DATASET_SPLITS = ("train", "val", "unlabeled", "hidden")  # data/format.py's SPLITS (engine imports nothing of data/)


def _input_paths(args, output_dest: str) -> list:
    """[(flag, resolved path)] of every existing path an argument names, but the output flags: the command's
    inputs. A folder also stands for its best.pt (what a --saved_*_model_dir folder loads)."""
    found = []
    items = (vars(args) if not isinstance(args, dict) else args).items() if args is not None else ()
    for dest, value in items:
        if dest == output_dest or dest in OUTPUT_FLAGS:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(v, (str, Path)) or not str(v):
                continue
            p = Path(v)
            try:
                if p.exists():
                    found.append((dest, p.resolve()))
                    if p.is_dir() and (p / "best.pt").is_file():
                        found.append((dest, (p / "best.pt").resolve()))
            except OSError:  # a name too long, say: not a path
                continue
    return found


def file_kind(path) -> str:
    """What an existing file holds, by its first bytes: "json" (a JSON object), "png", "checkpoint" (a torch
    file), "array" (NumPy), or "other". A run's log (`*.jsonl`: its first line alone is a JSON object) is "log",
    and a file at the top of a dataset root (its manifest, beside train/ or val/) is "dataset", whatever they hold."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return "log"
    if any((path.parent / split).is_dir() for split in _DATASET_SPLITS):
        return "dataset"
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save's zip, or a legacy pickle
        return "checkpoint"
    if head.startswith(b"\x93NUMPY"):
        return "array"
    if head.startswith(b"\x89PNG"):
        return "png"
    try:
        return "json" if isinstance(json.loads(Path(path).read_text()), dict) else "other"
    except (ValueError, UnicodeDecodeError):
        return "other"


_KIND_NAMES = {"json": "a JSON file", "png": "a PNG picture", "checkpoint": "a checkpoint (torch file)",
               "array": "a NumPy array (a dataset mask or a store)", "other": "a file of another kind",
               "log": "a run's log (JSON lines)", "dataset": "a file of a dataset root (beside its split folders)"}


def _inside_dataset(path: Path) -> bool:
    """Whether `path` lies inside a video folder of a dataset split (ROOT/<split>/video_N/...)."""
    parts = path.parts
    return any(_VIDEO_FOLDER.fullmatch(a) and b in _DATASET_SPLITS for b, a in zip(parts, parts[1:]))


def check_not_an_input(path, flag: str, args, dest: str = None) -> None:
    """Refuse an output `path` that is an input of the same command (see _input_paths) or lies inside a
    dataset's video folder."""
    path, dest = Path(path), dest or flag.lstrip("-")
    resolved = path.resolve()
    for other, p in _input_paths(args, dest):
        if p == resolved:
            raise OutputPathError(f"{flag} {path} is the input passed as --{other}: writing there would destroy "
                                  f"it; choose another {flag}")
    if _inside_dataset(resolved):
        raise OutputPathError(f"{flag} {path} is inside a dataset's video folder: writing there would change the "
                              f"dataset; choose a path outside it")
    if resolved.name in _DATASET_SPLITS and resolved.is_dir() and any(
            _VIDEO_FOLDER.fullmatch(c.name) and c.is_dir() for c in resolved.iterdir()):
        raise OutputPathError(f"{flag} {path} is a dataset's split folder (it holds video folders): writing there "
                              f"would change the dataset; choose a path outside it")


def check_output(path, flag: str, kind: str, args=None) -> Path:
    """The one output guard of a file-writing flag, run before anything expensive: `path` must be writable
    (check_writable), must not be an input of the same command (any existing path another flag in `args`
    names, a run folder's best.pt included), must not lie inside a dataset's video folder, and, when it
    exists, must hold what the flag writes (`kind`: "json", "png", "checkpoint"): a JSON scores file
    replaces only a JSON file, never a checkpoint or a mask."""
    path = check_writable(path, flag)
    check_not_an_input(path, flag, args, flag.lstrip("-"))
    if path.exists():
        found = file_kind(path)
        if found != kind:
            raise OutputPathError(f"{flag} {path} exists and is {_KIND_NAMES[found]}, not {_KIND_NAMES[kind]} "
                                  f"this command writes: choose another {flag}, or move that file away first")
    return path


def check_output_folder(path, flag: str, args=None) -> Path:
    """The output guard of a folder-writing flag (--out_dir, --visualize, --checkpoint_dir, a store's --out):
    not a file, not an input of the same command, not inside a dataset's video folder; created (make_folder)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} {path} is a file, not a folder: give a folder path")
    check_not_an_input(path, flag, args, flag.lstrip("-"))
    return make_folder(path, flag)
