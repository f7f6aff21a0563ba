"""Motion extrapolation of the objects in a mask sequence: a frame-22 prediction without learning.

Each object (a class: each is in a video at most once) seen in frame 11 is a disc sliding on the
floor. It starts with its last velocity (the move of its centroid from frame 10 to frame 11), slows
down (damping), and bounces off the other discs (contact); the moved objects are painted back to
front (an object whose lowest pixel is lower in the image is nearer the camera, so it covers the
others). Objects absent from frame 10 start still; an object that neither moves nor is hit stays
where it is, pixel for pixel. The parameters are one `Motion`; `fit_motion` finds them from
labeled masks (the train split's), so that a dataset with another camera or other physics gets its own.

- damping: the share of the constant-velocity way an object covers in the 11 frames to frame 22.
  Objects slide with friction, so on average they cover less. Their speed decays by the same
  factor every frame, so nearer frames are damped less.
- horizon_row: the perspective (None: plain image-space motion). The camera looks down at a flat
  floor, so an object sliding at a constant speed does not move at a constant speed in the image,
  and it grows as it comes nearer. With h the image row of the floor's horizon, a pixel at row y and
  column x is the floor point ((x - W/2) / (y - h), focal / (y - h)), up to a scale; motion is
  simulated there and mapped back, and each object is scaled about its centroid by how much nearer
  it came ((y22 - h) / (y11 - h): apparent size goes as 1 / depth). `fit_horizon` finds h: an
  object's square-rooted area divided by (its row - h) stays the same as it moves in depth.
- contact: collisions (0: objects pass through each other). Two discs touch when their centres are
  closer than contact x the mean of their apparent sizes (the square root of their area, in floor
  units), and then exchange the parts of their velocities along the line between them (an elastic
  collision of equal masses: a sliding object that hits a still one stops, and the other slides
  on). Without them, 90% of the objects of a synthetic train split that ended 4 px or more from
  their true place had come within 25 px of another object (scripts/analysis/motion_errors.py --contact 0).
- focal: how deep the floor is for its width, in pixels (the camera's focal length for a level
  camera). Only collisions need it (straight motion is the same for any focal); `fit_motion` fits it.

Objects that touch the frame's edge in frame 10 or 11 (entering or leaving) have a visible part
that grows or shrinks, so their centroid moves faster or slower than they do: along that axis the
velocity is the move of their edge away from the frame's edge.

The reconstructor's extrapolated reference takes this as its starting point and learns what it misses.
"""
import functools
from dataclasses import asdict, dataclass

import numpy as np
import torch

from data.classes import BACKGROUND
from data.format import LAST_INPUT_INDEX, TARGET_INDEX

DEFAULT_DAMPING = 0.7  # the best of 0.6..0.8 on a synthetic train split with the perspective (scripts/analysis/reference_scores.py)
DEFAULT_FOCAL = 300.0  # the renderer's camera has 262 px; fitted: 300-350 on synthetic train splits
FRAMES_AHEAD = TARGET_INDEX - LAST_INPUT_INDEX  # frame 22 is 11 frames after frame 11
MAX_SCALE = 3.0  # an object grows or shrinks by at most this factor (a guard against a bad velocity)
SUBSTEPS = 4  # simulation steps per frame: a collision is found within a quarter of a frame's move


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


def _number(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Motion:
    """How objects move after frame 11 (see the module docstring). Models record `to_config()`, plain data."""

    damping: float = DEFAULT_DAMPING
    horizon_row: float = None
    contact: float = 0.0
    focal: float = DEFAULT_FOCAL

    def __post_init__(self):
        object.__setattr__(self, "damping", _number(self.damping, "damping", 0, 2))
        object.__setattr__(self, "horizon_row", check_horizon_row(self.horizon_row))
        object.__setattr__(self, "contact", _number(self.contact, "contact", 0, 5))
        object.__setattr__(self, "focal", _number(self.focal, "focal", 1, 1e5))

    def to_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config) -> "Motion":
        """A Motion, its to_config() dict (unknown keys are refused, with the known ones named), or None: Motion()."""
        if config is None:
            return cls()
        if isinstance(config, Motion):
            return config
        if not isinstance(config, dict) or set(config) - set(asdict(cls())):
            raise ValueError(f"a motion is a dict with keys among {sorted(asdict(cls()))}, got {config!r}")
        return cls(**config)

    def describe(self) -> str:
        view = "image space" if self.horizon_row is None else f"perspective, horizon row {self.horizon_row:g}"
        bounce = "no collisions" if self.contact == 0 else f"collisions at contact {self.contact:g}" + (
            f", focal {self.focal:g}" if self.horizon_row is not None else "")
        return f"damping {self.damping:g}, {view}, {bounce}"


