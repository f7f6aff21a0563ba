"""Score the two reference predictions of frame 22 on a labeled split, the bounds every model sits between.

- copy frame 11: the true mask of frame 11 submitted as frame 22 (a perfect segmenter, no motion model);
- ceiling: the true frame-22 mask with objects absent from frame 11 set to background.

    python scripts/reference_scores.py --root_dir DATASET [--split val] [--per_class]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from data.format import LABELED_SPLITS, LAST_INPUT_INDEX, TARGET_INDEX  # noqa: E402
from data.metric import SegmentationScore, ceiling_prediction, per_class_table  # noqa: E402
from data.readers import SplitIndex  # noqa: E402


def reference_scores(root, split: str = "val", progress: bool = True):
    """({"copy_frame_11": SegmentationScore, "ceiling": SegmentationScore}, number of videos) over a split."""
    index = SplitIndex(root, split, frame_indices=[], need_mask=True)
    scores = {"copy_frame_11": SegmentationScore(), "ceiling": SegmentationScore()}
    for i in tqdm(range(len(index)), desc=f"reference {split}", disable=not progress, leave=False):
        masks = index.masks(i, range(TARGET_INDEX + 1))  # (22, H, W)
        target = masks[TARGET_INDEX][None]
        scores["copy_frame_11"].update(masks[LAST_INPUT_INDEX][None], target)
        scores["ceiling"].update(ceiling_prediction(masks)[None], target)
    return scores, len(index)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", required=True, help="dataset root holding train/ and val/")
    parser.add_argument("--split", default="val", choices=LABELED_SPLITS, help="labeled split to score (default: val)")
    parser.add_argument("--per_class", action="store_true", help="also print the per-class IoU of both references")
    args = parser.parse_args()

    scores, num_videos = reference_scores(args.root_dir, args.split)
    print(f"{args.split}: {num_videos} videos")
    print(f"copy frame 11 Jaccard: {scores['copy_frame_11'].compute():.4f}")
    print(f"ceiling       Jaccard: {scores['ceiling'].compute():.4f}  (true frame 22, objects absent from frame 11 removed)")
    if args.per_class:
        for name, score in scores.items():
            print(f"\n{name}\n{per_class_table(score.per_class())}")


if __name__ == "__main__":
    main()
