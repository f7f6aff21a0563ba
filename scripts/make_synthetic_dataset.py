"""Write a CLEVRER-like synthetic dataset in the competition's exact layout.

    python scripts/make_synthetic_dataset.py --out /tmp/syn --train 40 --val 40 --unlabeled 0 --hidden 0 --seed 0

Videos are numbered like the real set: train from 0, then val, unlabeled and hidden, each after
the one before. Re-running the same command finishes an interrupted run. Running it again with the
same seed and larger counts extends the dataset without touching existing videos, as long as no
existing video would be renumbered: only the last non-empty split can grow, later splits can be
added (e.g. make train+val first, then add --unlabeled and --hidden). A different seed or generator
version is refused, and so is a non-empty folder that is not a synthetic dataset.
"""
import argparse
import os
import sys
import time
from pathlib import Path

from data.format import SPLITS
from data.synthetic import DEFAULT_WORLD, WORLDS, generate_dataset, split_ids
from engine import RunLock, at_least, check_flags, run_cli
from engine.flags import add_old_spellings


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each flag's default after its help."""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--out", default="synthetic_data", help="dataset root to write")
    p.add_argument("--train", type=int, default=100, help="labeled training videos (22 frames + mask.npy)")
    p.add_argument("--val", type=int, default=50, help="labeled validation videos (22 frames + mask.npy)")
    p.add_argument("--unlabeled", type=int, default=200, help="unlabeled videos (22 frames, no mask)")
    p.add_argument("--hidden", type=int, default=50, help="hidden test videos (frames 1-11 only, no mask)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; video i is drawn from (seed, i) alone")
    p.add_argument("--world", choices=sorted(WORLDS), default=DEFAULT_WORLD,
                   help="'real': the camera, sizes and kinematics fitted on the real "
                        "videos, smooth free motion (data/synthetic.py: WORLDS); 'clevr': CLEVR's camera and sizes, "
                        "Bullet's floor (generator version 2's first videos, the default before the real world); "
                        "'random': each video in its own world drawn around 'real' (camera, sizes, friction, bounce, "
                        "densities, launches, noise); recorded in the dataset's manifest")
    p.add_argument("--num_workers", dest="workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="parallel processes: min(2, CPUs) on this machine")
    add_old_spellings(p, {'--workers': '--num_workers'})  # kept for one release
    args = p.parse_args(argv)
    counts = {s: getattr(args, s) for s in SPLITS}
    # one line per bad flag, naming it (engine/flags.py); --workers 0 is the main process
    check_flags(p, args, {**{s: at_least(0) for s in SPLITS}, "seed": at_least(0), "workers": at_least(0)})
    if Path(args.out).exists() and not Path(args.out).is_dir():
        p.error(f"--out {args.out} is a file: give a folder (new, or a dataset this script made)")
    out = Path(args.out).resolve()
    # beside the folder, not in it: a second generator on one --out is refused, naming the first
    RunLock(out, "--out", path=out.parent / f".{out.name}.lock").acquire()
    print(f"args: {vars(args)}")
    for split, ids in split_ids(counts).items():
        if len(ids):
            print(f"  {split:<9} video_{ids.start} .. video_{ids.stop - 1}")
    t0 = time.time()
    n = generate_dataset(args.out, counts, seed=args.seed, workers=args.workers, cfg=WORLDS[args.world])
    print(f"wrote {n} videos to {args.out} in {time.time() - t0:.1f}s "
          f"({sum(counts.values()) - n} were already there)")


if __name__ == "__main__":
    sys.exit(run_cli(main))
