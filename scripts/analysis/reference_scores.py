"""Score the reference predictions of frame 22 on a labeled split, the bounds every model sits between.

- copy frame 11: the true mask of frame 11 submitted as frame 22 (a perfect segmenter, no motion model);
- ceiling: the true frame-22 mask with objects absent from frame 11 set to background;
- extrapolate: the objects of the true frame-11 mask moved by the motion model (forecasting/motion.py: sliding
  discs that slow down and collide, in the camera's perspective), fitted on the train split's true
  masks (--motion fit, the default) or read from a file; and the same without collisions
  (--contact 0): the motion a learned forecaster should beat; --motion none leaves these rows out.

    python scripts/analysis/reference_scores.py --root_dir DATASET [--split val] [--per_class] [--motion fit|FILE|none] \
        [--scores_json PATH]
"""
import argparse
import dataclasses
import sys

from tqdm import tqdm

from data.format import LABELED_SPLITS, LAST_INPUT_INDEX, TARGET_INDEX
from data.metric import SegmentationScore, ceiling_prediction, per_class_table
from forecasting.motion import extrapolate_mask
from forecasting.motion_args import MOTION_RULES, add_motion_args, resolve_motion
from data.readers import SplitIndex, add_exclude_args, read_exclusions
from engine import check_flags, run_cli
from pipeline.cli import add_scores_json_arg, check_scores_json, write_scores


def reference_scores(root, split: str = "val", progress: bool = True, motions: dict = None, exclude=()):
    """({"copy_frame_11": SegmentationScore, "ceiling": SegmentationScore, name: ... for each of motions
    ({name: forecasting/motion.py Motion})}, number of videos) over a split."""
    motions = motions or {}
    index = SplitIndex(root, split, frame_indices=[], need_mask=True, exclude=exclude)
    scores = {"copy_frame_11": SegmentationScore(), "ceiling": SegmentationScore(),
              **{name: SegmentationScore() for name in motions}}
    for i in tqdm(range(len(index)), desc=f"reference {split}", disable=not progress, leave=False):
        masks = index.masks(i, range(TARGET_INDEX + 1))  # (22, H, W)
        target = masks[TARGET_INDEX][None]
        scores["copy_frame_11"].update(masks[LAST_INPUT_INDEX][None], target)
        scores["ceiling"].update(ceiling_prediction(masks)[None], target)
        for name, motion in motions.items():
            scores[name].update(extrapolate_mask(masks[:LAST_INPUT_INDEX + 1], motion)[None], target)
    return scores, index


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", required=True, help="dataset root holding train/ and val/")
    parser.add_argument("--split", default="val", choices=LABELED_SPLITS, help="labeled split to score (default: val)")
    parser.add_argument("--per_class", action="store_true", help="also print the per-class IoU of every reference")
    add_motion_args(parser)
    add_exclude_args(parser)
    add_scores_json_arg(parser)
    args = parser.parse_args()
    check_flags(parser, args, MOTION_RULES)
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    check_scores_json(args)  # before any work: never over a checkpoint, a mask or an input

    motions, motion = {}, None
    if args.motion != "none":  # copy and ceiling alone: no fit
        motion = resolve_motion(args, args.root_dir, exclude=exclude)
        motions["extrapolate"] = motion
        if motion.contact > 0:
            motions["no_collisions"] = dataclasses.replace(motion, contact=0.0)
    scores, index = reference_scores(args.root_dir, args.split, motions=motions, exclude=exclude)
    num_videos = len(index)
    print(f"{index.describe()}")
    print(f"copy frame 11 Jaccard: {scores['copy_frame_11'].compute():.4f}")
    print(f"ceiling       Jaccard: {scores['ceiling'].compute():.4f}  (true frame 22, objects absent from frame 11 removed)")
    if motion is not None:
        print(f"extrapolate   Jaccard: {scores['extrapolate'].compute():.4f}  (frame-11 objects moved: {motion.describe()})")
    if "no_collisions" in scores:
        print(f"no collisions Jaccard: {scores['no_collisions'].compute():.4f}  (the same, objects passing through each other)")
    write_scores(args.scores_json, {"split": args.split, "videos": num_videos,
                                    **{name: score.compute() for name, score in scores.items()}})
    if args.per_class:
        for name, score in scores.items():
            print(f"\n{name}\n{per_class_table(score.per_class())}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
