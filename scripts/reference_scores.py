"""Score the two reference predictions of frame 22 on a labeled split, the bounds every model sits between.

- copy frame 11: the true mask of frame 11 submitted as frame 22 (a perfect segmenter, no motion model);
- ceiling: the true frame-22 mask with objects absent from frame 11 set to background;
- extrapolate (damping d): each object of the true frame-11 mask moved by d x 11 x its last
  velocity (data/motion.py), for each --dampings value: the motion a learned forecaster should beat.
  With the perspective of --horizon_row (default: fitted on the train split's masks; "none": plain
  image-space motion).

    python scripts/reference_scores.py --root_dir DATASET [--split val] [--per_class] [--dampings 0.6 1.0]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from data.format import LABELED_SPLITS, LAST_INPUT_INDEX, TARGET_INDEX  # noqa: E402
from data.metric import SegmentationScore, ceiling_prediction, per_class_table  # noqa: E402
from data.motion import DEFAULT_DAMPING, FIT, extrapolate_mask, horizon_row_arg, resolve_horizon_row  # noqa: E402
from data.readers import SplitIndex  # noqa: E402


def reference_scores(root, split: str = "val", progress: bool = True, dampings=(), horizon_row=None):
    """({"copy_frame_11": SegmentationScore, "ceiling": SegmentationScore, "extrapolate_<d>": ... for d in
    dampings}, number of videos) over a split. horizon_row: the extrapolation's perspective (data/motion.py)."""
    index = SplitIndex(root, split, frame_indices=[], need_mask=True)
    scores = {"copy_frame_11": SegmentationScore(), "ceiling": SegmentationScore(),
              **{f"extrapolate_{d:g}": SegmentationScore() for d in dampings}}
    for i in tqdm(range(len(index)), desc=f"reference {split}", disable=not progress, leave=False):
        masks = index.masks(i, range(TARGET_INDEX + 1))  # (22, H, W)
        target = masks[TARGET_INDEX][None]
        scores["copy_frame_11"].update(masks[LAST_INPUT_INDEX][None], target)
        scores["ceiling"].update(ceiling_prediction(masks)[None], target)
        for d in dampings:
            scores[f"extrapolate_{d:g}"].update(extrapolate_mask(masks[:LAST_INPUT_INDEX + 1], d, horizon_row=horizon_row)[None], target)
    return scores, len(index)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", required=True, help="dataset root holding train/ and val/")
    parser.add_argument("--split", default="val", choices=LABELED_SPLITS, help="labeled split to score (default: val)")
    parser.add_argument("--per_class", action="store_true", help="also print the per-class IoU of every reference")
    parser.add_argument("--dampings", type=float, nargs="*", default=[DEFAULT_DAMPING, 1.0],
                        help="score the motion extrapolation of the true frame-11 mask at each of these dampings")
    parser.add_argument("--horizon_row", type=horizon_row_arg, default=FIT,
                        help="the extrapolation's horizon row: 'fit' (on the train split's true masks), 'none' "
                             "(plain image-space motion) or a row < 0")
    args = parser.parse_args()

    horizon_row = resolve_horizon_row(args.horizon_row, args.root_dir) if args.dampings else None
    scores, num_videos = reference_scores(args.root_dir, args.split, dampings=args.dampings, horizon_row=horizon_row)
    print(f"{args.split}: {num_videos} videos")
    print(f"copy frame 11 Jaccard: {scores['copy_frame_11'].compute():.4f}")
    print(f"ceiling       Jaccard: {scores['ceiling'].compute():.4f}  (true frame 22, objects absent from frame 11 removed)")
    for d in args.dampings:
        print(f"extrapolate   Jaccard: {scores[f'extrapolate_{d:g}'].compute():.4f}  (frame-11 objects moved by "
              f"{d:g} x 11 x their last velocity)")
    if args.per_class:
        for name, score in scores.items():
            print(f"\n{name}\n{per_class_table(score.per_class())}")


if __name__ == "__main__":
    main()
