"""Floor coordinates of image points: where objects slide, as any camera would see it.

A camera looking down at a flat floor draws an object lower in the image the nearer it is, and bigger.
With h the image row of the floor's horizon (above the image: h < 0) and k how fast an object's apparent
size grows per row below it (sqrt(area) ~ k (row - h); data/geometry.py: size_line), an object standing
at row r is drawn s(r) = k (r - h) pixels big. Measured in that size,

    lateral = UNIT (column - middle column) / s(r)        depth = UNIT focal / s(r)

are the floor point's distance from the camera's axis and its depth along the optical axis, in units where an
object is UNIT across. Neither depends on the camera's height or how big the objects are. The depth keeps two
factors: focal / (the camera's focal length), which a nominal focal fixes (the field of view is the one thing
the masks do not pin down), and the pitch: depth along a tilted axis grows by cos(pitch) per unit of floor, so
two cameras pitched 27 and 36 degrees see the same floor move in depth about 8% apart (tests/test_floor.py). An object's size on the floor is UNIT sqrt(area) / s(r):
about UNIT wherever it stands.

The learned dynamics (forecasting/dynamics.py) read and predict tracks in these coordinates when given a
FloorView, so a model trained through one camera can be applied through another: only the view, fitted
on each dataset's own masks (fit_floor_view: the input frames are enough), changes.
"""
from dataclasses import asdict, dataclass

import numpy as np
import torch

from data.format import WIDTH

UNIT = 20.0  # floor units across an object: laterally, a floor unit is about a pixel of a median object's size
NOMINAL_FOCAL = 300.0  # pixels, for a 240-pixel-wide image: the depth scale's nominal camera (a 44-degree view)
MIN_SIZE = 1e-3  # pixels: an apparent size is never taken below this (rows at or above the horizon)
MIN_DEPTH = 1e-3  # floor units: a predicted depth at or behind the camera is clamped to this (drawn far below the image)


@dataclass(frozen=True)
class FloorView:
    """One camera, as the masks show it: horizon row h (< 0), size slope k (> 0), the nominal focal and the
    image width (the middle column is the axis)."""

    horizon_row: float
    size_slope: float
    focal: float = NOMINAL_FOCAL
    width: int = WIDTH

    def __post_init__(self):
        if not (np.isfinite(self.horizon_row) and self.horizon_row < 0):
            raise ValueError(f"horizon_row must be a number < 0 (the horizon lies above the image), got {self.horizon_row!r}")
        if not (np.isfinite(self.size_slope) and self.size_slope > 0):
            raise ValueError(f"size_slope must be > 0, got {self.size_slope!r}")
        if not self.focal > 0 or not self.width > 0:
            raise ValueError(f"focal and width must be > 0, got {self.focal!r}, {self.width!r}")

    def to_config(self) -> dict:
        return {k: float(v) if k != "width" else int(v) for k, v in asdict(self).items()}

    @classmethod
    def from_config(cls, config: dict) -> "FloorView":
        return cls(**config)

    def as_array(self) -> np.ndarray:
        """(4,) float32 [h, k, focal, width]: how a track sample carries its view (forecasting/dynamics.py)."""
        return np.array([self.horizon_row, self.size_slope, self.focal, self.width], np.float32)


def _stack(parts, like):
    return torch.stack(parts, -1) if torch.is_tensor(like) else np.stack(parts, -1)


def _clamp_min(x, low):
    return x.clamp(min=low) if torch.is_tensor(x) else np.maximum(x, low)


def object_pixels(rows, view):
    """The apparent size s(r) in pixels of an object standing at these rows (...,); view (..., 4) as_array."""
    return _clamp_min(view[..., 1] * (rows - view[..., 0]), MIN_SIZE)


def to_floor(points, view):
    """Image points (..., 2) (row, column) -> floor points (..., 2) (depth, lateral); numpy or torch; view
    (..., 4) (FloorView.as_array, broadcast against the points)."""
    s = object_pixels(points[..., 0], view)
    return _stack([UNIT * view[..., 2] / s, UNIT * (points[..., 1] - (view[..., 3] - 1) / 2) / s], points)


def to_image(floor, view):
    """Floor points (..., 2) (depth, lateral) -> image points (..., 2) (row, column); to_floor's inverse."""
    s = UNIT * view[..., 2] / _clamp_min(floor[..., 0], MIN_DEPTH)
    return _stack([view[..., 0] + s / view[..., 1], (view[..., 3] - 1) / 2 + floor[..., 1] * s / UNIT], floor)


def floor_size(rows, area, view):
    """An object's size on the floor (UNIT-scaled) from its centroid row and pixel area."""
    return UNIT * (area ** 0.5) / object_pixels(rows, view)


def fit_floor_view(mask_videos, focal: float = NOMINAL_FOCAL) -> FloorView:
    """The FloorView of a list of (T, H, W) mask videos (any frames: a split's input frames 1-11 are enough):
    the horizon row that keeps each depth-travelling object's size / (row - h) constant (forecasting/motion.py:
    fit_horizon), and the median of sqrt(area) / (row - h) over every wholly visible object (data/geometry.py).
    ValueError (from fit_horizon) when no object travels in depth."""
    from data.geometry import ROW, SIZE, observations
    from forecasting.motion import fit_horizon

    videos = [np.asarray(v) for v in mask_videos]
    h = fit_horizon(videos)
    obs = observations(videos)
    if not len(obs):
        raise ValueError("no wholly visible object in these masks to measure the objects' size by")
    k = float(np.median(obs[:, SIZE] / (obs[:, ROW] - h)))
    return FloorView(horizon_row=float(h), size_slope=k, focal=focal, width=int(videos[0].shape[-1]))
