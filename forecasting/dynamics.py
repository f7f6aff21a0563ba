"""Learned object dynamics: the objects of frames 1-11 rolled forward to frame 22, then painted.

From a video's masks of frames 1-11 (the U-Net's, or true ones), each object becomes a track
(forecasting/tracks.py). A recurrent interaction network reads the tracks frame by frame, then rolls
every object forward one frame at a time for frames 12-22 on its own predictions:

    per object i and frame:  x_i = encode(position, velocity, size, edge flags) + embed(shape, material)
                             m_i = sum over the other objects j of pair(h_i, h_j, p_j - p_i, v_j - v_i, sizes)
                             h_i = GRU([x_i, m_i], h_i)
    after frame 11 also:     v_i = keep v_i + dv(h_i);  p_i += v_i;  log size_i += ds(h_i);  visible_i = sigmoid(vis(h_i))

so an object keeps its velocity, slowed by a learned share `keep` per frame, unless the network changes it
(friction, a hit from the object beside it, the camera's perspective). The frame-22 mask is each frame-11 object's pixels moved by its predicted
move and scaled by its predicted size ratio, painted back to front (forecasting/motion.py: paint_objects), and
objects predicted to have left the view left out. Objects that were seen in frames 1-10 but not in
frame 11 take part in the interactions but are not painted (there is no frame-11 shape to move).

Positions, velocities and sizes are the image's (pixels), or, for a model built with a view (a FloorView,
fitted on its training masks), the floor's (forecasting/floor.py): the model then does not hang on one
camera, and is applied through another by giving predict_masks that camera's view.

A guided model (guide: a motion model) rolls out the motion model's forecast plus a learned offset instead of
constant velocity: untrained, it places objects as the motion model does.

A model may also carry a blend with the motion model (forecasting/motion.py): each object's frame-22 centroid
and size are then the weighted mean of the two forecasts, `weight` the learned model's share. Two forecasters
that err differently average to smaller errors than either (on synthetic val, and on the real videos; see
docs/RESULTS.md), and the hand-written one carries to another world unchanged. predict_masks applies it.
"""
import numpy as np
import torch
from torch import nn

from data.classes import BACKGROUND, NUM_CLASSES
from data.format import LAST_INPUT_INDEX, NUM_FRAMES, NUM_FUTURE_FRAMES, NUM_INPUT_FRAMES
from engine import register_model
from forecasting.floor import FloorView, floor_size, object_pixels, to_floor, to_image
from forecasting.motion import FRAMES_AHEAD, MAX_SCALE, Motion, find_objects, paint_objects, trajectories
from forecasting.tracks import MAX_OBJECTS, Tracks, class_features, extract_tracks

FUTURE_STEPS = NUM_FUTURE_FRAMES  # frames 12..22
POS_SCALE = 100.0  # pixels per unit of the network's position inputs
VEL_SCALE = 10.0  # pixels per frame per unit of its velocity inputs and outputs
SIZE_SCALE = 30.0  # pixels per unit of the square root of an object's area
FLOOR_SPAN = 400.0  # floor units (forecasting/floor.py) per unit of the position inputs, when the model reads the floor
NUM_FEATURES = 10  # per object and frame: present, row, column, velocity (2), size, four edge flags
NUM_STATIC = 5  # one-hot shape (3) and material (2)
NUM_PAIR_FEATURES = 9  # relative position (2), distance, relative velocity (2), both sizes, gap, closing speed


# ---------------------------------------------------------------- tracks -> tensors


def _frame_features(present, centroid, velocity, area, cut, height: int, width: int) -> np.ndarray:
    """(..., NUM_FEATURES) float32 of one frame's objects (arrays (..., N[, k])); zero where absent."""
    f = np.concatenate([present[..., None], centroid[..., :1] / height, centroid[..., 1:] / width,
                        velocity / VEL_SCALE, np.sqrt(area)[..., None] / SIZE_SCALE, cut], -1).astype(np.float32)
    return np.where(present[..., None], f, 0)


def _floor_features(tracks: Tracks, view: np.ndarray) -> np.ndarray:
    """_frame_features on the floor (forecasting/floor.py): position, velocity and size in floor units."""
    pos = to_floor(tracks.centroid, view)
    vel = pos - to_floor(tracks.centroid - tracks.velocity, view)  # zero where the image velocity is
    size = floor_size(tracks.centroid[..., 0], tracks.area, view)
    f = np.concatenate([tracks.present[..., None], pos / FLOOR_SPAN, vel / VEL_SCALE, size[..., None] / SIZE_SCALE,
                        tracks.cut], -1).astype(np.float32)
    return np.where(tracks.present[..., None], f, 0)


