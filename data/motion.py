"""Motion extrapolation of the objects in a mask sequence: a frame-22 prediction without learning.

Each object (a class: each is in a video at most once) seen in frame 11 moves by damping x 11 x its
last velocity (the move of its centroid from frame 10 to frame 11), and the moved objects are
painted back to front (an object whose lowest pixel is lower in the image is nearer the camera, so
it covers the others). Objects absent from frame 10 stay where they are.

Perspective (horizon_row, the image row of the floor's horizon; None: plain image-space motion).
The camera looks down at a flat floor, so an object sliding at a constant speed on the floor does
not move at a constant speed in the image, and it grows as it comes nearer. With the horizon known,
a point at row y and column x of the image maps to (x / (y - h), 1 / (y - h)) on a plane parallel
to the floor (up to an affine map, which moving at constant velocity does not care about): the
velocity is taken and extrapolated there, mapped back, and the object is scaled about its
centroid by how much nearer it came ((y22 - h) / (y11 - h): apparent size goes as 1 / depth). On
synthetic val (scripts/reference_scores.py, true masks, 30 videos): 0.644 in image space at damping
0.65, 0.668 with the perspective at 0.7 (README, "Motion extrapolation"). `fit_horizon` finds h from the labeled masks: an object's square-rooted
area divided by (its row - h) stays the same as it moves in depth.

Objects that touch the frame's edge in frame 10 or 11 (entering or leaving) have a visible part
that grows or shrinks, so their centroid moves faster or slower than they do: along that axis the
velocity is the move of their edge away from the frame's edge.

Why damped: the objects slide with friction and collide, so on average they cover less than
constant velocity predicts over 11 frames. The mask forecaster (SSL_convLSTM_Reconstructor/
forecaster.py) and the reconstructor's extrapolated reference take this as their starting point
and learn what it misses.
"""
import argparse

import numpy as np
import torch

from data.classes import BACKGROUND
from data.format import LAST_INPUT_INDEX, TARGET_INDEX

DEFAULT_DAMPING = 0.7  # the best of 0.6..0.8 on a synthetic train split with the perspective (scripts/reference_scores.py)
FRAMES_AHEAD = TARGET_INDEX - LAST_INPUT_INDEX  # frame 22 is 11 frames after frame 11
MAX_SCALE = 3.0  # an object grows or shrinks by at most this factor (a guard against a bad velocity)


def future_horizons(num_future: int = 1, future_steps: int = FRAMES_AHEAD) -> list:
    """Frames after frame 11 of the last num_future of future_steps predicted frames, evenly spaced up to
    frame 22 (future_steps 11: one per frame 12..22, so num_future 3 gives [9, 10, 11])."""
    return [(k + 1) * FRAMES_AHEAD / future_steps for k in range(future_steps - num_future, future_steps)]


def check_horizon_row(horizon_row):
    """None, or a float row above the image (< 0): every pixel of a frame must show floor."""
    if horizon_row is None:
        return None
    if isinstance(horizon_row, bool) or not isinstance(horizon_row, (int, float)) or not horizon_row < 0:
        raise ValueError(f"horizon_row must be None or a number < 0 (the horizon lies above the image), got {horizon_row!r}")
    return float(horizon_row)


