"""How big objects look where they stand: per-object observations from masks, and the per-shape
geometry that compares a camera and object sizes across datasets (real against synthetic).

An observation is one object in one frame, wholly visible (its mask touches neither the frame's
edge nor another object's mask, so nothing in front of it cuts it) and of at least MIN_AREA pixels:
its shape, centroid (row, column), sqrt(area) and mask box (width, height). Objects that touch
another one are left out because how often objects overlap depends on the scenes, not on the
camera, and a cut object looks smaller than it is. Perspective makes an object's apparent size proportional to its distance below the
horizon: sqrt(area) ~ k x (row - h), so h (the row where objects would shrink to nothing) and k
(size growth per row) describe the camera and the object's true size together.
"""
from pathlib import Path

import numpy as np

from data.classes import NUM_CLASSES, SHAPES
from data.format import LABELED_SPLITS, MASK_FILE, list_videos

MIN_AREA = 20  # pixels: smaller pieces are mostly objects cut by the frame's edge
SIZE_ROW = 60  # the row of the geometry table's size at one row: about the real objects' median row (62)
# observation columns
SHAPE, ROW, COL, SIZE, BOX_W, BOX_H = range(6)


def load_labeled_masks(root, exclude=()) -> list:
    """[(22, H, W) uint8 masks] of every video in the root's labeled splits (train, val), but the
    video ids in `exclude`."""
    root = Path(root)
    splits = [root / s for s in LABELED_SPLITS if (root / s).is_dir()]
    if not splits:
        raise FileNotFoundError(
            f"no labeled split in {root}: expected {root}/train or {root}/val with video_N/{MASK_FILE}"
        )
    masks = []
    for split_dir in splits:
        for vid, video in list_videos(split_dir):
            if vid in exclude:
                continue
            path = video / MASK_FILE
            if not path.exists():
                raise FileNotFoundError(f"labeled video without {MASK_FILE}: {path}")
            masks.append(np.load(path))
    return masks


def whole_objects(frame: np.ndarray) -> list:
    """The class ids of one (H, W) mask's wholly visible objects (see the module's help) of MIN_AREA
    pixels or more."""
    cut = np.zeros(NUM_CLASSES, bool)
    cut[np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])] = True
    for a, b in ((frame[1:], frame[:-1]), (frame[:, 1:], frame[:, :-1])):  # 4-neighbours of two objects
        meet = (a != b) & (a > 0) & (b > 0)
        cut[a[meet]] = True
        cut[b[meet]] = True
    cut[0] = True  # background is no object
    area = np.bincount(frame.ravel(), minlength=NUM_CLASSES)
    return np.nonzero((area >= MIN_AREA) & ~cut)[0].tolist()


def observations(masks) -> np.ndarray:
    """(n, 6) float64 observations [shape index, row, col, sqrt(area), box width, box height] of
    every wholly visible object (whole_objects) in a list of (T, H, W) masks."""
    rows = []
    for m in masks:
        for frame in np.asarray(m):
            for k in whole_objects(frame):
                ys, xs = np.nonzero(frame == k)
                rows.append(((k - 1) // 16, ys.mean(), xs.mean(), np.sqrt(len(ys)),
                             xs.max() - xs.min() + 1, ys.max() - ys.min() + 1))
    return np.array(rows, np.float64).reshape(-1, 6)


def size_line(obs: np.ndarray) -> tuple:
    """(h, k): least-squares fit of sqrt(area) = k x (row - h) over observations of one shape."""
    if len(obs) < 2:
        return float("nan"), float("nan")
    k, a = np.polyfit(obs[:, ROW], obs[:, SIZE], 1)
    return float(-a / k), float(k)


def shape_geometry(obs: np.ndarray) -> dict:
    """{shape: {measure: value}}: the per-shape geometry table of a dataset's observations."""
    table = {}
    for s, name in enumerate(SHAPES):
        o = obs[obs[:, SHAPE] == s]
        h, k = size_line(o)
        pct = (lambda col, q: float(np.percentile(o[:, col], q))) if len(o) else (lambda col, q: float("nan"))
        table[name] = {
            "objects": len(o),
            "horizon h (row)": h,
            "slope k (px/row)": k,
            "size median (px)": float(np.median(o[:, SIZE])) if len(o) else float("nan"),
            # the size line at one row: how big the shape is drawn, whatever rows the scenes put it at
            # (the median above also follows where the objects stand: few real tracks per shape)
            f"size at row {SIZE_ROW} (px)": k * (SIZE_ROW - h),
            "row p5": pct(ROW, 5),
            "row p95": pct(ROW, 95),
            "col p5": pct(COL, 5),
            "col p95": pct(COL, 95),
            "box w/h median": float(np.median(o[:, BOX_W] / o[:, BOX_H])) if len(o) else float("nan"),
        }
    return table
