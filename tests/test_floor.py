"""forecasting/floor.py and the learned dynamics on the floor: the same floor motion seen through two cameras
gives the same floor tracks; the model's floor outputs paint back exactly where the image targets say."""
import numpy as np
import pytest
import torch

from data.classes import class_id
from data.render import Camera, CameraSpec, Renderer, SceneObject
from engine import load_model
from engine.checkpoint import make_checkpoint
from engine.io import atomic_save
from forecasting.dynamics import (
    FLOOR_SPAN, VEL_SCALE, ObjectDynamics, collate, dynamics_loss, flip_sample, image_outputs, predict_masks,
    track_sample,
)
from forecasting.floor import FloorView, fit_floor_view, to_floor, to_image

# Two cameras with the same lens: the real videos' and one higher up, aimed further, so looking down more
# steeply; their horizons lie about 60 rows apart.
CAMERAS = (CameraSpec(height=4.977, distance=10.1, hfov_deg=42.69, look_y=-0.467),
           CameraSpec(height=7.0, distance=9.0, hfov_deg=42.69, look_y=0.8))


def floor_videos(spec: CameraSpec, n: int = 4, seed: int = 0) -> list:
    """n videos (22, H, W) of three spheres, each in its own lane (no occlusion), sliding mostly away from the
    camera; the same floor motion whatever the camera."""
    rng = np.random.default_rng(seed)
    renderer = Renderer(Camera(spec))
    videos = []
    for _ in range(n):
        objects = []
        for lane, color in enumerate(("red", "blue", "green")):
            start = np.array([2.0 * (lane - 1) + rng.uniform(-0.3, 0.3), rng.uniform(-2.0, 0.0)])
            velocity = np.array([rng.uniform(-0.03, 0.03), rng.uniform(0.08, 0.2)])
            objects.append((class_id("sphere", "rubber", color), start, velocity))
        videos.append(np.stack([renderer.render([SceneObject(c, *(p + t * v)) for c, p, v in objects])[1]
                                for t in range(22)]))
    return videos


@pytest.fixture(scope="module")
def two_cameras():
    out = []
    for spec in CAMERAS:
        videos = floor_videos(spec)
        out.append((videos, fit_floor_view(videos)))
    return out


def test_to_floor_and_back_is_the_identity_for_numpy_and_torch():
    view = FloorView(horizon_row=-77.0, size_slope=0.17).as_array()
    points = np.array([[0.0, 0.0], [10.0, 30.0], [159.0, 239.0]], np.float32)
    floor = to_floor(points, view)
    np.testing.assert_allclose(to_image(floor, view), points, atol=1e-3)
    back = to_image(torch.from_numpy(floor), torch.from_numpy(view))
    np.testing.assert_allclose(back.numpy(), points, atol=1e-3)
    assert floor[0, 0] > floor[2, 0]  # higher in the image: further away
    with pytest.raises(ValueError, match="horizon_row"):
        FloorView(horizon_row=5.0, size_slope=0.17)


def test_the_view_fit_finds_each_cameras_horizon(two_cameras):
    # the size line of a sphere drawn alone at two depths, per camera: the horizon the fit should find
    for (videos, view), spec in zip(two_cameras, CAMERAS):
        renderer = Renderer(Camera(spec))
        rows, roots = [], []
        for y in (-2.0, 3.0):
            m = renderer.render([SceneObject(class_id("sphere", "rubber", "red"), 0.0, y)])[1]
            ys, _ = np.nonzero(m)
            rows.append(ys.mean())
            roots.append(np.sqrt(len(ys)))
        k = (roots[0] - roots[1]) / (rows[0] - rows[1])
        assert view.horizon_row == pytest.approx(rows[0] - roots[0] / k, abs=4)
    assert two_cameras[1][0][0].shape == (22, 160, 240)
    assert abs(two_cameras[0][1].horizon_row - two_cameras[1][1].horizon_row) > 40  # really two cameras