def track_sample(masks, num_slots: int = MAX_OBJECTS, with_targets: bool = None, end: int = LAST_INPUT_INDEX,
                 whole: Tracks = None, view: FloorView = None, guide: Motion = None) -> dict:
    """One video's masks (T, H, W) -> the model's inputs (and, when T covers frame 22, its targets), as tensors
    with num_slots object slots (padding: exists False). `end` < frame 11's index makes a training window
    that ends earlier: its input frames are the 11 up to `end` (those before the video's start empty) and its
    targets the 11 after it; "frame 11" and "frame 22" below then mean `end` and `end` + 11.

    inputs:  obs (11, S, F) per-frame features of frames 1-11; static (S, 5); exists (S,) a real object;
             paintable (S,) present in frame 11; start_px (S, 2) its frame-11 centroid in the image (its last
             seen one if absent from frame 11); start_pos (S, 2) the same where the model works (the image,
             or the floor); start_vel (S, 2) its frame-11 velocity there; start_size (S,) log of its size there
             (the square root of its area, or its floor size); classes (S,) class ids (0 for padding); pixel_classes
             (S,) the class its frame-11 pixels carry (another where a segmenter's flip was merged into it:
             tracks.merge_class_flips); half (S, 2) half its box in the image; view (4,) the FloorView's numbers
             (zeros: the image).
    targets: move (11, S, 2) the move from frame 11 to each of frames 12-22 (tracks.shift; on the floor: the
             floor move of that image point); move_ok (11, S); log_scale (11, S) the log of the size ratio to
             frame 11 (on the floor: less the perspective's share), scale_ok (11, S) where the object is whole
             in both; visible (11, S) present in the frame.
    whole: the tracks of all 22 frames (extract_tracks), when the caller already has them (several windows of
    one video share them). view: work on the floor as this camera shows it (forecasting/floor.py), not in pixels.
    guide: a motion model (forecasting/motion.py) whose forecast the learned one corrects (ObjectDynamics' guide);
    the inputs then also hold guide_move (11, S, 2) and guide_scale (11, S), its forecast for frames 12-22 of each
    slot whose class has pixels in frame 11 (found as paint_frame finds them), in the terms of the targets; zeros
    for the other slots and for objects it keeps still.
    """
    masks = np.asarray(masks.cpu() if hasattr(masks, "cpu") else masks)
    with_targets = masks.shape[0] >= NUM_FRAMES if with_targets is None else with_targets
    if not 0 <= end <= LAST_INPUT_INDEX:
        raise ValueError(f"end must be a frame index in 0..{LAST_INPUT_INDEX}, got {end}")
    window = masks[max(0, end + 1 - NUM_INPUT_FRAMES):end + 1]
    if len(window) < NUM_INPUT_FRAMES:  # frames before the video's start: nothing in them
        window = np.concatenate([np.zeros((NUM_INPUT_FRAMES - len(window), *masks.shape[1:]), masks.dtype), window])
    # Objects are those of the input frames: one that enters later cannot be known at inference.
    inputs = extract_tracks(window, max_objects=num_slots)
    n, S, T = len(inputs), num_slots, NUM_INPUT_FRAMES
    H, W = inputs.height, inputs.width
    last = LAST_INPUT_INDEX

    v = None if view is None else view.as_array()
    obs = np.zeros((T, S, NUM_FEATURES), np.float32)
    if v is None:
        obs[:, :n] = _frame_features(inputs.present, inputs.centroid, inputs.velocity, inputs.area, inputs.cut, H, W)
    else:
        obs[:, :n] = _floor_features(inputs, v)
    seen = inputs.present.any(0)
    # last frame each object was seen in (frame 11 for those present there)
    last_seen = T - 1 - np.argmax(inputs.present[::-1], axis=0) if n else np.zeros(0, np.int64)
    idx = np.arange(n)
    sample = {
        "obs": obs,
        "static": np.zeros((S, NUM_STATIC), np.float32),
        "exists": np.zeros(S, bool),
        "paintable": np.zeros(S, bool),
        "start_px": np.zeros((S, 2), np.float32),
        "start_pos": np.zeros((S, 2), np.float32),
        "start_vel": np.zeros((S, 2), np.float32),
        "start_size": np.zeros(S, np.float32),
        "half": np.zeros((S, 2), np.float32),
        "classes": np.zeros(S, np.int64),
        "pixel_classes": np.zeros(S, np.int64),
        "view": np.zeros(4, np.float32) if v is None else v,
    }
    sample["static"][:n] = class_features(inputs.classes)
    sample["exists"][:n] = seen
    sample["paintable"][:n] = inputs.present[last]
    start_px = inputs.centroid[last_seen, idx]
    sample["start_px"][:n] = start_px
    start_area = np.maximum(inputs.area[last_seen, idx], 1)
    if v is None:
        sample["start_pos"][:n] = start_px
        sample["start_vel"][:n] = np.where(inputs.present[last][:, None], inputs.velocity[last], 0)
        sample["start_size"][:n] = np.log(np.sqrt(start_area))
    else:
        sample["start_pos"][:n] = to_floor(start_px, v)
        sample["start_vel"][:n] = obs[last, :n, 3:5] * VEL_SCALE
        sample["start_size"][:n] = np.log(floor_size(start_px[:, 0], start_area, v))
    box = inputs.box[last_seen, idx]
    sample["half"][:n] = (box[:, 2:] - box[:, :2] + 1) / 2
    sample["classes"][:n] = inputs.classes
    sample["pixel_classes"][:n] = inputs.pixel_class[last]
    if guide is not None:
        sample.update(_guide_arrays(window, sample["pixel_classes"], start_px, v, guide, S))
    if with_targets:
        if whole is None:
            whole = video_tracks(masks)
        slot = {int(c): k for k, c in enumerate(whole.classes)}
        # an input class that the whole video's masks lack in the input frames: a segmenter's error in the inputs
        # (tracks.segmenter_errors); it has no targets to move or scale by, and stays visible (the object it
        # stands for is there)
        window_frames = np.arange(max(0, end + 1 - NUM_INPUT_FRAMES), end + 1)
        known = np.array([int(c) in slot and bool(whole.present[window_frames, slot[int(c)]].any())
                          for c in inputs.classes], bool)
        rows = np.array([slot.get(int(c), 0) for c in inputs.classes], np.int64)  # each input object in the whole video
        move = np.zeros((FUTURE_STEPS, S, 2), np.float32)
        move_ok, scale_ok = np.zeros((FUTURE_STEPS, S), bool), np.zeros((FUTURE_STEPS, S), bool)
        log_scale, visible = np.zeros((FUTURE_STEPS, S), np.float32), np.zeros((FUTURE_STEPS, S), np.float32)
        visible[:, :n] = 1  # no true object at all: every input one is an error, left visible
        if len(whole.classes):
            last = end  # frame 11 of the window, in the whole video
            future = np.arange(end + 1, end + 1 + FUTURE_STEPS)
            m, ok = whole.shift(np.full(FUTURE_STEPS, last), future)  # (11, N_all, 2), (11, N_all)
            whole_both = whole.whole(last)[None, rows] & whole.present[future][:, rows] & ~whole.cut[future][:, rows].any(-1)
            ratio = np.sqrt(np.maximum(whole.area[future][:, rows], 1) / np.maximum(whole.area[last][None, rows], 1))
            m, ok = m[:, rows], ok[:, rows] & known
            whole_both &= known
            log_ratio = np.log(ratio)
            if v is not None:  # the floor move of the followed image point, and the size change the perspective leaves
                moved = start_px[None] + m
                m = np.where(ok[..., None], to_floor(moved, v) - to_floor(start_px, v)[None], 0)
                log_ratio = log_ratio - np.log(object_pixels(moved[..., 0], v) / object_pixels(start_px[None, :, 0], v))
            move[:, :n], move_ok[:, :n] = m, ok
            log_scale[:, :n], scale_ok[:, :n] = np.where(whole_both, log_ratio, 0), whole_both
            visible[:, :n] = np.where(known, whole.present[future][:, rows], True)
        sample.update(move=move, move_ok=move_ok, log_scale=log_scale, scale_ok=scale_ok, visible=visible)
    return {k: torch.from_numpy(v) for k, v in sample.items()}


