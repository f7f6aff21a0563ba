"""Statistics of a dataset's labeled videos (train and val masks), to compare synthetic with real.

    python scripts/analysis/data_stats.py ../shared/real_samples/Dataset_Student /tmp/syn

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
  ..., N-video blocks  the same two scores taken over consecutive blocks of N videos and averaged
                     (N: --block_videos, by default the fewest labeled videos of any root, the real
                     set's six). A dataset-level Jaccard depends on how many videos it pools: over
                     six videos most classes occur once and the background is one of about 24
                     classes present, over 200 every class pools about twenty videos and the
                     background is one of 49; a root scored over its blocks is scored as the small
                     one is

And the kinematic table, over object tracks (a class in one video), counting an object only in
frames where it is wholly inside the frame (its mask touches no edge), and a velocity only between
two such consecutive frames:
  speed median/p90   speed in px/frame of moving objects (over 0.5 px/frame)
  abrupt change      share of tracks whose speed changes by more than 3 px/frame from one frame to
                     the next at least once (collisions; entering objects slowing down hard)
  still then hit     share of the objects still at the start (frames 1-2) that later move faster
                     than 1.5 px/frame
  speed ratio        median ratio of consecutive speeds of smoothly moving objects (over 1 px/frame,
                     no abrupt change): how fast sliding objects slow down
  entering speed     median speed of objects that enter the view, at their first whole frames
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from data.classes import NUM_CLASSES
from data.format import LAST_INPUT_INDEX, TARGET_INDEX
from data.geometry import MIN_AREA, load_labeled_masks, observations, shape_geometry
from data.readers import read_exclusions
from engine import run_cli

MOVING_PX = 0.5  # a displacement above this counts as moving
ABRUPT_PX = 3.0  # a change of speed above this between consecutive frames is abrupt
HIT_PX = 1.5  # an object still at the start that later moves faster than this was set moving
SMOOTH_PX = 1.0  # speeds above this enter the slow-down ratio


def dataset_stats(root, exclude=(), block_videos: int = None) -> tuple:
    """(mask_stats, kinematic_stats, per-shape geometry) of a root's labeled videos (but `exclude`)."""
    masks = load_labeled_masks(root, exclude)
    return stats_of(masks, block_videos)


def stats_of(masks, block_videos: int = None) -> tuple:
    return mask_stats(masks, block_videos), kinematic_stats(masks), shape_geometry(observations(masks))


def block_jaccard(preds, targets, block_videos: int) -> float:
    """The mean of the dataset-level Jaccard over consecutive blocks of `block_videos` videos (a last, shorter
    block left out)."""
    from data.metric import jaccard
    blocks = range(0, len(preds) - block_videos + 1, block_videos)
    return float(np.mean([jaccard(preds[i:i + block_videos], targets[i:i + block_videos]) for i in blocks]))


def object_measures(m) -> tuple:
    """Per frame and class of one (T, H, W) mask: visible pixels (T, 49), centroid (T, 49, 2) as
    (x, y), and whether the class touches the frame's edge (T, 49). Background is no object."""
    t, h, w = m.shape
    flat = m.reshape(t, -1).astype(np.int64)
    ys, xs = np.divmod(np.arange(h * w), w)
    area = np.stack([np.bincount(f, minlength=NUM_CLASSES) for f in flat])  # (T, 49)
    sx = np.stack([np.bincount(f, weights=xs, minlength=NUM_CLASSES) for f in flat])
    sy = np.stack([np.bincount(f, weights=ys, minlength=NUM_CLASSES) for f in flat])
    area[:, 0] = 0
    centroid = np.stack([sx, sy], -1) / np.maximum(area, 1)[..., None]
    border = np.concatenate([m[:, 0], m[:, -1], m[:, 1:-1, 0], m[:, 1:-1, -1]], axis=1).astype(np.int64)  # (T, edge px)
    edge = np.stack([np.bincount(b, minlength=NUM_CLASSES) for b in border]) > 0
    return area, centroid, edge


def mask_stats(masks, block_videos: int = None) -> dict:
    """The statistics of a list of (22, H, W) masks (see the module's help); block_videos: the size of the
    blocks of the block rows (default: all the videos, one block)."""
    # imported here: torch takes seconds to load, and --help or a wrong path should not wait for it
    from data.metric import ceiling_prediction, copy_last_input_prediction, jaccard
    n_obj, areas, disp, entering = [], [], [], []
    for m in masks:
        area, c, _ = object_measures(m)
        vis = area > 0
        n_obj += list(vis.sum(1))
        areas += list(area[vis])
        both = vis[1:] & vis[:-1]  # visible in consecutive frames
        disp += list(np.hypot(*(c[1:] - c[:-1]).transpose(2, 0, 1))[both])
        entering.append(bool((vis[TARGET_INDEX] & ~vis[LAST_INPUT_INDEX]).any()))
    n_obj, areas, disp = np.array(n_obj), np.array(areas), np.array(disp)
    targets = np.stack([m[TARGET_INDEX] for m in masks])
    copies = np.stack([copy_last_input_prediction(m) for m in masks])
    ceilings = np.stack([ceiling_prediction(m) for m in masks])
    block = min(block_videos or len(masks), len(masks))
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
        "copy-11 Jaccard": jaccard(copies, targets),
        "ceiling Jaccard": jaccard(ceilings, targets),
        f"copy-11, {block}-video blocks": block_jaccard(copies, targets, block),
        f"ceiling, {block}-video blocks": block_jaccard(ceilings, targets, block),
    }


