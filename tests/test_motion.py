"""Motion extrapolation (forecasting/motion.py): objects move along their last velocity, damped; the nearer
object covers the farther; objects leaving the frame vanish; objects without a velocity stay; with a
horizon row, motion is extrapolated on the floor and objects grow as they come nearer; with a contact,
objects that meet bounce; fit_horizon and fit_motion find the parameters from masks."""
import argparse

import numpy as np
import pytest
import torch

from forecasting.motion import (
    Motion, extrapolate_frames, extrapolate_mask, extrapolate_sequence, find_objects, fit_horizon, fit_motion,
    paint_objects, trajectories,
)
from forecasting.motion_args import NONE, add_motion_args, horizon_row_arg, resolve_motion, save_motion


def square(H, W, y, x, size, cls, out=None):
    m = torch.zeros(H, W, dtype=torch.uint8) if out is None else out
    m[y:y + size, x:x + size] = cls
    return m


def test_an_object_moves_by_damping_x_horizon_x_its_velocity():
    frames = torch.stack([square(40, 60, 10, 5 + 2 * t, 4, 7) for t in range(11)])  # 2 px per frame to the right
    assert torch.equal(extrapolate_mask(frames, Motion(damping=1.0), horizon=11), square(40, 60, 10, 25 + 22, 4, 7))
    assert torch.equal(extrapolate_mask(frames, Motion(damping=0.5), horizon=11), square(40, 60, 10, 25 + 11, 4, 7))
    seq = extrapolate_sequence(frames, [1, 2, 11], Motion(damping=1.0))
    assert seq.shape == (3, 40, 60)
    assert [int(torch.nonzero(f)[:, 1].min()) for f in seq] == [27, 29, 47]
    assert torch.equal(extrapolate_mask(frames.numpy(), {"damping": 1.0}), seq[2])  # numpy in, tensor out


def test_nearer_objects_cover_farther_ones_and_leavers_vanish():
    before, last = torch.zeros(30, 30, dtype=torch.uint8), torch.zeros(30, 30, dtype=torch.uint8)
    square(30, 30, 4, 10, 6, 3, before), square(30, 30, 4, 12, 6, 3, last)     # far (high), moving right 2 px
    square(30, 30, 8, 20, 6, 9, before), square(30, 30, 8, 18, 6, 9, last)     # near (lower), moving left 2 px
    square(30, 30, 20, 24, 4, 5, before), square(30, 30, 20, 27, 4, 5, last)   # leaving on the right
    square(30, 30, 24, 2, 3, 11, last)                                         # new in frame 11: stays
    out = extrapolate_mask(torch.stack([before, last]), Motion(damping=1.0), horizon=2)  # far at x 16, near at x 14
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
    out = extrapolate_frames(frames, masks[-2:], [4], Motion(damping=1.0))
    assert out.shape == (1, 3, H, W) and out.dtype == torch.uint8
    assert torch.equal(out[0, :, 5:8, 16:19], frames[-1, :, 5:8, 12:15])  # the object, 4 px on
    assert (out[0, :, 5:8, 12:16] == 100).all()  # where it was: the floor (the frames' median)
    assert torch.equal(extrapolate_sequence(masks[-2:], [4], Motion(damping=1.0))[0] == 6, (out[0, 0] < 100))


# ---------------------------------------------------------------- perspective and the horizon

H_ROW = -50.0  # the horizon of the tests' camera, above the image


def floor_square(H, W, X, Z, cls=4, size=0.12, out=None):
    """A square object centred on the image of the floor point (X, Z) of the tests' camera (row = H_ROW + 1 / Z,
    column = X / Z), size x (row - H_ROW) pixels wide: apparent size goes as 1 / depth."""
    row, col = H_ROW + 1 / Z, X / Z
    half = size * (row - H_ROW) / 2
    m = torch.zeros(H, W, dtype=torch.uint8) if out is None else out
    m[int(round(row - half)):int(round(row + half)), int(round(col - half)):int(round(col + half))] = cls
    return m, (row, col), 2 * half