@functools.lru_cache(maxsize=64)  # the same few dampings, asked for every video of every batch
def _decay(damping: float, substeps: int = SUBSTEPS) -> float:
    """The speed kept per substep (q) so that an object covers damping x 11 x its velocity in 11 frames:
    sum over the 11 x substeps steps i of q**i / substeps = 11 x damping (speed decays, then it moves)."""
    n, target = FRAMES_AHEAD * substeps, FRAMES_AHEAD * damping * substeps
    travel = lambda q: n if q == 1 else q * (1 - q ** n) / (1 - q)  # noqa: E731
    lo, hi = 0.0, 2.0
    for _ in range(100):  # bisection: travel grows with q
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if travel(mid) < target else (lo, mid)
    return (lo + hi) / 2


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


def find_objects(masks: torch.Tensor) -> list:
    """The objects of the last frame of masks (T >= 2, H, W): [(class, its (H, W) mask, pixels (N, 2),
    centroid (2,), image velocity (2,) in pixels per frame)]."""
    masks = torch.as_tensor(masks)
    if masks.dim() != 3 or masks.shape[0] < 2:
        raise ValueError(f"extrapolation needs (T >= 2, H, W) masks, got shape {tuple(masks.shape)}")
    masks = masks.cpu()
    last, before = masks[-1], masks[-2]
    H, W = last.shape
    objects = []
    for cls in torch.unique(last).tolist():
        if cls == BACKGROUND:
            continue
        shape = last == cls
        pixels, then = torch.nonzero(shape), torch.nonzero(before == cls)
        velocity = torch.zeros(2) if len(then) == 0 else _velocity(pixels, then, H, W)
        objects.append((cls, shape, pixels, pixels.float().mean(0), velocity))
    return objects


def _to_floor(points: np.ndarray, motion: Motion, width: int) -> np.ndarray:
    """Image points (..., 2) (row, column) -> where the simulation runs: the floor (perspective), or the image."""
    if motion.horizon_row is None:
        return points.astype(np.float64)
    depth = 1.0 / np.maximum(points[..., 0] - motion.horizon_row, 1e-3)
    return np.stack([(points[..., 1] - (width - 1) / 2) * depth, motion.focal * depth], axis=-1)


def _to_image(points: np.ndarray, motion: Motion, width: int) -> np.ndarray:
    if motion.horizon_row is None:
        return points
    rows_below = motion.focal / points[..., 1]  # row - horizon_row
    return np.stack([motion.horizon_row + rows_below, (width - 1) / 2 + points[..., 0] * rows_below], axis=-1)


def _simulate(start: np.ndarray, velocity: np.ndarray, radius: np.ndarray, steps: list, motion: Motion) -> list:
    """Discs (n) at start (n, 2) with velocity (n, 2) per frame and radius (n,), on the floor: their positions
    after each number of substeps in `steps` (sorted). Speeds decay per substep (damping); touching discs
    that approach exchange their velocities' components along the line between their centres."""
    pos, vel = start.copy(), velocity.copy()
    q, out, wanted = _decay(motion.damping), [], list(steps)
    while wanted and wanted[0] <= 0:
        out.append(pos.copy())
        wanted.pop(0)
    reach = radius[:, None] + radius[None, :]  # (n, n) distance at which two discs touch
    upper = np.triu(np.ones_like(reach, dtype=bool), k=1)
    for step in range(1, steps[-1] + 1 if steps else 0):
        vel *= q
        pos += vel / SUBSTEPS
        if motion.contact > 0 and len(pos) > 1:
            gap = pos[None, :, :] - pos[:, None, :]  # (n, n, 2): from disc i to disc j
            dist = np.hypot(gap[..., 0], gap[..., 1])
            for i, j in np.argwhere(upper & (dist < reach) & (dist > 0)):
                normal = gap[i, j] / dist[i, j]
                approach = (vel[i] - vel[j]) @ normal
                if approach > 0:  # apart-moving discs that still overlap are left to separate
                    vel[i] -= approach * normal
                    vel[j] += approach * normal
        while wanted and wanted[0] == step:
            out.append(pos.copy())
            wanted.pop(0)
    return out