def _guide_arrays(window: np.ndarray, pixel_classes: np.ndarray, start_px: np.ndarray, view, motion: Motion,
                  num_slots: int) -> dict:
    """The motion model's forecast of a window's frame-11 objects for frames 12-22 (track_sample: guide), each
    object's slot found by the class its frame-11 pixels carry, as paint_frame finds it."""
    move = np.zeros((FUTURE_STEPS, num_slots, 2), np.float32)
    log_scale = np.zeros((FUTURE_STEPS, num_slots), np.float32)
    objects = find_objects(torch.from_numpy(np.ascontiguousarray(window[-2:])))
    slot = {int(c): k for k, c in enumerate(pixel_classes[:len(start_px)]) if c != BACKGROUND}
    steps = trajectories(objects, list(range(1, FUTURE_STEPS + 1)), motion, window.shape[-1])
    for j, obj in enumerate(objects):
        k = slot.get(obj[0])
        if k is None:
            continue
        for t in range(FUTURE_STEPS):
            if steps[t][j] is None:  # the motion model keeps it where it is
                continue
            target, scale = steps[t][j]
            moved = start_px[k] + (target.numpy() - obj[3].numpy())  # the same move, from the track's centroid
            if view is None:
                move[t, k], log_scale[t, k] = moved - start_px[k], np.log(scale)
            else:  # as the targets: the floor move of that point, the size change less the perspective's share
                move[t, k] = to_floor(moved, view) - to_floor(start_px[k], view)
                log_scale[t, k] = np.log(scale) - np.log(object_pixels(moved[0], view) / object_pixels(start_px[k, 0], view))
    return {"guide_move": move, "guide_scale": log_scale}


def video_tracks(masks) -> Tracks:
    """Every object of all 22 frames of a video: where track_sample finds each window's targets."""
    return extract_tracks(np.asarray(masks)[:NUM_FRAMES], max_objects=NUM_CLASSES)


def on_floor(view: torch.Tensor) -> bool:
    """Whether a sample's (4,) or a batch's (B, 4) view numbers are a FloorView's (zeros: a model of the image)."""
    return bool((view[..., 1] > 0).any())