def test_perspective_moves_at_constant_floor_velocity_and_scales_with_depth():
    H, W = 160, 240
    Z = [1 / 60, 1 / 64]  # frames 10 and 11: the object comes nearer (lower in the image) ...
    X = [120 * Z[0], 124 * Z[1]]  # ... and to the right
    before, _, _ = floor_square(H, W, X[0], Z[0])
    last, _, side11 = floor_square(H, W, X[1], Z[1])
    ahead = 5
    want, (row, col), side = floor_square(H, W, X[1] + ahead * (X[1] - X[0]), Z[1] + ahead * (Z[1] - Z[0]))
    out = extrapolate_mask(torch.stack([before, last]), Motion(1.0, H_ROW), horizon=ahead)
    got = torch.nonzero(out == 4).float()
    assert abs(float(got[:, 0].mean()) - row) < 1.0 and abs(float(got[:, 1].mean()) - col) < 1.0
    assert side > 1.3 * side11 and abs(len(got) ** 0.5 - side) < 1.5  # it grew as 1 / depth
    frames = torch.full((5, 3, H, W), 100, dtype=torch.uint8)  # 3 frames of floor: its median shows where it was
    frames[3, :, before == 4] = 7
    frames[4, :, last == 4] = 7
    moved = extrapolate_frames(frames, torch.stack([before, last]), [ahead], Motion(1.0, H_ROW))[0]
    assert torch.equal(moved[0] == 7, out == 4)  # the frame's pixels go where the mask's go
    # without the perspective: the centroid's image velocity, no growth
    plain = extrapolate_mask(torch.stack([before, last]), Motion(damping=1.0), horizon=ahead)
    assert (plain == 4).sum() == (last == 4).sum()


def test_an_object_entering_through_the_edge_moves_at_its_inner_edge_speed():
    before, last = torch.zeros(40, 60, dtype=torch.uint8), torch.zeros(40, 60, dtype=torch.uint8)
    before[10:20, 0:3] = 7  # a 10-wide object coming in from the left, 3 px a frame: 3 then 6 columns seen
    last[10:20, 0:6] = 7
    out = extrapolate_mask(torch.stack([before, last]), Motion(damping=1.0), horizon=4)
    cols = torch.nonzero(out == 7)[:, 1]
    assert int(cols.max()) == 5 + 4 * 3  # its inner edge went on at 3 px a frame (the centroid moved 1.5)


def test_fit_horizon_finds_the_row_objects_grow_from():
    H, W = 160, 240
    videos = []
    for start, step in ((1 / 100, 0.0004), (1 / 150, 0.0002)):  # two objects coming nearer, frame after frame
        m = torch.zeros(12, H, W, dtype=torch.uint8)
        for t in range(12):
            floor_square(H, W, 0.5 + 0.3 * start, start + step * t, cls=3, size=0.3, out=m[t])
        videos.append(m.numpy())
    assert abs(fit_horizon(videos) - H_ROW) <= 6
    with pytest.raises(ValueError, match="depth"):
        fit_horizon([np.zeros((5, H, W), np.uint8)])


def test_horizon_row_flag_and_checks():
    assert horizon_row_arg("none") is NONE and horizon_row_arg("-48.5") == -48.5
    with pytest.raises(argparse.ArgumentTypeError):
        horizon_row_arg("10")  # inside the image: not a horizon of a camera that sees only floor
    with pytest.raises(ValueError, match="horizon_row"):
        extrapolate_mask(torch.zeros(2, 8, 8, dtype=torch.uint8), {"horizon_row": 3.0})


# ---------------------------------------------------------------- collisions and the fitted motion

def two_squares(W=120, speed=3):
    """Frames 10-11 of a 6x6 square (class 3) sliding right at `speed` px a frame towards a still one (class 5)."""
    masks = torch.zeros(2, 40, W, dtype=torch.uint8)
    for t in range(2):
        square(40, W, 17, 10 + speed * t, 6, 3, masks[t])
        square(40, W, 17, 35, 6, 5, masks[t])
    return masks


def columns(mask, cls):
    return torch.nonzero(mask == cls)[:, 1].float()


def test_with_a_contact_a_sliding_object_stops_at_the_one_it_hits_and_pushes_it_on():
    masks = two_squares()
    free = extrapolate_mask(masks, Motion(damping=1.0))  # passes through the still one: 33 px on
    assert columns(free, 3).min() == 13 + 33 and torch.equal(free == 5, masks[1] == 5)
    hit = extrapolate_sequence(masks, [4, 11], Motion(damping=1.0, contact=1.0))
    assert columns(hit[0], 3).min() == 13 + 12 and torch.equal(hit[0] == 5, masks[1] == 5)  # not there yet: same as free
    mover, still = columns(hit[1], 3), columns(hit[1], 5)
    # the discs touch when their centres are 6 px apart (contact 1 x the squares' size 6): the mover stops there, 16 px
    # on, and the still one takes its velocity for the frames left, the other 17 px of the free flight's 33
    assert float(mover.mean()) == pytest.approx(15.5 + 16, abs=1) and float(still.mean()) == pytest.approx(37.5 + 17, abs=1)
    assert (hit[1] == 3).sum() == 36 and (hit[1] == 5).sum() == 36  # moved whole, not scaled (no perspective)