def _velocity(now: torch.Tensor, then: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(2,) image velocity (rows, columns per frame) of an object from its pixels (N, 2) in the last two
    frames: its centroid's move, or along an axis where it touches the frame's edge on one side only,
    the move of its other edge."""
    v = now.float().mean(0) - then.float().mean(0)
    for axis, last in ((0, H - 1), (1, W - 1)):
        low = bool(now[:, axis].min() == 0 or then[:, axis].min() == 0)
        high = bool(now[:, axis].max() == last or then[:, axis].max() == last)
        if low and not high:
            v[axis] = float(now[:, axis].max() - then[:, axis].max())
        elif high and not low:
            v[axis] = float(now[:, axis].min() - then[:, axis].min())
    return v


def _destination(centroid: torch.Tensor, velocity: torch.Tensor, ahead: float, horizon_row):
    """Where an object's centroid is `ahead` frames on at `velocity` (already damped), and its scale."""
    if horizon_row is None:
        return centroid + velocity * ahead, 1.0
    then = centroid - velocity
    z_now, z_then = 1 / (float(centroid[0]) - horizon_row), 1 / max(float(then[0]) - horizon_row, 1e-3)
    x_now, x_then = float(centroid[1]) * z_now, float(then[1]) * z_then
    z = min(max(z_now + ahead * (z_now - z_then), z_now / MAX_SCALE), z_now * MAX_SCALE)
    x = x_now + ahead * (x_now - x_then)
    return torch.tensor([horizon_row + 1 / z, x / z]), z_now / z


def _object_moves(masks: torch.Tensor, horizons, damping: float, horizon_row=None):
    """For each horizon, the moves of frame 11's objects painted back to front: [(class, source pixels
    (N, 2), destination rows (N,), destination columns (N,))], each destination pixel taking the class
    and color of its source pixel; pixels leaving the frame dropped."""
    masks = torch.as_tensor(masks)
    if masks.dim() != 3 or masks.shape[0] < 2:
        raise ValueError(f"extrapolation needs (T >= 2, H, W) masks, got shape {tuple(masks.shape)}")
    horizon_row = check_horizon_row(horizon_row)
    last, before = masks[-1], masks[-2]
    H, W = last.shape
    objects = []  # (class, its pixels' (H, W) mask, pixels (N, 2), centroid (2,), velocity (2,) in pixels per frame)
    for cls in torch.unique(last).tolist():
        if cls == BACKGROUND:
            continue
        shape = last == cls
        pixels, then = torch.nonzero(shape), torch.nonzero(before == cls)
        velocity = torch.zeros(2) if len(then) == 0 else _velocity(pixels, then, H, W)
        objects.append((cls, shape, pixels, pixels.float().mean(0), velocity))
    per_horizon = []
    for horizon in horizons:
        moved = []  # (lowest row after the move, class, source pixels, rows, columns)
        for cls, shape, pixels, centroid, velocity in objects:
            if not velocity.any():
                rows, cols, src = pixels[:, 0], pixels[:, 1], pixels
            else:
                rows, cols, src = _place(shape, pixels, centroid,
                                         *_destination(centroid, velocity * damping, horizon, horizon_row))
            if len(rows):
                moved.append((int(rows.max()), cls, src, rows, cols))
        per_horizon.append([m[1:] for m in sorted(moved, key=lambda m: m[0])])  # far (high in the image) first
    return per_horizon


def _place(shape: torch.Tensor, pixels: torch.Tensor, centroid: torch.Tensor, target: torch.Tensor, scale: float):
    """The pixels of an object (shape: (H, W) bool, pixels its nonzero (N, 2)) moved so that its centroid
    lands on target and scaled by `scale` about it: (rows, columns, source pixels (M, 2)) of the
    destination pixels inside the frame, each with the source pixel it samples (nearest)."""
    H, W = shape.shape
    if scale == 1.0:  # a pure shift: every source pixel lands on one destination pixel
        shift = torch.round(target - centroid).long()
        rows, cols = pixels[:, 0] + shift[0], pixels[:, 1] + shift[1]
        inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
        return rows[inside], cols[inside], pixels[inside]
    lo = torch.floor(target + scale * (pixels.min(0).values - centroid)).long() - 1
    hi = torch.ceil(target + scale * (pixels.max(0).values - centroid)).long() + 2
    r0, c0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    r1, c1 = min(int(hi[0]), H), min(int(hi[1]), W)
    if r1 <= r0 or c1 <= c0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, torch.zeros(0, 2, dtype=torch.long)
    rows, cols = torch.meshgrid(torch.arange(r0, r1), torch.arange(c0, c1), indexing="ij")
    src_r = torch.round(centroid[0] + (rows - target[0]) / scale).long()
    src_c = torch.round(centroid[1] + (cols - target[1]) / scale).long()
    keep = (src_r >= 0) & (src_r < H) & (src_c >= 0) & (src_c < W)
    keep[keep.clone()] = shape[src_r[keep], src_c[keep]]
    return rows[keep], cols[keep], torch.stack([src_r[keep], src_c[keep]], dim=1)


def extrapolate_mask(masks: torch.Tensor, damping: float = DEFAULT_DAMPING,
                     horizon: float = FRAMES_AHEAD, horizon_row=None) -> torch.Tensor:
    """masks (T >= 2, H, W) class ids of frames ..10, 11 (tensor or numpy array) -> (H, W) tensor of the ids
    predicted `horizon` frames after the last (horizon_row: the perspective, see the module docstring)."""
    return extrapolate_sequence(masks, [horizon], damping, horizon_row)[0]


def extrapolate_sequence(masks: torch.Tensor, horizons, damping: float = DEFAULT_DAMPING, horizon_row=None) -> torch.Tensor:
    """masks (T >= 2, H, W) -> (len(horizons), H, W): extrapolate_mask at each horizon (frames after the last),
    finding each object and its velocity once."""
    masks = torch.as_tensor(masks)
    out = torch.full((len(horizons), *masks.shape[-2:]), BACKGROUND, dtype=masks.dtype, device=masks.device)
    for k, moves in enumerate(_object_moves(masks.cpu(), horizons, damping, horizon_row)):
        for cls, _, rows, cols in moves:
            out[k, rows, cols] = cls
    return out


def extrapolate_frames(frames: torch.Tensor, masks: torch.Tensor, horizons,
                       damping: float = DEFAULT_DAMPING, horizon_row=None) -> torch.Tensor:
    """The image counterpart of extrapolate_sequence: frames (T, C, H, W) of the input video and masks
    (>= 2, H, W) of its last frames (the U-Net's) -> (len(horizons), C, H, W), frames' dtype: the last
    frame with each object's pixels moved like its mask, over the floor where it was (the per-pixel
    median of the input frames, from which moving objects have gone; the last frame where its mask
    shows floor). What the reconstructor's reference="extrapolated" mode starts from."""
    frames = torch.as_tensor(frames)
    masks = torch.as_tensor(masks).to(frames.device)
    last = frames[-1]
    floor = torch.where(masks[-1] == BACKGROUND, last, frames.median(dim=0).values)  # (C, H, W)
    out = floor.unsqueeze(0).repeat(len(horizons), 1, 1, 1)
    for k, moves in enumerate(_object_moves(masks.cpu(), horizons, damping, horizon_row)):
        for _, src, rows, cols in moves:
            out[k, :, rows, cols] = last[:, src[:, 0], src[:, 1]]
    return out


# ---------------------------------------------------------------- the horizon, from labeled masks

MIN_TRACK_PIXELS = 30  # an object smaller than this in a frame is too coarse to measure
MIN_DEPTH_TRAVEL = 8.0  # rows an object's centroid must travel for its track to say anything about depth


def object_tracks(masks) -> list:
    """(T, H, W) class ids of one video -> [(rows (n,), square roots of areas (n,))], one per object that
    is whole (not cut by the frame's edge) in at least 5 frames and travels MIN_DEPTH_TRAVEL rows."""
    masks = np.asarray(masks)
    T, H, W = masks.shape
    tracks = {}
    for t in range(T):
        for cls in np.unique(masks[t]):
            if cls == BACKGROUND:
                continue
            pixels = np.argwhere(masks[t] == cls)
            if (len(pixels) < MIN_TRACK_PIXELS or pixels.min() == 0 or pixels[:, 0].max() == H - 1
                    or pixels[:, 1].max() == W - 1):
                continue
            tracks.setdefault(int(cls), []).append((pixels[:, 0].mean(), np.sqrt(len(pixels))))
    out = []
    for points in tracks.values():
        points = np.array(points)
        if len(points) >= 5 and np.ptp(points[:, 0]) >= MIN_DEPTH_TRAVEL:
            out.append((points[:, 0], points[:, 1]))
    return out


def fit_horizon(mask_videos, candidates=np.arange(-400.0, -1.0, 1.0)) -> float:
    """The horizon row that best explains how objects grow as they come nearer, over an iterable of
    (T, H, W) mask videos: the candidate for which every track's sqrt(area) / (row - h) varies least
    (sum of squared relative deviations from the track's median). ValueError when no object travels in
    depth (then pass a horizon row, or None for plain image-space motion)."""
    tracks = [track for masks in mask_videos for track in object_tracks(masks)]
    if not tracks:
        raise ValueError("no object in these masks travels far enough in depth to fit the horizon row")
    costs = []
    for h in candidates:
        cost = 0.0
        for rows, roots in tracks:
            ratio = roots / (rows - h)
            cost += float(np.sum((ratio / np.median(ratio) - 1) ** 2))
        costs.append(cost)
    return float(candidates[int(np.argmin(costs))])


FIT = "fit"  # --horizon_row's default: fit it on the train split's true masks


def horizon_row_arg(text: str):
    """argparse type of --horizon_row: "fit", "none" (plain image-space motion) or a row < 0."""
    if text.lower() in (FIT, "none"):
        return text.lower() if text.lower() == FIT else None
    try:
        return check_horizon_row(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes 'fit', 'none' or a number < 0, got {text!r}") from None


def resolve_horizon_row(value, root, split: str = "train", max_videos: int = 100, print_fn=print):
    """value of --horizon_row -> None or a row: FIT fits it (fit_horizon) on the true masks of the first
    max_videos videos of ROOT/split, and says what it found."""
    if value != FIT:
        return check_horizon_row(value)
    from data.readers import SplitIndex  # here: data/readers.py is not needed for the extrapolation itself

    index = SplitIndex(root, split, frame_indices=[], need_mask=True)
    n = min(len(index), max_videos)
    try:
        row = fit_horizon(index.masks(i, range(index.num_frames)) for i in range(n))
    except ValueError as e:  # a tiny or static dataset: say so, and extrapolate without perspective
        print_fn(f"horizon row: {e} ({n} videos of {index.root / split}); extrapolating without perspective "
                 f"(pass --horizon_row to set it)")
        return None
    print_fn(f"horizon row {row:g}, fitted on the true masks of {n} {split} videos ({index.root / split})")
    return row