def flip_sample(sample: dict, width: int) -> dict:
    """The sample of the left-right mirrored video: columns (or floor laterals) mirrored, their velocities and
    moves negated, the left and right edge flags swapped."""
    out = dict(sample)
    obs = sample["obs"].clone()
    present = obs[..., 0] > 0
    floor = on_floor(sample["view"])
    obs[..., 2] = torch.where(present, -obs[..., 2] if floor else (width - 1) / width - obs[..., 2], 0)
    obs[..., 4] = -obs[..., 4]
    obs[..., [7, 9]] = obs[..., [9, 7]]  # edge flags (top, left, bottom, right) start at feature 6
    out["obs"] = obs
    exists = sample["exists"]
    pos = sample["start_pos"].clone()
    pos[:, 1] = torch.where(exists, -pos[:, 1] if floor else width - 1 - pos[:, 1], 0)
    out["start_pos"] = pos
    px = sample["start_px"].clone()
    px[:, 1] = torch.where(exists, width - 1 - px[:, 1], 0)
    out["start_px"] = px
    out["start_vel"] = sample["start_vel"] * torch.tensor([1.0, -1.0])
    for key in ("move", "guide_move"):
        if key in sample:
            out[key] = sample[key] * torch.tensor([1.0, -1.0])
    return out


# ---------------------------------------------------------------- the model


PER_FRAME = ("obs", "move", "move_ok", "log_scale", "scale_ok", "visible", "guide_move", "guide_scale")  # (B, T, S, ...)
PER_VIDEO = ("view",)  # (B, ...); the rest (B, S, ...)


def _take_slots(batch: dict, n: int) -> dict:
    return {k: v if k in PER_VIDEO else v.narrow(2 if k in PER_FRAME else 1, 0, n) for k, v in batch.items()}


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out))


def blend_weight(weight) -> float:
    """The learned model's share of a blend with the motion model, checked to lie in [0, 1] (NaN refused too)."""
    weight = float(weight)
    if not 0 <= weight <= 1:
        raise ValueError(f"the learned model's share of a blend must be in [0, 1], got {weight}")
    return weight


