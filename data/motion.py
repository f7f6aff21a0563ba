"""Motion extrapolation of the objects in a mask sequence: a frame-22 prediction without learning.

Each object (a class: each is in a video at most once) seen in frame 11 moves its frame-11 pixels
by damping x 11 x its last velocity (the move of its centroid from frame 10 to frame 11), and the
moved objects are painted back to front (an object whose lowest pixel is lower in the image is
nearer the camera, so it covers the others). Objects absent from frame 10 stay where they are.

Why damped: the objects slide with friction and collide, so on average they cover less than
constant velocity predicts over 11 frames. scripts/reference_scores.py prints this prediction's
score beside the frame-11 copy's for a range of dampings. The mask forecaster
(SSL_convLSTM_Reconstructor/forecaster.py) takes it as its starting point and learns what it misses.
"""
import torch

from data.classes import BACKGROUND
from data.format import LAST_INPUT_INDEX, TARGET_INDEX

DEFAULT_DAMPING = 0.65  # the best of 0.6..0.8 on a synthetic train split (scripts/reference_scores.py)
FRAMES_AHEAD = TARGET_INDEX - LAST_INPUT_INDEX  # frame 22 is 11 frames after frame 11


def future_horizons(num_future: int = 1, future_steps: int = FRAMES_AHEAD) -> list:
    """Frames after frame 11 of the last num_future of future_steps predicted frames, evenly spaced up to
    frame 22 (future_steps 11: one per frame 12..22, so num_future 3 gives [9, 10, 11])."""
    return [(k + 1) * FRAMES_AHEAD / future_steps for k in range(future_steps - num_future, future_steps)]


def _centroid(pixels: torch.Tensor):
    """(N, 2) (row, column) indices -> (2,) float mean, or None when empty."""
    return pixels.float().mean(0) if len(pixels) else None


def extrapolate_mask(masks: torch.Tensor, damping: float = DEFAULT_DAMPING,
                     horizon: float = FRAMES_AHEAD) -> torch.Tensor:
    """masks (T >= 2, H, W) class ids of frames ..10, 11 (tensor or numpy array) -> (H, W) tensor of the ids
    predicted `horizon` frames after the last."""
    return extrapolate_sequence(masks, [horizon], damping)[0]


def _object_moves(masks: torch.Tensor, horizons, damping: float):
    """For each horizon, the moves of frame 11's objects painted back to front: [(class, source pixels
    (N, 2), destination rows (N,), destination columns (N,))], pixels leaving the frame dropped."""
    masks = torch.as_tensor(masks)
    if masks.dim() != 3 or masks.shape[0] < 2:
        raise ValueError(f"extrapolation needs (T >= 2, H, W) masks, got shape {tuple(masks.shape)}")
    last, before = masks[-1], masks[-2]
    H, W = last.shape
    objects = []  # (class, pixels (N, 2), velocity (2,) in pixels per frame)
    for cls in torch.unique(last).tolist():
        if cls == BACKGROUND:
            continue
        pixels = torch.nonzero(last == cls)
        now, then = _centroid(pixels), _centroid(torch.nonzero(before == cls))
        objects.append((cls, pixels, torch.zeros(2) if then is None else now - then))
    per_horizon = []
    for horizon in horizons:
        moved = []  # (lowest row after the move, class, source pixels, rows, columns)
        for cls, pixels, velocity in objects:
            shift = velocity * damping * horizon
            rows = pixels[:, 0] + int(round(float(shift[0])))
            cols = pixels[:, 1] + int(round(float(shift[1])))
            inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
            if inside.any():
                moved.append((int(rows[inside].max()), cls, pixels[inside], rows[inside], cols[inside]))
        per_horizon.append([m[1:] for m in sorted(moved, key=lambda m: m[0])])  # far (high in the image) first
    return per_horizon


def extrapolate_sequence(masks: torch.Tensor, horizons, damping: float = DEFAULT_DAMPING) -> torch.Tensor:
    """masks (T >= 2, H, W) -> (len(horizons), H, W): extrapolate_mask at each horizon (frames after the last),
    finding each object and its velocity once."""
    masks = torch.as_tensor(masks)
    out = torch.full((len(horizons), *masks.shape[-2:]), BACKGROUND, dtype=masks.dtype, device=masks.device)
    for k, moves in enumerate(_object_moves(masks, horizons, damping)):
        for cls, _, rows, cols in moves:
            out[k, rows, cols] = cls
    return out


def extrapolate_frames(frames: torch.Tensor, masks: torch.Tensor, horizons,
                       damping: float = DEFAULT_DAMPING) -> torch.Tensor:
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
    for k, moves in enumerate(_object_moves(masks, horizons, damping)):
        for _, src, rows, cols in moves:
            out[k, :, rows, cols] = last[:, src[:, 0], src[:, 1]]
    return out