def test_a_still_object_nobody_hits_stays_pixel_for_pixel():
    masks = two_squares(speed=0)
    masks[:, 30:34, 80:83] = 9  # a third still object, an odd shape
    out = extrapolate_mask(masks, Motion(0.7, H_ROW, contact=1.0, focal=250.0))
    assert torch.equal(out, masks[1])


def test_motion_checks_and_round_trips_its_config():
    m = Motion(0.6, -40, contact=1.1, focal=280)
    assert Motion.from_config(m.to_config()) == m and m.to_config()["horizon_row"] == -40.0
    for bad in ({"damping": 3}, {"contact": -1}, {"horizon_row": 5}, {"focal": 0}):
        with pytest.raises(ValueError):
            Motion(**bad)
    with pytest.raises(ValueError, match="keys among"):
        Motion.from_config({"dampin": 0.5})
    assert "no collisions" in Motion().describe() and "collisions at contact 1.1" in m.describe()


def made_by(motion, speeds):
    """Mask videos (22, H, W) whose frame 22 is `motion`'s extrapolation of frames 10-11: a square sliding right at
    each speed (and, every other video, a still one in its way)."""
    videos = []
    for k, speed in enumerate(speeds):
        pair = two_squares(W=160, speed=speed)
        if k % 2:
            pair[pair == 5] = 0
        v = torch.zeros(22, *pair.shape[1:], dtype=torch.uint8)
        v[9:11] = pair
        v[21] = extrapolate_mask(pair, motion)
        videos.append(v.numpy())
    return videos


def test_fit_motion_finds_the_motion_that_made_the_masks():
    truth = Motion(damping=0.6, contact=1.0)
    fitted = fit_motion(made_by(truth, [2, 3, 4, 5, 2, 3]))
    assert fitted.horizon_row is None  # nothing travels in depth: plain image-space motion
    assert fitted.damping == 0.6 and fitted.contact > 0
    assert fit_motion(made_by(truth, [4, 5]), fixed={"contact": 0.0}).contact == 0.0  # given, not fitted


def test_motion_flags_fit_read_and_override(tiny_root, tmp_path):
    p = argparse.ArgumentParser()
    add_motion_args(p)
    fitted = resolve_motion(p.parse_args(["--motion_videos", "3"]), tiny_root, print_fn=lambda m: None)
    path = save_motion(fitted, tmp_path / "m.json")
    assert resolve_motion(p.parse_args(["--motion", str(path)]), tiny_root) == fitted
    varied = resolve_motion(p.parse_args(["--motion", str(path), "--contact", "0", "--horizon_row", "none"]), tiny_root)
    assert varied.contact == 0 and varied.horizon_row is None and varied.damping == fitted.damping
    with pytest.raises(ValueError, match="--motion .*scripts/fit_motion.py"):
        resolve_motion(p.parse_args(["--motion", str(tmp_path / "missing.json")]), tiny_root)


def test_motion_errors_bounds_the_model_with_perfect_motion(tiny_root):
    from scripts.analysis.motion_errors import came_near, motion_errors

    r = motion_errors(tiny_root, "train", Motion(0.7, -46.0, contact=1.1, focal=350.0), progress=False)
    assert r["videos"] == 2 and 0 < r["model"] <= r["perfect"] <= 1
    assert len(r["errors"]) == len(r["met"]) > 0 and (r["errors"] >= 0).all()
    masks = torch.zeros(22, 40, 120, dtype=torch.uint8)
    masks[10:] = two_squares()[1]  # 22 px apart from frame 11 on
    assert came_near(masks, 3, near=25) and not came_near(masks, 3, near=20)


def test_paint_objects_is_the_extrapolations_painting():
    """paint_objects with the motion model's targets paints what extrapolate_mask predicts; with targets of
    its own choosing, it moves frame 11's shapes there, the nearer object covering the farther."""
    masks = torch.zeros(2, 40, 60, dtype=torch.uint8)
    square(40, 60, 10, 10, 5, 3, masks[0]), square(40, 60, 10, 12, 5, 3, masks[1])
    square(40, 60, 20, 30, 5, 7, masks[0]), square(40, 60, 21, 30, 5, 7, masks[1])
    motion = Motion(damping=0.5)
    objects = find_objects(masks)
    targets = trajectories(objects, [11], motion, 60)[0]
    painted = paint_objects(objects, targets, torch.zeros(40, 60, dtype=torch.uint8))
    assert torch.equal(painted, extrapolate_mask(masks, motion))
    # class 3 moved one row below class 7: now the nearer, it covers all but class 7's top row
    targets = [(torch.tensor([26.0, 30.0]), 1.0), (torch.tensor([25.0, 30.0]), 1.0)]
    both = paint_objects(objects, targets, torch.zeros(40, 60, dtype=torch.uint8))
    assert (both == 3).sum() == 25 and (both == 7).sum() == 5