@register_model("dynamics", train_script="forecasting/train_dynamics.py")
class ObjectDynamics(nn.Module):
    """A recurrent interaction network over a video's objects (see the module docstring).

    forward(sample batch) -> {"move": (B, 11, S, 2) pixels moved since frame 11, "log_scale": (B, 11, S),
    "visible": (B, 11, S) logits}, for frames 12..22. `teacher` (a batch with targets) and teacher_prob:
    with that probability per video and step, the next step starts from the true state instead of the
    predicted one (scheduled sampling; 0: the model rolls out on its own predictions, as at inference).
    """

    def __init__(self, hidden: int = 96, message: int = 96, height: int = 160, width: int = 240, view: dict = None,
                 keep: float = None, blend: dict = None, guide: dict = None):
        super().__init__()
        if hidden < 1 or message < 1:
            raise ValueError(f"hidden and message must be >= 1, got {hidden}, {message}")
        if keep is not None and not 0 < keep < 1:
            raise ValueError(f"keep must be in (0, 1) (or None: no decay), got {keep}")
        self.config = {"hidden": hidden, "message": message, "height": height, "width": width}
        # keep: the share of its velocity an object keeps from one future frame to the next before the network's
        # change, a learned number that starts here (objects slide with friction: a model that starts at constant
        # velocity spends its first epochs learning to slow every object down). None: no such factor.
        self.keep = None
        if keep is not None:
            self.keep = nn.Parameter(torch.tensor(float(np.log(keep / (1 - keep)))))
            self.config["keep"] = float(keep)
        # view: the camera of the training data (forecasting/floor.py: FloorView.to_config); given, the model reads
        # and predicts tracks on the floor, and predict_masks uses it unless told another dataset's view
        self.view = None if view is None else FloorView.from_config(view)
        if view is not None:
            self.config["view"] = self.view.to_config()
        self.blend = None  # (the learned model's share, the motion model) of the frame-22 forecast: set_blend
        if blend is not None:
            if not isinstance(blend, dict) or set(blend) != {"weight", "motion"}:
                raise ValueError(f"a blend is {{'weight': share, 'motion': motion config}}, got {blend!r}")
            self.set_blend(blend["motion"], blend["weight"])
        # guide: a motion model (its config) whose forecast the network corrects, instead of rolling objects on at
        # constant velocity: each object's place is the motion model's plus a learned offset that starts at zero,
        # so an untrained model places every tracked object as the motion model does (an object too small to
        # track stays where it is, as in any model of this kind), and training only learns what it misses (the
        # inputs carry the guide: track_sample(guide=)). A blend of weight W with the same motion model is then
        # that model's forecast plus W x the offset.
        self.guide = None
        if guide is not None:
            if keep is not None:
                raise ValueError("a guided model follows its motion model's slowing down: it takes no keep")
            self.guide = Motion.from_config(guide)
            self.config["guide"] = self.guide.to_config()
        self.hidden, self.height, self.width = hidden, height, width
        self.encode = _mlp(NUM_FEATURES, hidden, hidden)
        self.embed = nn.Linear(NUM_STATIC, hidden)
        self.pair = _mlp(2 * hidden + NUM_PAIR_FEATURES, message, message)
        self.cell = nn.GRUCell(hidden + message, hidden)
        self.head = _mlp(hidden, hidden, 4)  # velocity change (2), log size change, visible logit
        nn.init.zeros_(self.head[-1].weight)  # starts as constant velocity: nothing changes until it learns
        nn.init.zeros_(self.head[-1].bias)

    def set_view(self, view: FloorView) -> None:
        """Another camera for a model of the floor (fine-tuning on another dataset): what predict_masks uses."""
        if self.view is None:
            raise ValueError("a model of image pixels has no floor view to set")
        self.view = view
        self.config["view"] = view.to_config()

    def set_blend(self, motion, weight: float) -> None:
        """Forecast each object's frame-22 centroid and size as `weight` x this model's + (1 - weight) x the motion
        model's (a Motion or its config); what predict_masks does unless told otherwise. weight 1: no blend."""
        weight = blend_weight(weight)
        motion = Motion.from_config(motion)
        self.blend = (weight, motion)
        self.config["blend"] = {"weight": weight, "motion": motion.to_config()}

    def _messages(self, h, pos, vel, size, alive):
        """Sum over the other live objects j of pair(h_i, h_j, relative position, distance, relative velocity,
        sizes, the gap between them and how fast it closes): (B, S, message). h (B, S, hidden); pos, vel (B, S, 2) pixels; size (B, S) log; alive (B, S).

        pair is Linear -> SiLU -> Linear. Its first layer is split by input (own state, other's state, the pair's
        geometry) so each state goes through it once per object, not once per pair; its second layer is linear,
        so it is applied once to the sum over j rather than to every pair."""
        B, S, _ = h.shape
        hid = self.hidden
        first, second = self.pair[0], self.pair[2]
        w_own, w_other, w_geo = first.weight[:, :hid], first.weight[:, hid:2 * hid], first.weight[:, 2 * hid:]
        rel = (pos[:, None, :, :] - pos[:, :, None, :]) / POS_SCALE  # (B, S, S, 2): from i (dim 1) to j (dim 2)
        dist = rel.norm(dim=-1, keepdim=True)
        rel_v = (vel[:, None, :, :] - vel[:, :, None, :]) / VEL_SCALE
        s = torch.exp(size) / SIZE_SCALE
        size_i, size_j = s[:, :, None, None].expand(B, S, S, 1), s[:, None, :, None].expand(B, S, S, 1)
        # How near two objects are to touching, and how fast they close in: what decides a collision.
        gap = dist - (size_i + size_j) * SIZE_SCALE / (2 * POS_SCALE)
        closing = -(rel_v * rel).sum(-1, keepdim=True) / dist.clamp(min=1e-3)
        geo = torch.cat([rel, dist, rel_v, size_i, size_j, gap, closing], -1)  # (B, S, S, NUM_PAIR_FEATURES)
        z = (h @ w_own.T)[:, :, None] + (h @ w_other.T)[:, None, :] + geo @ w_geo.T + first.bias  # (B, S, S, message)
        weight = (alive[:, :, None] & alive[:, None, :] & ~torch.eye(S, dtype=torch.bool, device=h.device)).to(h.dtype)
        summed = (self.pair[1](z) * weight[..., None]).sum(2)  # (B, S, message)
        return summed @ second.weight.T + weight.sum(2, keepdim=True) * second.bias

    def _step(self, h, features, static, pos, vel, size, alive):
        x = self.encode(features) + static
        m = self._messages(h, pos, vel, size, alive)
        B, S, _ = h.shape
        new = self.cell(torch.cat([x, m], -1).flatten(0, 1), h.flatten(0, 1)).view(B, S, -1)
        return torch.where(alive[..., None], new, h)

    def _features(self, pos, vel, size, half, image_pos=None):
        """Per-object features (B, S, F) of a predicted frame: present, position, velocity, size, and the edges
        its box (half extents scaled with its size) would touch. image_pos: where it is in the image, when the
        model works on the floor."""
        H, W = self.height, self.width
        area_root = torch.exp(size)
        at = pos if image_pos is None else image_pos
        lo, hi = at - half, at + half
        cut = torch.stack([lo[..., 0] <= 0, lo[..., 1] <= 0, hi[..., 0] >= H - 1, hi[..., 1] >= W - 1], -1)
        where = [pos[..., :1] / H, pos[..., 1:] / W] if image_pos is None else [pos / FLOOR_SPAN]
        return torch.cat([torch.ones_like(size)[..., None], *where, vel / VEL_SCALE,
                          area_root[..., None] / SIZE_SCALE, cut.to(pos.dtype)], -1)

    def forward(self, batch: dict, teacher: dict = None, teacher_prob: float = 0.0) -> dict:
        # Objects fill the first slots: run on as many slots as the fullest video of the batch needs, then pad
        # the outputs back to the batch's slots.
        S = batch["exists"].shape[1]
        n = max(int(batch["exists"].any(0).nonzero().max()) + 1 if bool(batch["exists"].any()) else 1, 1)
        out = self._rollout(_take_slots(batch, n), None if teacher is None else _take_slots(teacher, n), teacher_prob)
        return {"move": nn.functional.pad(out["move"], (0, 0, 0, S - n)),
                "log_scale": nn.functional.pad(out["log_scale"], (0, S - n)),
                "visible": nn.functional.pad(out["visible"], (0, S - n))}

    def _rollout(self, batch: dict, teacher: dict, teacher_prob: float) -> dict:
        obs = batch["obs"].float()  # (B, 11, S, F)
        B, T, S, _ = obs.shape
        exists = batch["exists"]
        static = self.embed(batch["static"].float())
        h = obs.new_zeros(B, S, self.hidden)
        floor = self.view is not None
        view = batch["view"].float()[:, None, :] if floor else None  # (B, 1, 4)
        for t in range(T):  # read frames 1-11
            present = obs[:, t, :, 0] > 0
            if floor:
                pos = obs[:, t, :, 1:3] * FLOOR_SPAN
            else:
                pos = torch.stack([obs[:, t, :, 1] * self.height, obs[:, t, :, 2] * self.width], -1)
            vel, size = obs[:, t, :, 3:5] * VEL_SCALE, torch.log(obs[:, t, :, 5] * SIZE_SCALE + 1e-6)
            h = self._step(h, obs[:, t], static, pos, vel, size, present)

        start_pos, start_size = batch["start_pos"].float(), batch["start_size"].float()
        pos, vel, size, half = start_pos, batch["start_vel"].float(), start_size, batch["half"].float()
        guided = self.guide is not None
        if guided:
            if "guide_move" not in batch:
                raise ValueError("a guided model needs its motion model's forecast in the inputs: "
                                 "track_sample(..., guide=model.guide)")
            if teacher is not None and teacher_prob > 0:
                raise ValueError("a guided model rolls out on its own offsets: teacher_prob must be 0")
            offset, offset_vel, offset_size = torch.zeros_like(pos), torch.zeros_like(pos), torch.zeros_like(size)
        moves, scales, visible = [], [], []
        for k in range(FUTURE_STEPS):
            out = self.head(h)  # (B, S, 4): the change from this frame to the next
            if guided:  # the motion model's place and size plus a learned offset, which moves with its own velocity
                offset_vel = offset_vel + out[..., :2] * VEL_SCALE
                offset = offset + offset_vel
                new_pos = start_pos + batch["guide_move"][:, k].float() + offset
                vel, pos = new_pos - pos, new_pos
                offset_size = offset_size + out[..., 2] / 10
                size = start_size + batch["guide_scale"][:, k].float() + offset_size
            else:
                if self.keep is not None:
                    vel = vel * torch.sigmoid(self.keep)
                vel = vel + out[..., :2] * VEL_SCALE
                pos = pos + vel
                size = size + out[..., 2] / 10
            moves.append(pos - start_pos)
            scales.append(size - start_size)
            visible.append(out[..., 3])
            if teacher is not None and teacher_prob > 0:
                use = (torch.rand(B, 1, device=obs.device) < teacher_prob) & teacher["move_ok"][:, k]  # (B, S)
                true_pos = start_pos + teacher["move"][:, k]
                before = teacher["move"][:, k - 1] if k else torch.zeros_like(start_pos)
                before_ok = teacher["move_ok"][:, k - 1] if k else torch.ones_like(use)
                true_vel = torch.where((use & before_ok)[..., None], teacher["move"][:, k] - before, vel)
                pos = torch.where(use[..., None], true_pos, pos)
                vel = torch.where(use[..., None], true_vel, vel)
                true_size = start_size + teacher["log_scale"][:, k]
                size = torch.where(use & teacher["scale_ok"][:, k], true_size, size)
            if k + 1 < FUTURE_STEPS:
                grow = torch.exp(size - start_size)
                image_pos = None
                if floor:  # where it is drawn, and how much bigger the perspective draws it
                    image_pos = to_image(pos, view)
                    grow = grow * object_pixels(image_pos[..., 0], view) / object_pixels(batch["start_px"][..., 0].float(), view)
                features = self._features(pos, vel, size, half * grow[..., None], image_pos)
                h = self._step(h, features, static, pos, vel, size, exists)
        return {"move": torch.stack(moves, 1), "log_scale": torch.stack(scales, 1), "visible": torch.stack(visible, 1)}


