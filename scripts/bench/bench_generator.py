"""Frames per second of the synthetic generator on this machine, with and without PNG writing.

    python scripts/bench/bench_generator.py [--videos 40] [--workers 2] [--world clevr]

Renders --videos labeled videos (22 frames each) in this process without writing anything, then
writes the same number with scripts/make_synthetic_dataset.py's code path (PNG + mask.npy,
--workers processes) into a temporary folder that is deleted afterwards.
"""
import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from data.format import NUM_FRAMES, REAL_SPLIT_SIZES, SPLIT_FRAMES
from data.synthetic import DEFAULT_WORLD, WORLDS, generate_dataset, render_video
from engine import run_cli
from engine.flags import add_old_spellings


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each flag's default after its help."""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--videos", type=int, default=40, help="videos per measurement (22 frames each)")
    p.add_argument("--num_workers", dest="workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for the writing run")
    p.add_argument("--seed", type=int, default=0, help="dataset seed")
    p.add_argument("--world", choices=sorted(WORLDS), default=DEFAULT_WORLD,
                   help="the generator's world (make_synthetic_dataset.py --world)")
    add_old_spellings(p, {'--workers': '--num_workers'})  # kept for one release
    args = p.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")

    cfg = WORLDS[args.world]
    render_video(args.seed, 10**6, 1, cfg)  # build the renderer (rays, floor) outside the timing
    t = time.perf_counter()
    for i in range(args.videos):
        render_video(args.seed, i, cfg=cfg)
    dt = time.perf_counter() - t
    fps_render = args.videos * NUM_FRAMES / dt
    print(f"render only, 1 process:            {fps_render:7.1f} frames/s")

    with tempfile.TemporaryDirectory(prefix="bench_synthetic_") as tmp:
        cpu0 = cpu_seconds()
        t = time.perf_counter()
        generate_dataset(Path(tmp) / "root", {"train": args.videos}, seed=args.seed, workers=args.workers, cfg=cfg,
                         progress=False)
        dt = time.perf_counter() - t
        cpu = cpu_seconds() - cpu0
    frames = args.videos * NUM_FRAMES
    fps_write = frames / dt
    print(f"render + PNG/mask writing, {args.workers} workers: {fps_write:7.1f} frames/s")
    # the machine may be shared: CPU time says what the same work gives on otherwise idle cores
    print(f"  CPU time {1000 * cpu / frames:.1f} ms a frame -> {frames / cpu * args.workers:.0f} frames/s "
          f"on {args.workers} otherwise idle cores")
    total = sum(n * SPLIT_FRAMES[s] for s, n in REAL_SPLIT_SIZES.items())
    print(f"competition-scale set ({sum(REAL_SPLIT_SIZES.values())} videos, {total} frames) "
          f"at this rate: {total / fps_write / 60:.0f} min")


if __name__ == "__main__":
    sys.exit(run_cli(main))
