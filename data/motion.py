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


def _centroid(pixels: torch.Tensor):
    """(N, 2) (row, column) indices -> (2,) float mean, or None when empty."""
    return pixels.float().mean(0) if len(pixels) else None


def extrapolate_mask(masks: torch.Tensor, damping: float = DEFAULT_DAMPING,
                     horizon: float = TARGET_INDEX - LAST_INPUT_INDEX) -> torch.Tensor:
    """masks (T >= 2, H, W) class ids of frames ..10, 11 (tensor or numpy array) -> (H, W) tensor of the ids
    predicted `horizon` frames after the last."""
    return extrapolate_sequence(masks, [horizon], damping)[0]


def extrapolate_sequence(masks: torch.Tensor, horizons, damping: float = DEFAULT_DAMPING) -> torch.Tensor:
    """masks (T >= 2, H, W) -> (len(horizons), H, W): extrapolate_mask at each horizon (frames after the last),
    finding each object and its velocity once."""
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
    out = torch.full((len(horizons), H, W), BACKGROUND, dtype=last.dtype, device=last.device)
    for k, horizon in enumerate(horizons):
        moved = []  # (lowest row after the move, class, rows, columns)
        for cls, pixels, velocity in objects:
            shift = velocity * damping * horizon
            rows = pixels[:, 0] + int(round(float(shift[0])))
            cols = pixels[:, 1] + int(round(float(shift[1])))
            inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
            if inside.any():
                moved.append((int(rows[inside].max()), cls, rows[inside], cols[inside]))
        for _, cls, rows, cols in sorted(moved, key=lambda m: m[0]):  # far (high in the image) first
            out[k, rows, cols] = cls
    return out


def extrapolate_masks(masks: torch.Tensor, damping: float = DEFAULT_DAMPING,
                      horizon: float = TARGET_INDEX - LAST_INPUT_INDEX) -> torch.Tensor:
    """Batched extrapolate_mask: (B, T, H, W) -> (B, H, W), on the masks' device."""
    return torch.stack([extrapolate_mask(m, damping, horizon) for m in masks]) if len(masks) else masks[:, -1]