def test_the_same_floor_motion_through_two_cameras_gives_the_same_floor_tracks(two_cameras):
    (videos_a, view_a), (videos_b, view_b) = two_cameras
    pitch_ratio = np.cos(np.arctan(CAMERAS[1].height / (CAMERAS[1].distance + CAMERAS[1].look_y))) / np.cos(
        np.arctan(CAMERAS[0].height / (CAMERAS[0].distance + CAMERAS[0].look_y)))  # 0.92
    for a_masks, b_masks in zip(videos_a, videos_b):
        a, b = track_sample(a_masks, view=view_a), track_sample(b_masks, view=view_b)
        both = (a["obs"][..., 0] > 0) & (b["obs"][..., 0] > 0)
        assert both.sum() >= 20
        pos_a, pos_b = a["obs"][..., 1:3][both] * FLOOR_SPAN, b["obs"][..., 1:3][both] * FLOOR_SPAN
        # depth within 3%, lateral within a twentieth of an object; in pixels the rows differ by tens
        assert ((pos_a[:, 0] - pos_b[:, 0]).abs() / pos_a[:, 0]).max() < 0.03
        assert (pos_a[:, 1] - pos_b[:, 1]).abs().max() < 1.0
        assert (a["obs"][..., 5][both] - b["obs"][..., 5][both]).abs().max() < 0.02  # floor size, same object
        image_a, image_b = track_sample(a_masks), track_sample(b_masks)
        assert ((image_a["obs"][..., 1] - image_b["obs"][..., 1])[both] * 160).abs().max() > 15
        # the moves to frame 22 (what is learned): laterally the same within a fifth of a unit; in depth scaled
        # by the ratio of the cameras' cos(pitch) (depth runs along the tilted optical axis: forecasting/floor.py)
        ok = a["move_ok"][-1] & b["move_ok"][-1]
        move_a, move_b = a["move"][-1][ok], b["move"][-1][ok]
        assert (move_a[:, 1] - move_b[:, 1]).abs().max() < 0.2
        np.testing.assert_allclose((move_b[:, 0] / move_a[:, 0]).numpy(), pitch_ratio, rtol=0.03)
        assert (a["obs"][..., 3:5][both] * VEL_SCALE - b["obs"][..., 3:5][both] * VEL_SCALE).abs().max() < 1.0


def test_floor_targets_paint_back_to_the_image_targets(two_cameras):
    """A model that predicted the floor targets exactly would move each object where the image targets say."""
    videos, view = two_cameras[1]
    floor = collate([track_sample(v, view=view) for v in videos])
    image = collate([track_sample(v) for v in videos])
    for step in range(11):
        move, log_scale = image_outputs(floor, {"move": floor["move"], "log_scale": floor["log_scale"]}, step)
        ok, whole = image["move_ok"][:, step], image["scale_ok"][:, step]
        torch.testing.assert_close(move[ok], image["move"][:, step][ok], atol=1e-3, rtol=0)
        torch.testing.assert_close(log_scale[whole], image["log_scale"][:, step][whole], atol=1e-4, rtol=0)


def test_a_floor_model_trains_flips_saves_and_predicts_through_another_camera(two_cameras, tmp_path):
    (videos_a, view_a), (videos_b, view_b) = two_cameras
    torch.manual_seed(0)
    model = ObjectDynamics(hidden=16, message=16, view=view_a.to_config())
    samples = [track_sample(v, view=view_a) for v in videos_a]
    flipped = flip_sample(samples[0], 240)
    again = flip_sample(flipped, 240)
    for key in ("obs", "start_pos", "start_px", "start_vel", "move"):
        torch.testing.assert_close(again[key], samples[0][key])
    present = samples[0]["obs"][..., 0] > 0
    torch.testing.assert_close(flipped["obs"][..., 2][present], -samples[0]["obs"][..., 2][present])
    batch = collate(samples + [flipped])
    loss = dynamics_loss(model(batch), batch)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["head.2.weight"].abs().sum() > 0  # the floor targets reach the output layer
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    atomic_save(make_checkpoint(model, opt, None, 1, None, {}), tmp_path / "best.pt")
    loaded = load_model(tmp_path / "best.pt", ObjectDynamics)
    assert loaded.view == view_a
    masks = torch.from_numpy(np.stack(videos_b))
    out = predict_masks(loaded, masks, view=view_b)  # through the other camera: its own view
    loaded.set_view(view_b)
    assert loaded.view == view_b and loaded.config["view"] == view_b.to_config()
    assert torch.equal(predict_masks(loaded, masks), out)
    with pytest.raises(ValueError, match="no floor view"):
        ObjectDynamics(hidden=4, message=4).set_view(view_b)
    assert out.shape == (len(videos_b), 160, 240) and out.dtype == masks.dtype
    assert set(out.unique().tolist()) <= set(masks[:, 10].unique().tolist())


def test_the_benchmarks_centroid_errors_follow_whole_objects_and_count_a_dropped_one_where_it_was():
    from conftest import load_script
    bench = load_script("scripts/bench/bench_dynamics.py")
    frame11, truth = torch.zeros(160, 240, dtype=torch.uint8), torch.zeros(160, 240, dtype=torch.uint8)
    frame11[50:60, 50:60], truth[50:60, 80:90] = 3, 3  # moved 30 px to the right
    frame11[100:110, 0:10], truth[100:110, 0:10] = 7, 7  # cut by the left edge: not scored
    pred = torch.zeros_like(truth)
    pred[54:64, 80:90] = 3  # 4 px too low
    assert bench.centroid_errors(frame11, pred, truth) == [pytest.approx(4.0)]
    assert bench.centroid_errors(frame11, torch.zeros_like(truth), truth) == [pytest.approx(30.0)]
