"""Where the motion model (forecasting/motion.py) goes wrong, on a labeled split's true masks.

    python scripts/analysis/motion_errors.py --root_dir DATASET --split train --motion motion.json

Prints the frame-22 Jaccard of
- the motion model (the true frame-11 objects moved by it),
- perfect motion: each frame-11 object put at its true frame-22 centroid and scaled to its true frame-22 size
  (objects gone by frame 22 dropped): what a better motion model could reach with these shapes,
and, over the objects seen whole in frames 10, 11 and 22, how far the model's centroid lands from the true
one, and what share of the badly placed ones (>= --far px off) came within --near px of another object
between frames 11 and 22: the errors collisions explain.
"""
import argparse
import sys

import numpy as np
import torch
from tqdm import tqdm

from data.format import LABELED_SPLITS, LAST_INPUT_INDEX, TARGET_INDEX
from data.metric import SegmentationScore
from forecasting.motion import FRAMES_AHEAD, find_objects, paint_objects, trajectories
from forecasting.motion_args import MOTION_RULES, add_motion_args, resolve_motion
from data.readers import SplitIndex, add_exclude_args, read_exclusions
from engine import above, check_flags, run_cli


def whole(pixels: torch.Tensor, H: int, W: int) -> bool:
    return len(pixels) > 0 and not bool((pixels.min(0).values == 0).any() or pixels[:, 0].max() == H - 1
                                        or pixels[:, 1].max() == W - 1)


def motion_errors(root, split: str, motion, far: float = 4.0, near: float = 25.0, progress: bool = True,
                  exclude=()) -> dict:
    """{"model": Jaccard of the motion model, "perfect": of perfect motion, "errors": (n,) centroid errors in px of
    the objects whole in frames 10, 11 and 22, "met": (n,) bool, whether each came within `near` px of another
    object after frame 11} over ROOT/split's true masks."""
    index = SplitIndex(root, split, frame_indices=[], need_mask=True, exclude=exclude)
    model, perfect = SegmentationScore(), SegmentationScore()
    errors, met = [], []
    for i in tqdm(range(len(index)), desc=split, leave=False, disable=not progress):
        masks = torch.from_numpy(index.masks(i, range(TARGET_INDEX + 1)))  # (22, H, W)
        H, W = masks.shape[-2:]
        target = masks[TARGET_INDEX]
        objects = find_objects(masks[LAST_INPUT_INDEX - 1:LAST_INPUT_INDEX + 1])
        moves = trajectories(objects, [FRAMES_AHEAD], motion, W)[0]
        model.update(paint_objects(objects, moves, torch.zeros_like(target))[None], target[None])
        kept, true_moves = [], []
        for obj, move in zip(objects, moves):
            cls, _, pixels = obj[:3]
            later = torch.nonzero(target == cls)
            if not len(later):
                continue  # gone by frame 22
            kept.append(obj)
            true_moves.append((later.float().mean(0), float(np.sqrt(len(later) / len(pixels)))))
            before = torch.nonzero(masks[LAST_INPUT_INDEX - 1] == cls)
            if whole(pixels, H, W) and whole(before, H, W) and whole(later, H, W):
                landed = obj[3] if move is None else move[0]
                errors.append(float((landed - later.float().mean(0)).norm()))
                met.append(came_near(masks, cls, near))
        perfect.update(paint_objects(kept, true_moves, torch.zeros_like(target))[None], target[None])
    return {"model": model.compute(), "perfect": perfect.compute(), "errors": np.array(errors),
            "met": np.array(met, dtype=bool), "videos": len(index),
            "describe": index.describe()}


def came_near(masks: torch.Tensor, cls: int, near: float) -> bool:
    """Whether object cls's centroid came within `near` px of another object's in any of frames 11..22."""
    for t in range(LAST_INPUT_INDEX, TARGET_INDEX + 1):
        centroids = {c: torch.nonzero(masks[t] == c).float().mean(0) for c in torch.unique(masks[t]).tolist() if c != 0}
        if cls in centroids and any((centroids[cls] - c).norm() < near for other, c in centroids.items() if other != cls):
            return True
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", required=True, help="dataset root holding the split (and train/, to fit the motion)")
    p.add_argument("--split", default="train", choices=LABELED_SPLITS, help="labeled split to examine")
    p.add_argument("--far", type=float, default=4.0, help="a centroid this many pixels off (or more) is badly placed")
    p.add_argument("--near", type=float, default=25.0, help="centroids closer than this many pixels: objects met")
    add_motion_args(p)
    add_exclude_args(p)
    args = p.parse_args()
    check_flags(p, args, {**MOTION_RULES, "far": above(0), "near": above(0)})
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    motion = resolve_motion(args, args.root_dir, exclude=exclude)
    r = motion_errors(args.root_dir, args.split, motion, args.far, args.near, exclude=exclude)
    errors, met = r["errors"], r["met"]
    far = errors >= args.far
    print(f"{r['describe']}; motion: {motion.describe()}")
    print(f"motion model   Jaccard: {r['model']:.4f}")
    print(f"perfect motion Jaccard: {r['perfect']:.4f}  (true frame-22 centroid and size of each frame-11 object)")
    print(f"centroid error over {len(errors)} objects whole in frames 10, 11 and 22: median {np.median(errors):.2f} px, "
          f"p90 {np.percentile(errors, 90):.2f} px, mean {errors.mean():.2f} px")
    print(f"{far.mean():.0%} of them are {args.far:g} px or more off; {met[far].mean():.0%} of those came within "
          f"{args.near:g} px of another object after frame 11 (of the others: {met[~far].mean():.0%}); they hold "
          f"{errors[far].sum() / errors.sum():.0%} of the summed error")


if __name__ == "__main__":
    sys.exit(run_cli(main))
