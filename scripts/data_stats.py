"""Statistics of a dataset's labeled videos (train and val masks), to compare synthetic with real.

    python scripts/data_stats.py ../shared/real_samples/Dataset_Student /tmp/syn

Several roots are printed side by side. The measures, over every labeled video of a root:
  objects/frame      distinct object classes in a frame's mask (mean, min, max over frames)
  area               visible pixels of one object in one frame (median, 10th and 90th percentile)
  displacement       how far an object's mask centroid moves, in pixels, between two consecutive
                     frames in which it is visible (median and 90th percentile over all such pairs)
  moving             share of those pairs whose displacement is over 0.5 px
  entering videos    share of videos with a class in frame 22 that frame 11 does not show
  copy-11 Jaccard    the competition score (data/metric.py, dataset-level) of predicting frame 22
                     by the true mask of frame 11
  ceiling Jaccard    the score of the true frame 22 with classes absent from frame 11 removed
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from data.classes import NUM_CLASSES  # noqa: E402
from data.format import LABELED_SPLITS, LAST_INPUT_INDEX, MASK_FILE, TARGET_INDEX, list_videos  # noqa: E402

MOVING_PX = 0.5  # a displacement above this counts as moving


def load_masks(root) -> list:
    """[(22, H, W) uint8 masks] of every video in the root's labeled splits."""
    root = Path(root)
    splits = [root / s for s in LABELED_SPLITS if (root / s).is_dir()]
    if not splits:
        raise FileNotFoundError(
            f"no labeled split in {root}: expected {root}/train or {root}/val with video_N/{MASK_FILE}"
        )
    masks = []
    for split_dir in splits:
        for _, video in list_videos(split_dir):
            path = video / MASK_FILE
            if not path.exists():
                raise FileNotFoundError(f"labeled video without {MASK_FILE}: {path}")
            masks.append(np.load(path))
    return masks


def dataset_stats(root) -> dict:
    return mask_stats(load_masks(root))


def mask_stats(masks) -> dict:
    """The statistics of a list of (22, H, W) masks (see the module's help)."""
    # imported here: torch takes seconds to load, and --help or a wrong path should not wait for it
    from data.metric import ceiling_prediction, copy_last_input_prediction, jaccard
    n_obj, areas, disp, entering = [], [], [], []
    for m in masks:
        t, h, w = m.shape
        flat = m.reshape(t, -1).astype(np.int64)
        ys, xs = np.divmod(np.arange(h * w), w)
        area = np.stack([np.bincount(f, minlength=NUM_CLASSES) for f in flat])  # (T, 49)
        sy = np.stack([np.bincount(f, weights=ys, minlength=NUM_CLASSES) for f in flat])
        sx = np.stack([np.bincount(f, weights=xs, minlength=NUM_CLASSES) for f in flat])
        area[:, 0] = 0  # background is not an object
        vis = area > 0
        n_obj += list(vis.sum(1))
        areas += list(area[vis])
        cy, cx = sy / np.maximum(area, 1), sx / np.maximum(area, 1)
        both = vis[1:] & vis[:-1]  # visible in consecutive frames
        disp += list(np.hypot(cy[1:] - cy[:-1], cx[1:] - cx[:-1])[both])
        entering.append(bool((vis[TARGET_INDEX] & ~vis[LAST_INPUT_INDEX]).any()))
    n_obj, areas, disp = np.array(n_obj), np.array(areas), np.array(disp)
    targets = np.stack([m[TARGET_INDEX] for m in masks])
    return {
        "videos": len(masks),
        "objects/frame mean": n_obj.mean(),
        "objects/frame min": n_obj.min(),
        "objects/frame max": n_obj.max(),
        "area median (px)": np.median(areas),
        "area p10 (px)": np.percentile(areas, 10),
        "area p90 (px)": np.percentile(areas, 90),
        "displacement median (px)": np.median(disp),
        "displacement p90 (px)": np.percentile(disp, 90),
        "moving (%)": 100 * (disp > MOVING_PX).mean(),
        "entering videos (%)": 100 * np.mean(entering),
        "copy-11 Jaccard": jaccard(np.stack([copy_last_input_prediction(m) for m in masks]), targets),
        "ceiling Jaccard": jaccard(np.stack([ceiling_prediction(m) for m in masks]), targets),
    }


def format_table(names, stats) -> str:
    keys = list(stats[0])
    width = max(12, *(len(n) for n in names))
    lines = [f"{'':<26}" + "".join(f"{n:>{width + 2}}" for n in names)]
    for k in keys:
        cells = []
        for s in stats:
            v = s[k]
            cells.append(f"{v:>{width + 2}d}" if isinstance(v, (int, np.integer)) else f"{v:>{width + 2}.{3 if 'Jaccard' in k else 1}f}")
        lines.append(f"{k:<26}" + "".join(cells))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="+", help="dataset roots (holding train/ and/or val/ with masks)")
    args = p.parse_args(argv)
    try:
        stats = [dataset_stats(r) for r in args.roots]
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    names = [Path(r).name or str(r) for r in args.roots]
    print(format_table(names, stats))


if __name__ == "__main__":
    main()