# ---------------------------------------------------------------- loss


def _mean_per_video(err: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Each video's weighted mean of err over its entries (B, ...), then the mean over videos: a video's share
    does not depend on the batch it is in, so N processes x batch b train exactly like 1 x N*b."""
    dims = tuple(range(1, err.dim()))
    return ((err * weight).sum(dims) / weight.sum(dims).clamp(min=1e-6)).mean()


def dynamics_loss(pred: dict, batch: dict, final_weight: float = 2.0, move_scale: float = 5.0) -> torch.Tensor:
    """Huber loss of the moves (in units of move_scale pixels) over frames 12-22, frame 22 weighted
    1 + final_weight (it is the one scored), plus the L1 loss of the log size ratios, plus the binary
    cross-entropy of visibility; each is averaged over a video's entries that have a target, then over videos."""
    weight = torch.ones(FUTURE_STEPS, device=pred["move"].device)
    weight[-1] += final_weight
    err = nn.functional.huber_loss(pred["move"].float() / move_scale, batch["move"] / move_scale, reduction="none")
    move_loss = _mean_per_video(err.sum(-1), batch["move_ok"].float() * weight[None, :, None])
    scale_loss = _mean_per_video((pred["log_scale"].float() - batch["log_scale"]).abs(), batch["scale_ok"].float())
    seen = (batch["paintable"][:, None, :] & torch.ones_like(batch["move_ok"])).float()
    vis = nn.functional.binary_cross_entropy_with_logits(pred["visible"].float(), batch["visible"], reduction="none")
    return move_loss + 10 * scale_loss + 0.1 * _mean_per_video(vis, seen)


# ---------------------------------------------------------------- painting


def paint_frame(masks, move, log_scale, visible, classes, drop_invisible: bool = True, motion: Motion = None,
                weight: float = 1.0) -> torch.Tensor:
    """The frame-22 mask (H, W) from a video's masks (>= 2, H, W) (its frame 11 last) and the model's frame-22
    outputs for its slots: move (S, 2) pixels, log_scale (S,), visible (S,) logits, classes (S,) the class of
    each slot's frame-11 pixels (track_sample: pixel_classes). Each frame-11 object is moved and scaled about its centroid, painted back to front; one
    without a slot (too small to track) stays where it is; one predicted to have left the view is dropped.

    weight < 1 blends in the motion model: each object's centroid and log size ratio are weight x the learned
    model's + (1 - weight) x the motion model's, an object without a slot moves as the motion model has it, and
    none is dropped (the learned visibility is the learned model's alone). weight 0 paints the motion model's
    forecast (forecasting/motion.py: extrapolate_mask)."""
    masks = torch.as_tensor(masks)
    objects = find_objects(masks[-2:])
    guides = [None] * len(objects)  # the motion model's (centroid, scale) of each object, None where it stays
    if weight < 1:
        if motion is None:
            raise ValueError(f"a blend of weight {weight} needs the motion model")
        guides = trajectories(objects, [FRAMES_AHEAD], Motion.from_config(motion), masks.shape[-1])[0]
    slot = {int(c): k for k, c in enumerate(classes.tolist()) if c != BACKGROUND}
    kept, moves = [], []
    for obj, guide in zip(objects, guides):
        k = slot.get(obj[0])
        if k is None or weight == 0:
            kept.append(obj)
            moves.append(guide)
            continue
        if weight == 1 and drop_invisible and float(visible[k]) < 0:
            continue
        kept.append(obj)
        learned = (obj[3] + move[k].float().cpu(), float(torch.exp(log_scale[k]).clamp(1 / MAX_SCALE, MAX_SCALE)))
        if weight < 1:
            target, scale = guide if guide is not None else (obj[3], 1.0)
            learned = (weight * learned[0] + (1 - weight) * torch.as_tensor(target).float(),
                       float(np.exp(weight * np.log(learned[1]) + (1 - weight) * np.log(scale))))
        moves.append(learned)
    out = torch.full(masks.shape[-2:], BACKGROUND, dtype=masks.dtype)
    return paint_objects(kept, moves, out)


def collate(samples: list) -> dict:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def _split(batch: dict) -> list:
    """collate's inverse: a batch -> its samples."""
    return [{k: v[b] for k, v in batch.items()} for b in range(len(next(iter(batch.values()))))]


def image_outputs(batch: dict, out: dict, step: int = FUTURE_STEPS - 1) -> tuple:
    """The model's outputs for one future step as image moves (B, S, 2) pixels and log size ratios (B, S): as they
    are for a model of the image; for one of the floor, the predicted floor point drawn back into the image
    (forecasting/floor.py), and the perspective's size change added to the learned one."""
    move, log_scale = out["move"][:, step].float(), out["log_scale"][:, step].float()
    if not on_floor(batch["view"]):
        return move, log_scale
    view = batch["view"].float()[:, None, :]
    start = batch["start_px"].float()
    target = to_image(batch["start_pos"].float() + move, view)
    perspective = torch.log(object_pixels(target[..., 0], view) / object_pixels(start[..., 0], view))
    return target - start, log_scale + perspective


@torch.no_grad()
def forecast_outputs(model: ObjectDynamics, masks: torch.Tensor, view: FloorView = None, mirror: bool = True,
                     tracks: dict = None) -> tuple:
    """One model's frame-22 forecast of masks (B, 11, H, W): (image moves (B, S, 2), log size ratios (B, S),
    visible logits (B, S), pixel_classes (B, S)). mirror: the mean of the forecasts of the video and of its
    left-right mirror image (mirrored back): the world has no left or right, and the two err apart.
    tracks: a dict shared by the members of an ensemble, so that members that see the masks alike (the same view
    and guide) extract their tracks once."""
    model.eval()
    device = next(model.parameters()).device
    view = (view or model.view) if model.view is not None else None
    seen_as = repr((None if view is None else view.to_config(), None if model.guide is None else model.guide.to_config()))
    tracks = {} if tracks is None else tracks
    if seen_as not in tracks:
        batch = collate([track_sample(m, with_targets=False, view=view, guide=model.guide) for m in masks])
        tracks[seen_as] = [batch] + ([collate([flip_sample(s, masks.shape[-1]) for s in _split(batch)])] if mirror else [])
    runs = tracks[seen_as]
    batch = runs[0]
    moves, scales, visible = [], [], []
    for k, inputs in enumerate(runs):
        out = {key: v.cpu() for key, v in model({key: v.to(device) for key, v in inputs.items()}).items()}
        if k:  # the mirror's forecast, mirrored back
            out["move"] = out["move"] * torch.tensor([1.0, -1.0])
        move, log_scale = image_outputs(batch, out)
        moves.append(move)
        scales.append(log_scale)
        visible.append(out["visible"][:, FUTURE_STEPS - 1])
    return (torch.stack(moves).mean(0), torch.stack(scales).mean(0), torch.stack(visible).mean(0),
            batch["pixel_classes"])


@torch.no_grad()
def ensemble_outputs(models: list, masks: torch.Tensor, view: FloorView = None, mirror: bool = True) -> tuple:
    """The mean of the models' forecast_outputs (each object's move, size ratio and visibility), with the tracks'
    pixel classes: what paint_masks paints, at any blend."""
    tracks = {}
    outputs = [forecast_outputs(m, masks, view, mirror, tracks) for m in models]
    move, log_scale, visible = (torch.stack([o[i] for o in outputs]).mean(0) for i in range(3))
    return move, log_scale, visible, outputs[0][3]  # the tracks, and so the slots, do not depend on the model


def paint_masks(masks: torch.Tensor, outputs: tuple, drop_invisible: bool = True, motion: Motion = None,
                weight: float = 1.0) -> torch.Tensor:
    """masks (B, >= 2, H, W) with frame 11 last and their ensemble_outputs -> (B, H, W) frame-22 class ids
    (paint_frame per video; weight < 1 blends in `motion`)."""
    move, log_scale, visible, classes = outputs
    return torch.stack([paint_frame(m, move[b], log_scale[b], visible[b], classes[b], drop_invisible, motion, weight)
                        for b, m in enumerate(masks)])


def _blend_words(blend) -> str:
    return "no blend" if blend is None else f"a blend of share {blend['weight']:g} with motion model {blend['motion']}"


def ensemble_blend(models: list, names: list = None, motion_only: bool = False) -> tuple:
    """The (weight, motion model) blend an ensemble forecasts with: its members' own, which must agree (members
    trained alike, with the same --motion and --motion_blend); (1.0, None) when none blends. motion_only: only
    the motion models must agree (the weight is given). names: the members as the error should name them."""
    names = names or [f"model {i + 1}" for i in range(len(models))]
    blends = [m.config.get("blend") for m in models]
    part = (lambda b: b and b["motion"]) if motion_only else (lambda b: b)
    for name, blend in zip(names[1:], blends[1:]):
        if part(blend) != part(blends[0]):
            raise ValueError(f"the ensemble's models forecast differently: {names[0]} with {_blend_words(blends[0])}, "
                             f"{name} with {_blend_words(blend)}; use models trained with the same --motion and "
                             f"--motion_blend")
    return models[0].blend or (1.0, None)


@torch.no_grad()
def predict_masks(model, masks: torch.Tensor, drop_invisible: bool = True, view: FloorView = None,
                  weight: float = None, motion: Motion = None, mirror: bool = True) -> torch.Tensor:
    """masks (B, >= 11, H, W) of frames 1-11 (frames beyond 11 ignored) -> (B, H, W) frame-22 class ids, CPU.
    model: an ObjectDynamics, or a list of them (an ensemble, e.g. one recipe trained with several --seed: each
    object's frame-22 move, size ratio and visibility are the mean of theirs; models trained apart err apart).
    view: the camera of these masks (forecasting/floor.py: fit_floor_view) for a model of the floor, when it is
    not the one it was trained through (default: the model's); ignored by a model of the image.
    weight, motion: the learned model's share of a blend with the motion model (paint_frame), and that model;
    by default the model's own blend (set_blend; an ensemble's: ensemble_blend), or none (weight 1).
    mirror: each model's forecast the mean of the video's and its mirror image's (forecast_outputs)."""
    models = [model] if isinstance(model, ObjectDynamics) else list(model)
    if not models:
        raise ValueError("predict_masks needs at least one model")
    masks = torch.as_tensor(masks).cpu()[:, :NUM_INPUT_FRAMES]
    if weight is None:
        weight, own_motion = ensemble_blend(models)
        motion = own_motion if motion is None else motion
    else:
        weight = blend_weight(weight)
        if motion is None and weight < 1:  # the members' own motion model, which must be one
            motion = ensemble_blend(models, motion_only=True)[1]
    return paint_masks(masks, ensemble_outputs(models, masks, view, mirror), drop_invisible, motion, weight)
