"""Fit the motion model (forecasting/motion.py) on a split's true masks once, and write it where --motion FILE reads it.

    python scripts/fit_motion.py --root_dir DATASET --out runs/motion.json
    python scripts/predict.py --method motion ... --motion runs/motion.json

The train scripts and scripts/analysis/reference_scores.py fit the same model at start by default (--motion
fit, a minute or two for 200 videos on a CPU); a file saves doing it again in every stage, and records what was used.
The flags that set a parameter (--damping, --contact, ...) fix it instead of fitting it; with --motion FILE
they write a variant of that file. scripts/analysis/reference_scores.py --motion FILE scores it.
"""
import argparse
import sys
from pathlib import Path

from data.format import LABELED_SPLITS
from data.readers import add_exclude_args, read_exclusions
from forecasting.motion_args import MOTION_RULES, add_motion_args, resolve_motion, save_motion
from engine import check_flags, check_output, make_folder, run_cli


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", required=True, help="dataset root holding train/ (the true masks fitted on)")
    p.add_argument("--out", required=True, help="JSON file to write (atomically)")
    p.add_argument("--split", default="train", choices=LABELED_SPLITS, help="labeled split to fit on")
    add_motion_args(p)
    add_exclude_args(p)
    args = p.parse_args(argv)
    check_flags(p, args, MOTION_RULES)
    make_folder(Path(args.out).parent, "--out's folder")  # created as before, when missing
    check_output(args.out, "--out", "json", args)  # before fitting; never over a mask, a checkpoint or an input
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    motion = resolve_motion(args, args.root_dir, split=args.split, exclude=exclude)
    print(f"wrote {save_motion(motion, args.out)}")
    return motion


if __name__ == "__main__":
    sys.exit(run_cli(main))