def kinematic_stats(masks) -> dict:
    """How objects move in a list of (22, H, W) masks: the kinematic table of the module's help."""
    moving, ratios, entering = [], [], []
    tracks = abrupt = still = hit = 0
    for m in masks:
        area, c, edge = object_measures(m)
        vis = area > 0
        whole = vis & ~edge
        for k in np.nonzero(vis.any(0))[0]:
            ok = whole[1:, k] & whole[:-1, k]  # (T-1,) a velocity from frame t to t+1
            speed = np.where(ok, np.hypot(*(c[1:, k] - c[:-1, k]).T), np.nan)
            moving += list(speed[ok & (speed > MOVING_PX)])
            pair = ok[1:] & ok[:-1]  # two consecutive velocities
            change = np.abs(np.diff(speed))
            if pair.any():
                tracks += 1
                abrupt += bool((change[pair] > ABRUPT_PX).any())
            smooth = pair & (change <= ABRUPT_PX) & (speed[:-1] > SMOOTH_PX)
            ratios += list((speed[1:] / np.where(smooth, speed[:-1], 1))[smooth])
            if ok[0] and speed[0] <= MOVING_PX:
                still += 1
                hit += bool((speed[ok] > HIT_PX).any())
            if not vis[0, k] and ok.any():
                entering.append(speed[np.argmax(ok)])
    moving = np.array(moving)

    def stat(f, values):
        return float(f(values)) if len(values) else float("nan")
    return {
        "tracks": tracks,
        "speed median (px/frame)": stat(np.median, moving),
        "speed p90 (px/frame)": stat(lambda v: np.percentile(v, 90), moving),
        "abrupt change (share)": abrupt / max(tracks, 1),
        "still objects": still,
        "still then hit (share)": hit / still if still else float("nan"),
        "speed ratio median": stat(np.median, ratios),
        "entering objects": len(entering),
        "entering speed (px/frame)": stat(np.median, entering),
    }


def format_table(names, stats) -> str:
    keys = list(stats[0])
    width = max(12, *(len(n) for n in names))
    lines = [f"{'':<26}" + "".join(f"{n:>{width + 2}}" for n in names)]
    for k in keys:
        cells = []
        for s in stats:
            v = s[k]
            digits = 3 if "Jaccard" in k or "blocks" in k or "share" in k or "ratio" in k else 1
            cells.append(f"{v:>{width + 2}d}" if isinstance(v, (int, np.integer)) else f"{v:>{width + 2}.{digits}f}")
        lines.append(f"{k:<26}" + "".join(cells))
    return "\n".join(lines)


def format_geometry(names, geometries) -> str:
    """One row per shape and measure, one column per root."""
    width = max(12, *(len(n) for n in names))
    lines = [f"{'':<30}" + "".join(f"{n:>{width + 2}}" for n in names)]
    for shape in geometries[0]:
        for k in geometries[0][shape]:
            cells = []
            for g in geometries:
                v = g[shape][k]
                cells.append(f"{v:>{width + 2}d}" if isinstance(v, int) else
                             f"{v:>{width + 2}.{3 if 'k (' in k or 'w/h' in k else 1}f}")
            lines.append(f"{shape + ' ' + k:<30}" + "".join(cells))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="+", help="dataset roots (holding train/ and/or val/ with masks)")
    p.add_argument("--exclude_videos", nargs="+", default=[], metavar="NAME_OR_FILE",
                   help="videos to leave out (e.g. video_1370), or a file with one name a line; with several "
                        "roots each name must be a video of every root")
    p.add_argument("--block_videos", type=int, default=None,
                   help="videos per block of the block rows (default: the fewest labeled videos of any root)")
    args = p.parse_args(argv)
    if args.block_videos is not None and args.block_videos < 1:
        p.error("--block_videos must be at least 1")
    excluded = [read_exclusions(args.exclude_videos, r) if args.exclude_videos else [] for r in args.roots]
    for r, ids in zip(args.roots, excluded):
        if ids:
            print(f"{r}: left out {', '.join(f'video_{v}' for v in ids)} (--exclude_videos)")
    masks = [load_labeled_masks(r, ids) for r, ids in zip(args.roots, excluded)]
    fewest = min(len(m) for m in masks)
    if args.block_videos is not None and args.block_videos > fewest:
        p.error(f"--block_videos {args.block_videos}: a root has only {fewest} labeled videos, so no block of it fits")
    block = args.block_videos or fewest
    stats = [stats_of(m, block) for m in masks]
    names = [Path(r).name or str(r) for r in args.roots]
    print(format_table(names, [s for s, _, _ in stats]))
    print()
    print("how objects move (objects wholly inside the frame):")
    print(format_table(names, [k for _, k, _ in stats]))
    print()
    print(f"geometry per shape (objects wholly inside the frame, {MIN_AREA} px or more; "
          "sqrt(area) = k x (row - h)):")
    print(format_geometry(names, [g for _, _, g in stats]))


if __name__ == "__main__":
    sys.exit(run_cli(main))
