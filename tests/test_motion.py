"""Motion extrapolation (data/motion.py): objects move along their last velocity, damped; the nearer
object covers the farther; objects leaving the frame vanish; objects without a velocity stay."""
import numpy as np
import pytest
import torch

from data.motion import extrapolate_frames, extrapolate_mask, extrapolate_sequence


def square(H, W, y, x, size, cls, out=None):
    m = torch.zeros(H, W, dtype=torch.uint8) if out is None else out
    m[y:y + size, x:x + size] = cls
    return m


def test_an_object_moves_by_damping_x_horizon_x_its_velocity():
    frames = torch.stack([square(40, 60, 10, 5 + 2 * t, 4, 7) for t in range(11)])  # 2 px per frame to the right
    assert torch.equal(extrapolate_mask(frames, damping=1.0, horizon=11), square(40, 60, 10, 25 + 22, 4, 7))
    assert torch.equal(extrapolate_mask(frames, damping=0.5, horizon=11), square(40, 60, 10, 25 + 11, 4, 7))
    seq = extrapolate_sequence(frames, [1, 2, 11], damping=1.0)
    assert seq.shape == (3, 40, 60)
    assert [int(torch.nonzero(f)[:, 1].min()) for f in seq] == [27, 29, 47]
    assert torch.equal(extrapolate_mask(frames.numpy(), damping=1.0), seq[2])  # numpy in, tensor out


def test_nearer_objects_cover_farther_ones_and_leavers_vanish():
    before, last = torch.zeros(30, 30, dtype=torch.uint8), torch.zeros(30, 30, dtype=torch.uint8)
    square(30, 30, 4, 10, 6, 3, before), square(30, 30, 4, 12, 6, 3, last)     # far (high), moving right 2 px
    square(30, 30, 8, 20, 6, 9, before), square(30, 30, 8, 18, 6, 9, last)     # near (lower), moving left 2 px
    square(30, 30, 20, 24, 4, 5, before), square(30, 30, 20, 27, 4, 5, last)   # leaving on the right
    square(30, 30, 24, 2, 3, 11, last)                                         # new in frame 11: stays
    out = extrapolate_mask(torch.stack([before, last]), damping=1.0, horizon=2)  # far at x 16, near at x 14
    assert torch.equal(out[8:10, 16:20], torch.full((2, 4), 9, dtype=torch.uint8))  # overlap: the near one
    assert (out == 3).sum() == 6 * 6 - 2 * 4 and 5 not in out.unique()
    assert torch.equal(out == 11, last == 11)


def test_bad_shapes():
    with pytest.raises(ValueError, match="T >= 2"):
        extrapolate_mask(np.zeros((1, 4, 4), np.uint8))


def test_frames_move_object_pixels_over_the_floor_they_left():
    T, H, W = 11, 20, 30
    floor = torch.full((3, H, W), 100, dtype=torch.uint8)
    frames, masks = floor.repeat(T, 1, 1, 1), torch.zeros(T, H, W, dtype=torch.uint8)
    for t in range(T):
        x = 2 + t  # a 3x3 object, 1 px per frame to the right, its pixels 10 + their column offset
        masks[t, 5:8, x:x + 3] = 6
        frames[t, :, 5:8, x:x + 3] = torch.tensor([10, 11, 12], dtype=torch.uint8).view(1, 1, 3)
    out = extrapolate_frames(frames, masks[-2:], [4], damping=1.0)
    assert out.shape == (1, 3, H, W) and out.dtype == torch.uint8
    assert torch.equal(out[0, :, 5:8, 16:19], frames[-1, :, 5:8, 12:15])  # the object, 4 px on
    assert (out[0, :, 5:8, 12:16] == 100).all()  # where it was: the floor (the frames' median)
    assert torch.equal(extrapolate_sequence(masks[-2:], [4], damping=1.0)[0] == 6, (out[0, 0] < 100))
