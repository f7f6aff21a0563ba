"""How fast the data loader delivers frames: PNG decoding vs the memory-mapped arrays, 0/1/2 workers.

    python scripts/bench/bench_loader.py --root_dir Dataset_Student [--split unlabeled] [--num_workers 0 1 2]

Times full passes of a DataLoader over VideoDataset(split, all the split's frames), the batches the
reconstructor trains on, and prints frames/s and videos/s for each source and worker count. The
memmap rows appear when the split was converted (scripts/convert_to_memmap.py); --convert converts
it first. A GPU trains the reconstructor at hundreds of videos/s, so the loader must reach
thousands of frames/s: compare with the train script's samples_per_s (log.jsonl).
The first pass of each setting warms the page cache and is not counted (--passes counted passes).
With memmap, worker processes can cost more than they save (each batch is copied through shared memory):
on a small CPU compare --num_workers 0 with the others (docs/RESULTS.md has a measurement).
"""
import argparse
import sys
import time

import torch
from torch.utils.data import DataLoader, Subset

from data.format import SPLIT_FRAMES, SPLITS
from data.readers import VideoDataset
from data.memmap import convert_split
from engine import run_cli
from engine.flags import add_old_spellings


def frames_per_second(dataset, workers: int, batch_size: int, passes: int) -> float:
    """Frames/s of `passes` full passes over `dataset` (after one uncounted warm-up pass)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    frames, seconds = 0, 0.0
    for p in range(passes + 1):
        start = time.perf_counter()
        n = sum(batch["frames"].shape[0] * batch["frames"].shape[1] for batch in loader)
        if p > 0:
            frames, seconds = frames + n, seconds + time.perf_counter() - start
    return frames / seconds


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", default="Dataset_Student", help="dataset root")
    p.add_argument("--split", default="unlabeled", choices=SPLITS, help="split to read")
    p.add_argument("--videos", type=int, default=40, help="videos read per pass (the first N of the split)")
    p.add_argument("--batch_size", type=int, default=8, help="videos per batch")
    p.add_argument("--num_workers", dest="workers", type=int, nargs="+", default=[0, 1, 2], help="worker counts to time")
    p.add_argument("--passes", type=int, default=2, help="counted passes per setting (after one warm-up pass)")
    p.add_argument("--convert", action="store_true", help="convert the split to memmap first (if not yet)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the main process (batch collation)")
    add_old_spellings(p, {'--workers': '--num_workers'})  # kept for one release
    args = p.parse_args(argv)
    if args.videos < 1 or args.batch_size < 1 or args.passes < 1 or min(args.workers) < 0:
        p.error("--videos, --batch_size and --passes must be >= 1, --num_workers >= 0")
    torch.set_num_threads(args.threads)
    frames = range(SPLIT_FRAMES[args.split])
    png = VideoDataset(args.root_dir, args.split, frame_indices=frames, mask_indices=[], memmap=False)
    mm = VideoDataset(args.root_dir, args.split, frame_indices=frames, mask_indices=[])
    if mm.index.memmap is None and args.convert:
        convert_split(args.root_dir, args.split)
        mm = VideoDataset(args.root_dir, args.split, frame_indices=frames, mask_indices=[])
    sources = [("PNG", png)] + ([("memmap", mm)] if mm.index.memmap is not None else [])
    n = min(args.videos, len(png))
    print(f"{args.root_dir}/{args.split}: {n} videos x {len(frames)} frames a pass, batch {args.batch_size}"
          + ("" if len(sources) > 1 else "  (no memmap: run with --convert, or scripts/convert_to_memmap.py)"))
    print(f"{'source':<8} {'workers':>7} {'frames/s':>9} {'videos/s':>9}")
    rows = []
    for name, dataset in sources:
        for workers in args.workers:
            fps = frames_per_second(Subset(dataset, range(n)), workers, args.batch_size, args.passes)
            rows.append({"source": name, "workers": workers, "frames_per_s": fps})
            print(f"{name:<8} {workers:>7} {fps:>9.0f} {fps / len(frames):>9.1f}", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(run_cli(main))