def trajectories(objects: list, horizons, motion: Motion, width: int) -> list:
    """For each horizon, each object's (centroid target (2,), scale) or None where it never moved."""
    if not objects:
        return [[] for _ in horizons]
    centroid = np.stack([o[3].numpy() for o in objects]).astype(np.float64)  # (n, 2)
    velocity = np.stack([o[4].numpy() for o in objects]).astype(np.float64)
    start = _to_floor(centroid, motion, width)
    floor_velocity = start - _to_floor(centroid - velocity, motion, width)
    size = np.sqrt([len(o[2]) for o in objects])
    if motion.horizon_row is not None:
        size = size / (centroid[:, 0] - motion.horizon_row)  # apparent size in floor units
    steps = [int(round(h * SUBSTEPS)) for h in horizons]
    order = np.argsort(steps, kind="stable")
    ends = _simulate(start, floor_velocity, motion.contact * size / 2, [steps[k] for k in order], motion)
    out = [None] * len(horizons)
    for k, end in zip(order, ends):
        moves = []
        for i in range(len(objects)):
            if np.array_equal(end[i], start[i]):
                moves.append(None)
                continue
            if motion.horizon_row is None:
                moves.append((torch.from_numpy(end[i]).float(), 1.0))
                continue
            depth = min(max(end[i, 1], start[i, 1] / MAX_SCALE), start[i, 1] * MAX_SCALE)
            target = _to_image(np.array([end[i, 0], depth]), motion, width)  # the column at the clamped depth
            moves.append((torch.from_numpy(target).float(), float(start[i, 1] / depth)))
        out[k] = moves
    return out


def paint_order(objects: list, trajectories: list) -> list:
    """For each horizon, the moves of the objects painted back to front: [(class, source pixels (N, 2),
    destination rows (N,), destination columns (N,))], each destination pixel taking the class and color of
    its source pixel; pixels leaving the frame dropped."""
    per_horizon = []
    for moves in trajectories:
        placed = []  # (lowest row after the move, class, source pixels, rows, columns)
        for (cls, shape, pixels, centroid, _), move in zip(objects, moves):
            if move is None:
                rows, cols, src = pixels[:, 0], pixels[:, 1], pixels
            else:
                rows, cols, src = _place(shape, pixels, centroid, *move)
            if len(rows):
                placed.append((int(rows.max()), cls, src, rows, cols))
        per_horizon.append([m[1:] for m in sorted(placed, key=lambda m: m[0])])  # far (high in the image) first
    return per_horizon


def paint(moves: list, out: torch.Tensor) -> torch.Tensor:
    """Paint one horizon's moves (paint_order: back to front) into out (H, W) class ids, in place; returns out."""
    for cls, _, rows, cols in moves:
        out[rows, cols] = cls
    return out


def paint_objects(objects: list, targets: list, out: torch.Tensor) -> torch.Tensor:
    """Paint `objects` (find_objects: frame 11's) into out (H, W) class ids, in place, each moved so that its
    centroid lands on its target and scaled about it: targets holds one (centroid (2,), scale) an object, or
    None where it stays (trajectories gives them for each horizon). Painted back to front: the object whose
    lowest pixel is lower in the image is nearer the camera and covers the others. Returns out.

    The one painting step of every mask predictor that moves frame 11's objects (the motion model, its
    fitting, scripts/analysis/motion_errors.py; a learned model of the objects' motion paints with it too)."""
    return paint(paint_order(objects, [targets])[0], out)


def _object_moves(masks: torch.Tensor, horizons, motion: Motion) -> list:
    objects = find_objects(masks)
    return paint_order(objects, trajectories(objects, horizons, Motion.from_config(motion), masks.shape[-1]))


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


def extrapolate_mask(masks: torch.Tensor, motion: Motion = None, horizon: float = FRAMES_AHEAD) -> torch.Tensor:
    """masks (T >= 2, H, W) class ids of frames ..10, 11 (tensor or numpy array) -> (H, W) tensor of the ids
    predicted `horizon` frames after the last. motion: a Motion or its config (None: Motion(), plain)."""
    return extrapolate_sequence(masks, [horizon], motion)[0]


def extrapolate_sequence(masks: torch.Tensor, horizons, motion: Motion = None) -> torch.Tensor:
    """masks (T >= 2, H, W) -> (len(horizons), H, W): extrapolate_mask at each horizon (frames after the last),
    simulating the objects once."""
    masks = torch.as_tensor(masks)
    out = torch.full((len(horizons), *masks.shape[-2:]), BACKGROUND, dtype=masks.dtype, device=masks.device)
    objects = find_objects(masks)
    for k, targets in enumerate(trajectories(objects, horizons, Motion.from_config(motion), masks.shape[-1])):
        paint_objects(objects, targets, out[k])
    return out


