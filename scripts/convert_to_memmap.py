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
import sys
import time
from pathlib import Path

import numpy as np

from data.format import SPLIT_HAS_MASK, SPLITS
from data.readers import MEMMAP_DIR, add_exclude_args, read_exclusions
from data.memmap import convert_split
from engine import lock_folder, run_cli
from engine.flags import add_old_spellings


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", default="Dataset_Student", help=f"dataset root; arrays go to ROOT/{MEMMAP_DIR}/")
    p.add_argument("--split", nargs="+", default=["unlabeled"], choices=SPLITS, help="split(s) to convert")
    p.add_argument("--num_workers", dest="workers", type=int, default=2, help="processes decoding PNGs (1: in this process)")
    add_exclude_args(p)
    add_old_spellings(p, {'--workers': '--num_workers'})  # kept for one release
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--num_workers must be >= 1")
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    if not Path(args.root_dir).is_dir():
        raise FileNotFoundError(f"dataset root not found: {args.root_dir} (pass --root_dir)")
    lock_folder(Path(args.root_dir) / MEMMAP_DIR, "--root_dir's memmap folder")  # one conversion at a time
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
