"""Convert a split's PNG frames (and masks) once into uint8 arrays that the readers memory-map.

    python scripts/convert_to_memmap.py --root_dir Dataset_Student --split unlabeled
    python scripts/convert_to_memmap.py --root_dir Dataset_Student --split train val unlabeled hidden

Writes ROOT/memmap/<split>_frames.npy (N, F, 160, 240, 3) uint8 (F = 22, or 11 for hidden),
<split>_masks.npy (N, 22, 160, 240) uint8 for train and val, <split>_files.npy (the size and
modification time of every file read) and <split>_video_ids.npy (N,) in numeric order. From then on
every reader of the split (data/readers.py: SplitIndex, the datasets, so every train and inference
script) reads the arrays instead of decoding PNGs, as long as they hold the split's videos and no file
changed since; stale arrays are ignored with a warning naming this command. --exclude_videos converts
a split without its bad videos; readers then use the arrays when given the same exclusions.
Why: decoding a 240 x 160 PNG takes ~2 ms of CPU, so 11-22 frames a video cap a loader at a few
hundred videos/s per core, below what a GPU trains at; a memory-mapped row is a copy.
Size: 2.5 MB a 22-frame video (the real unlabeled split: 13,000 videos, 33 GB); checked before writing.
Every file is written under a temporary name and renamed, the ids file last: an interrupted run
leaves the PNGs in use, never a half-written array.
"""
import argparse
import contextlib
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data.format import HEIGHT, NUM_FRAMES, SPLIT_FRAMES, SPLIT_HAS_MASK, SPLITS, WIDTH  # noqa: E402
from data.readers import (  # noqa: E402
    MEMMAP_DIR, SplitIndex, add_exclude_args, file_signatures, memmap_paths, read_exclusions,
)
from engine import atomic_write, run_cli  # noqa: E402


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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", default="Dataset_Student", help=f"dataset root; arrays go to ROOT/{MEMMAP_DIR}/")
    p.add_argument("--split", nargs="+", default=["unlabeled"], choices=SPLITS, help="split(s) to convert")
    p.add_argument("--workers", type=int, default=2, help="processes decoding PNGs (1: in this process)")
    add_exclude_args(p)
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    for split in args.split:
        start = time.perf_counter()
        paths = convert_split(args.root_dir, split, workers=args.workers, exclude=exclude)
        shape = np.load(paths["frames"], mmap_mode="r").shape
        size = sum(paths[k].stat().st_size for k in ("frames", "masks") if paths[k].is_file() and
                   (k == "frames" or SPLIT_HAS_MASK[split]))
        print(f"{split}: {shape[0]} videos -> {paths['frames']} {shape}"
              + (f" + {paths['masks'].name}" if SPLIT_HAS_MASK[split] else "")
              + f", {size / 1e6:.0f} MB in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    sys.exit(run_cli(main))