def extrapolate_frames(frames: torch.Tensor, masks: torch.Tensor, horizons, motion: Motion = None) -> torch.Tensor:
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
    for k, moves in enumerate(_object_moves(masks, horizons, motion)):
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
    rows = np.broadcast_to(np.arange(H, dtype=np.float64)[:, None], (H, W)).ravel()
    tracks = {}
    for t in range(T):  # per frame, every class's pixel count, row sum and touch of an edge in one pass each
        frame = masks[t].astype(np.int64)
        flat = frame.ravel()
        n = int(flat.max()) + 1
        counts = np.bincount(flat, minlength=n)
        row_sums = np.bincount(flat, weights=rows, minlength=n)
        edge = np.zeros(n, bool)
        edge[frame[0]] = edge[frame[:, 0]] = edge[frame[-1]] = edge[frame[:, -1]] = True
        for cls in np.flatnonzero(counts):
            if cls == BACKGROUND or counts[cls] < MIN_TRACK_PIXELS or edge[cls]:
                continue
            tracks.setdefault(int(cls), []).append((row_sums[cls] / counts[cls], np.sqrt(counts[cls])))
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
    candidates = np.asarray(candidates, dtype=float)
    costs = np.zeros(len(candidates))
    for rows, roots in tracks:  # every candidate at once: one median per track, not one per track and candidate
        ratio = roots[None, :] / (rows[None, :] - candidates[:, None])  # (candidates, frames)
        costs += np.sum((ratio / np.median(ratio, axis=1, keepdims=True) - 1) ** 2, axis=1)
    return float(candidates[int(np.argmin(costs))])


# ---------------------------------------------------------------- the whole motion, from labeled masks

# Where fit_motion starts, and the values it tries, one parameter at a time.
FIT_START = {"damping": DEFAULT_DAMPING, "contact": 1.0, "focal": DEFAULT_FOCAL}
FIT_GRID = {
    "damping": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9),
    "contact": (0.0, 0.8, 0.9, 1.0, 1.1, 1.2),
    "focal": (150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 500.0),
}


def fit_motion(mask_videos, fixed: dict = None, rounds: int = 3) -> Motion:
    """The Motion that best predicts frame 22 from frames 10-11, over a list of (22, H, W) mask videos (the
    train split's true masks): the horizon row by fit_horizon (None when no object travels in depth), then
    damping, contact and focal by coordinate ascent of the competition's Jaccard over FIT_GRID, from the
    defaults, until a round changes nothing. fixed: parameters given, not fitted (a horizon_row of None:
    plain image-space motion)."""
    from data.metric import jaccard  # here: the extrapolation itself needs no metric

    videos = [np.asarray(v) for v in mask_videos]
    if not videos:
        raise ValueError("fit_motion needs at least one labeled video")
    fixed = dict(fixed or {})
    params = {**FIT_START, **fixed}
    if "horizon_row" not in fixed:
        try:
            params["horizon_row"] = fit_horizon(videos)
        except ValueError:  # a tiny or static set: plain image-space motion
            params["horizon_row"] = None
    width = videos[0].shape[-1]
    objects = [find_objects(torch.from_numpy(v[LAST_INPUT_INDEX - 1:LAST_INPUT_INDEX + 1])) for v in videos]
    targets = torch.from_numpy(np.stack([v[TARGET_INDEX] for v in videos]))  # (N, H, W)
    scores = {}

    def score(candidate: dict) -> float:
        key = tuple(sorted(candidate.items()))
        if key not in scores:
            motion, preds = Motion(**candidate), torch.zeros_like(targets)
            for pred, objs in zip(preds, objects):
                paint_objects(objs, trajectories(objs, [FRAMES_AHEAD], motion, width)[0], pred)
            scores[key] = jaccard(preds, targets)  # one update: the whole set at once
        return scores[key]

    free = [name for name in FIT_GRID if name not in fixed]
    for _ in range(rounds):
        before = dict(params)
        for name in free:
            if name == "focal" and (params["horizon_row"] is None or params["contact"] == 0):
                continue  # focal changes nothing then
            params[name] = max(FIT_GRID[name], key=lambda value: (score({**params, name: value}), value == params[name]))
        if params == before:
            break
    return Motion(**params)
