"""Writing a split's memory-mapped copy (what scripts/convert_to_memmap.py runs; data/readers.py reads it).

Every file is written under a temporary name and renamed, the ids file last: an interrupted run leaves the
PNGs in use, never a half-written array.
"""
import contextlib
import os
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data.format import HEIGHT, NUM_FRAMES, SPLIT_FRAMES, WIDTH
from data.readers import SplitIndex, file_signatures, memmap_paths
from engine.io import atomic_write


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


_WORKER = {}  # each process's SplitIndex and open arrays, set up once by _open


def _exit_with_parent(parent: int) -> None:
    """A pool worker whose parent was killed (kill -9 gives it no chance to stop its pool) would wait for
    work forever, holding its memory: it exits once it has been handed to another parent."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _open(index: SplitIndex, parent: int = None) -> None:
    if parent is not None and parent != os.getpid():
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    paths = memmap_paths(index.root, index.split)
    _WORKER["index"] = index
    _WORKER["frames"] = np.load(_tmp(paths["frames"]), mmap_mode="r+")
    _WORKER["masks"] = np.load(_tmp(paths["masks"]), mmap_mode="r+") if index.has_mask else None


def _convert_rows(rows: list) -> int:
    """Read videos `rows` through SplitIndex (PNGs, checked) into the temporary arrays."""
    index, frames, masks = _WORKER["index"], _WORKER["frames"], _WORKER["masks"]
    for i in rows:
        frames[i] = index.frames(i, range(index.num_frames))
        if masks is not None:
            masks[i] = index.masks(i, range(NUM_FRAMES))
    frames.flush()
    if masks is not None:
        masks.flush()
    return len(rows)


def convert_split(root, split: str, workers: int = 2, chunk: int = 16, exclude=()) -> dict:
    """Write the split's arrays (see the module docstring), without the videos `exclude`; returns their paths."""
    root = Path(root)
    index = SplitIndex(root, split, memmap=False, exclude=exclude)  # checks every video's files first
    signatures = file_signatures(index.paths, split)  # before reading: a file changed meanwhile is seen as stale
    n, T = len(index), SPLIT_FRAMES[split]
    paths = memmap_paths(root, split)
    paths["ids"].parent.mkdir(parents=True, exist_ok=True)
    need = n * T * HEIGHT * WIDTH * 3 + (n * NUM_FRAMES * HEIGHT * WIDTH if index.has_mask else 0)
    free = shutil.disk_usage(paths["ids"].parent).free
    if need > free:
        raise OSError(f"converting {root / split} needs {need / 1e9:.1f} GB, {paths['ids'].parent} has "
                      f"{free / 1e9:.1f} GB free: free space or convert fewer splits")
    with contextlib.suppress(FileNotFoundError):
        paths["ids"].unlink()  # the old arrays stop being used before they are replaced
    written = [_tmp(paths["frames"])] + ([_tmp(paths["masks"])] if index.has_mask else [])
    try:
        np.lib.format.open_memmap(written[0], mode="w+", dtype=np.uint8, shape=(n, T, HEIGHT, WIDTH, 3)).flush()
        if index.has_mask:
            np.lib.format.open_memmap(written[1], mode="w+", dtype=np.uint8, shape=(n, NUM_FRAMES, HEIGHT, WIDTH)).flush()
        jobs = [list(range(s, min(n, s + chunk))) for s in range(0, n, chunk)]
        bar = tqdm(total=n, desc=f"{split} -> {paths['frames'].parent}", unit="video", dynamic_ncols=True)
        if workers > 1:
            with ProcessPoolExecutor(workers, initializer=_open, initargs=(index, os.getpid())) as pool:
                for done in pool.map(_convert_rows, jobs):
                    bar.update(done)
        else:
            _open(index)
            for rows in jobs:
                bar.update(_convert_rows(rows))
            _WORKER.clear()
        bar.close()
        for path in written:
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(written[0], paths["frames"])
        if index.has_mask:
            os.replace(written[1], paths["masks"])
        atomic_write(paths["files"], lambda f: np.save(f, signatures))
        # last: now the arrays are complete and in use
        atomic_write(paths["ids"], lambda f: np.save(f, np.asarray(index.video_ids, dtype=np.int64)))
    finally:
        for path in written:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return paths
