"""The learned object dynamics: tracks from masks (edges, objects that appear or vanish), the model's rollout and
painting, a few steps lowering the loss, and its train and inference scripts (resume after a kill, torchrun with
2 processes matching 1, the submission)."""
import contextlib
import io
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from data.pseudo_labels import label_split
from forecasting import train_dynamics
from forecasting.dynamics import (
    FUTURE_STEPS, ObjectDynamics, dynamics_loss, flip_sample, forecast_outputs, predict_masks, track_sample,
    video_tracks,
)
from forecasting.floor import FloorView
from forecasting.motion import Motion, extrapolate_mask
from forecasting.tracks import extract_tracks, segmenter_errors
from Unets import inference_hidden_with_dynamics, inference_val_with_dynamics
from Unets.postprocess import vote_per_video
from Unets.segment import segment
from engine import CheckpointError, OutputPathError, ResumeError, build_model, load_model, model_config
from Unets.unet import UNet

from conftest import ONE_THREAD, REPO, kill_after_first_epoch, load_ckpt, read_log, torchrun

SCRIPT = REPO / "forecasting" / "train_dynamics.py"
H, W = 160, 240


def square_video(T, cls, top_left, velocity, side=10):
    """T frames (T, H, W) uint8 of one square of class cls moving at a constant velocity (rows, cols per frame)."""
    masks = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        r, c = top_left[0] + velocity[0] * t, top_left[1] + velocity[1] * t
        r0, c0 = max(r, 0), max(c, 0)
        r1, c1 = min(r + side, H), min(c + side, W)
        if r1 > r0 and c1 > c0:
            masks[t, r0:r1, c0:c1] = cls
    return masks


def test_tracks_follow_whole_objects_and_edges():
    v = square_video(4, 5, (50, 100), (2, 3))
    tr = extract_tracks(v)
    assert tr.classes.tolist() == [5] and tr.present.all()
    np.testing.assert_allclose(tr.centroid[0, 0], [54.5, 104.5])
    np.testing.assert_allclose(tr.box[1, 0], [52, 103, 61, 112])
    np.testing.assert_allclose(tr.velocity[1:, 0], [[2, 3]] * 3)
    assert tr.velocity[0].tolist() == [[0, 0]] and not tr.cut.any()
    # entering from the left: the visible centroid moves at half speed, the track follows the inside edge
    enter = square_video(4, 7, (60, -16), (0, 4), side=20)
    tr = extract_tracks(enter)
    assert tr.cut[0, 0].tolist() == [False, True, False, False]
    assert tr.centroid[1, 0, 1] - tr.centroid[0, 0, 1] == pytest.approx(2.0)
    np.testing.assert_allclose(tr.velocity[1:, 0], [[0, 4]] * 3)
    move, ok = tr.shift(0, 3)
    assert ok[0] and move[0].tolist() == [0, 12]


def test_tracks_of_objects_that_appear_vanish_or_are_stray_pixels():
    masks = np.zeros((5, H, W), np.uint8)
    masks[:2, 10:20, 10:20] = 3  # leaves after frame 2
    masks[3:, 100:110, 50:60] = 9  # appears in frame 4
    masks[:, 0:2, 200:205] = 12  # 10 pixels: a segmenter's stray blob, not an object
    tr = extract_tracks(masks)
    assert tr.classes.tolist() == [3, 9]
    assert tr.present[:, 0].tolist() == [True, True, False, False, False]
    assert tr.present[:, 1].tolist() == [False, False, False, True, True]
    assert tr.area[2, 0] == 0 and tr.velocity[3, 1].tolist() == [0, 0]  # no move from absence
    assert not tr.shift(0, 4)[1].any()
    assert extract_tracks(masks, max_objects=1).classes.tolist() == [3]  # the largest over the frames is kept


def test_a_class_flipped_for_a_frame_does_not_split_the_track():
    """A segmenter names a moving red cube (class 2) a red sphere (18) in one frame, and a red rubber cube (10) in
    the last two: the track stays one object with its velocity. Another color, or a flip far from where the object
    was, is not merged; repair_flips=False gives the split tracks."""
    video = square_video(8, 2, (50, 100), (2, 3))
    flipped = video.copy()
    flipped[3][flipped[3] == 2] = 18
    flipped[6:][flipped[6:] == 2] = 10
    tr = extract_tracks(flipped)
    assert tr.classes.tolist() == [2] and tr.present.all()
    np.testing.assert_allclose(tr.velocity[1:, 0], [[2, 3]] * 7)
    assert sorted(extract_tracks(flipped, repair_flips=False).classes.tolist()) == [2, 10, 18]
    other_color = video.copy()
    other_color[3][other_color[3] == 2] = 19  # green sphere: a color is rarely wrong, a new object more likely
    assert extract_tracks(other_color).classes.tolist() == [2, 19]
    far = video.copy()
    far[3][far[3] == 2] = 0
    far[3, 120:130, 10:20] = 18  # the same color, but nowhere near where the cube was
    assert extract_tracks(far).classes.tolist() == [2, 18]


def test_segmenter_errors_alter_the_inputs_and_leave_the_targets_to_the_true_masks():
    """Errors are drawn from the generator alone (the same twice), none at rate 0; at rate 1 every object of every
    frame is left out, flipped to another class of its color, or grown or shrunk by a pixel. A sample whose inputs
    carry them keeps its targets from the true masks; an object known only by a flipped class gets no move target."""
    video = square_video(22, 2, (50, 40), (2, 3)) | square_video(22, 5, (20, 150), (1, -2))
    a = segmenter_errors(video[:11], np.random.default_rng(3), 0.3)
    assert np.array_equal(a, segmenter_errors(video[:11], np.random.default_rng(3), 0.3))
    assert np.array_equal(segmenter_errors(video[:11], np.random.default_rng(3), 0.0), video[:11])
    every = segmenter_errors(video[:11], np.random.default_rng(4), 1.0)
    for t in range(11):
        for c in (2, 5):
            assert not np.array_equal(every[t] == c, video[t] == c), (t, c)
    noisy = video.copy()
    noisy[:11] = every
    clean = track_sample(video)
    sample = track_sample(noisy, whole=video_tracks(video))
    known = np.isin(sample["classes"].numpy(), [2, 5])
    clean_slots = [clean["classes"].tolist().index(c) for c in sample["classes"].numpy()[known]]
    for key in ("move", "move_ok", "log_scale", "scale_ok", "visible"):
        assert np.array_equal(sample[key].numpy()[:, known], clean[key].numpy()[:, clean_slots]), key
    phantom = (sample["exists"].numpy() & ~np.isin(sample["classes"].numpy(), [2, 5]))
    assert phantom.any() and not sample["move_ok"].numpy()[:, phantom].any()


def test_an_object_whose_class_flips_in_frame_11_is_still_moved_and_painted_with_its_frame_11_pixels():
    """The track keeps the object's class, and the sample says which class its frame-11 pixels carry, so that
    painting finds them: an untrained model (constant velocity) moves them as it moves any object."""
    video = square_video(22, 2, (50, 30), (1, 5))
    flipped = video.copy()
    flipped[10][flipped[10] == 2] = 18  # frame 11 only
    sample = track_sample(flipped[:11], with_targets=False)
    assert sample["classes"][0] == 2 and sample["pixel_classes"][0] == 18 and sample["paintable"][0]
    torch.manual_seed(0)
    pred = predict_masks(ObjectDynamics(hidden=8, message=8), torch.from_numpy(flipped[None, :11]))[0]
    moved = np.zeros_like(video[21])
    moved[video[21] == 2] = 18  # frame 11's pixels, 11 frames on at its velocity
    assert torch.equal(pred, torch.from_numpy(moved))


def test_segmenter_errors_on_an_object_the_true_masks_lack_give_no_targets():
    video = np.zeros((22, H, W), np.uint8)
    noisy = video.copy()
    noisy[:11, 50:60, 50:60] = 7  # a segmenter's phantom in the inputs; the true masks are empty
    sample = track_sample(noisy, whole=video_tracks(video))
    assert sample["exists"][0] and not sample["move_ok"].any() and sample["visible"][:, 0].all()


def test_true_masks_of_synthetic_videos_give_the_same_tracks_with_or_without_the_repair(tiny_root):
    files = sorted(tiny_root.glob("*/video_*/mask.npy"))
    assert files
    for f in files:
        masks = np.load(f)
        a, b = extract_tracks(masks), extract_tracks(masks, repair_flips=False)
        assert a.classes.tolist() == b.classes.tolist() and np.array_equal(a.present, b.present)
        np.testing.assert_array_equal(a.centroid, b.centroid)


def test_sample_targets_and_the_mirrored_video_give_the_mirrored_sample():
    video = np.maximum(square_video(22, 4, (40, 30), (1, 5)), square_video(22, 30, (100, 150), (0, 0), side=14))
    sample = track_sample(video)
    assert sample["exists"][:2].all() and not sample["exists"][2:].any() and sample["paintable"][:2].all()
    np.testing.assert_allclose(sample["move"][-1, 0], [11, 55])  # frame 11 -> 22
    assert sample["move"][:, 1].abs().max() == 0 and sample["move_ok"][:, :2].all()
    np.testing.assert_allclose(sample["log_scale"][:, :2], 0, atol=1e-6)
    mirrored = track_sample(video[:, :, ::-1].copy())
    flipped = flip_sample(sample, W)
    for key in ("obs", "start_pos", "start_vel", "move", "static", "exists"):
        torch.testing.assert_close(flipped[key], mirrored[key], msg=key)


def test_an_earlier_window_predicts_the_eleven_frames_after_its_end():
    video = square_video(22, 4, (40, 30), (1, 5))
    sample = track_sample(video, end=5)
    assert sample["obs"][:5, 0, 0].sum() == 0 and sample["obs"][5:, 0, 0].all()  # no frames before the video's start
    np.testing.assert_allclose(sample["start_pos"][0], [40 + 5 + 4.5, 30 + 25 + 4.5])
    np.testing.assert_allclose(sample["move"][:, 0], [[k, 5 * k] for k in range(1, 12)])
    with pytest.raises(ValueError, match="end"):
        track_sample(video, end=11)  # its 11 frames after would run past frame 22


def test_untrained_model_keeps_velocities_and_paints_the_moved_shape():
    torch.manual_seed(0)
    model = ObjectDynamics(hidden=16, message=16)
    video = square_video(22, 4, (40, 30), (1, 5))
    out = model({k: v[None] for k, v in track_sample(video).items()})
    assert out["move"].shape == (1, FUTURE_STEPS, 16, 2)
    np.testing.assert_allclose(out["move"][0, :, 0].detach(), [[k, 5 * k] for k in range(1, 12)], atol=1e-4)
    pred = predict_masks(model, torch.from_numpy(video[None, :11]))
    assert pred.shape == (1, H, W) and torch.equal(pred[0], torch.from_numpy(video[21]))  # constant velocity


def test_an_untrained_model_with_keep_slows_each_object_by_that_share_per_frame():
    model = ObjectDynamics(hidden=16, message=16, keep=0.9)
    video = square_video(22, 4, (40, 30), (1, 5))
    out = model({k: v[None] for k, v in track_sample(video).items()})
    covered = np.cumsum([0.9 ** k for k in range(1, 12)])  # frames ahead, each move 0.9 of the one before
    np.testing.assert_allclose(out["move"][0, :, 0].detach(), np.stack([covered, 5 * covered], -1), atol=1e-4)
    assert model.config["keep"] == 0.9 and "keep" in dict(model.named_parameters())
    with pytest.raises(ValueError, match="keep"):
        ObjectDynamics(keep=1.0)


def test_a_blend_with_the_motion_model_lands_between_the_two_forecasts_and_travels_in_the_checkpoint():
    """weight 1 is the learned model alone, 0 the motion model's forecast to the pixel, 0.5 puts each object
    halfway; an object too small to track moves as the motion model has it; the blend is part of the model's
    config, so a rebuilt model forecasts it by default."""
    torch.manual_seed(0)
    model = ObjectDynamics(hidden=16, message=16)  # untrained: constant velocity, 55 columns in 11 frames
    motion = Motion(damping=0.5)  # image-space motion, half the constant-velocity way
    video = square_video(22, 4, (40, 30), (0, 5))
    speck = square_video(22, 9, (120, 100), (0, 2), side=2)  # 4 pixels: no track slot
    video = np.where(speck > 0, speck, video)
    masks = torch.from_numpy(video[None, :11])

    def centroid(mask, cls):
        return torch.nonzero(mask == cls).float().mean(0)

    alone = predict_masks(model, masks)
    assert torch.equal(predict_masks(model, masks, weight=1.0, motion=motion), alone)
    assert torch.equal(predict_masks(model, masks, weight=0.0, motion=motion)[0], extrapolate_mask(video[:11], motion))
    half = predict_masks(model, masks, weight=0.5, motion=motion)[0]
    by_motion = extrapolate_mask(video[:11], motion)
    learned_col, motion_col = float(centroid(alone[0], 4)[1]), float(centroid(by_motion, 4)[1])
    assert learned_col - motion_col > 20  # the two forecasts differ ...
    assert float(centroid(half, 4)[1]) == pytest.approx((learned_col + motion_col) / 2, abs=0.5)  # ... half way
    assert torch.equal(half == 9, by_motion == 9) and not torch.equal(alone[0] == 9, by_motion == 9)
    with pytest.raises(ValueError, match="motion model"):
        predict_masks(model, masks, weight=0.5)
    model.set_blend(motion, 0.5)
    assert torch.equal(predict_masks(model, masks)[0], half)
    rebuilt = build_model(model_config(model), ObjectDynamics)  # as a checkpoint rebuilds it
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.config["blend"] == {"weight": 0.5, "motion": motion.to_config()}
    assert torch.equal(predict_masks(rebuilt, masks)[0], half)
    with pytest.raises(ValueError, match="share"):
        model.set_blend(motion, 1.5)
    with pytest.raises(ValueError, match="a blend is"):  # a hand-edited checkpoint's config, named
        ObjectDynamics(hidden=16, message=16, blend={"weight": 0.5})
    with pytest.raises(ValueError, match="share"):
        predict_masks(model, masks, weight=float("nan"))


def test_a_mirrored_forecast_is_the_mirror_image_of_the_forecast_of_the_mirrored_video():
    """With mirror (the default), each model forecasts the mean of the video's and its mirror image's: the
    forecast of the mirrored video is then the mirror of the video's, in the image and on the floor, whatever the
    weights; without it a model that has learned anything breaks that symmetry."""
    video = np.maximum(square_video(22, 4, (40, 30), (1, 5)), square_video(22, 30, (100, 150), (-1, -3), side=14))
    masks = torch.from_numpy(video[None, :11])
    for view in (None, FloorView(horizon_row=-80.0, size_slope=0.2).to_config()):
        torch.manual_seed(0)
        model = ObjectDynamics(hidden=16, message=16, view=view)
        torch.nn.init.normal_(model.head[-1].weight, std=0.5)  # a model whose forecast depends on what it sees
        for mirror in (True, False):
            move, log_scale, visible, classes = (x[0, :2] for x in forecast_outputs(model, masks, mirror=mirror))
            m_move, m_log_scale, m_visible, m_classes = (x[0, :2] for x in forecast_outputs(model, masks.flip(-1),
                                                                                            mirror=mirror))
            assert torch.equal(classes, m_classes) and classes.tolist() == [4, 30]  # the two objects' slots
            symmetric = [torch.allclose(m_move[..., 0], move[..., 0], atol=1e-3),
                         torch.allclose(m_move[..., 1], -move[..., 1], atol=1e-3),
                         torch.allclose(m_log_scale, log_scale, atol=1e-4), torch.allclose(m_visible, visible, atol=1e-4)]
            assert all(symmetric) if mirror else not all(symmetric), (view, mirror, symmetric)
        pred = predict_masks(model, masks)
        assert (predict_masks(model, masks.flip(-1)) == pred.flip(-1)).float().mean() > 0.999


def test_an_ensemble_forecasts_the_mean_of_its_models():
    """Each object of an ensemble's forecast lands at the mean of its models' places; an ensemble of one model
    twice is that model; models that blend with the motion model differently are refused unless the blend is given."""
    video = square_video(22, 4, (40, 30), (0, 5))
    masks = torch.from_numpy(video[None, :11])
    torch.manual_seed(0)
    slow = ObjectDynamics(hidden=16, message=16, keep=0.5)  # untrained: 5 columns per frame, halved each frame
    fast = ObjectDynamics(hidden=16, message=16)  # untrained: constant velocity
    cols = [float(torch.nonzero(predict_masks(m, masks)[0] == 4).float().mean(0)[1]) for m in (slow, fast, [slow, fast])]
    assert cols[1] - cols[0] > 40 and cols[2] == pytest.approx((cols[0] + cols[1]) / 2, abs=0.5)
    assert torch.equal(predict_masks([fast, fast], masks), predict_masks(fast, masks))
    motion = Motion(damping=0.5)
    fast.set_blend(motion, 0.5)
    with pytest.raises(ValueError, match="model 2 with a blend of share 0.5"):
        predict_masks([slow, fast], masks)
    alone = predict_masks([slow, fast], masks, weight=1.0)  # a given weight needs no agreement on the blend ...
    assert float(torch.nonzero(alone[0] == 4).float().mean(0)[1]) == pytest.approx(cols[2], abs=0.5)
    slow.set_blend(motion, 0.75)
    blended = predict_masks([slow, fast], masks, weight=0.5)  # ... nor, when the motion models agree, on the share
    assert torch.equal(blended, predict_masks([slow, fast], masks, weight=0.5, motion=motion))
    with pytest.raises(ValueError, match="share 0.75"):
        predict_masks([slow, fast], masks)


def test_a_guided_model_starts_as_its_motion_model_and_learns_what_it_misses():
    """Untrained, a model guided by a motion model paints exactly the motion model's forecast; the guide's moves
    are part of the inputs, mirrored with the video; the guide travels in the config; a few steps on squares that
    the guide moves too far lower the loss."""
    motion = Motion(damping=0.5)  # image space, half the constant-velocity way
    video = np.maximum(square_video(22, 4, (40, 30), (0, 5)), square_video(22, 30, (100, 150), (0, 0), side=14))
    torch.manual_seed(0)
    model = ObjectDynamics(hidden=16, message=16, guide=motion.to_config())
    masks = torch.from_numpy(video[None, :11])
    assert torch.equal(predict_masks(model, masks)[0], extrapolate_mask(video[:11], motion))
    sample = track_sample(video, guide=motion)
    assert float(sample["guide_move"][-1, 0, 1]) == pytest.approx(27.5, abs=1)  # half of the 55 columns
    assert sample["guide_move"][:, 1].abs().max() == 0  # the still square stays
    mirrored = track_sample(video[:, :, ::-1].copy(), guide=motion)
    torch.testing.assert_close(flip_sample(sample, W)["guide_move"], mirrored["guide_move"], atol=0.05, rtol=0)
    rebuilt = build_model(model_config(model), ObjectDynamics)
    assert rebuilt.config["guide"] == motion.to_config() and rebuilt.guide == motion
    with pytest.raises(ValueError, match="guide"):  # inputs made without the guide
        model({k: v[None] for k, v in track_sample(video).items()})
    with pytest.raises(ValueError, match="keep"):
        ObjectDynamics(guide=motion.to_config(), keep=0.9)

    # squares slowing down by 0.8 a frame: the guide's damping 0.5 takes them too far
    losses = train_losses(model, [track_sample(v, guide=motion) for v in slowing_squares(0.8, cls=7)])
    assert losses[-1] < 0.7 * losses[0], losses


def slowing_squares(decay: float, cls: int = None, n: int = 8) -> list:
    """n videos (22, H, W) of a 12-pixel square sliding right and slowing by `decay` a frame, each from its own
    row, column and speed (rng seed 0), of class cls (default: a random class per video)."""
    rng = np.random.default_rng(0)
    videos = []
    for _ in range(n):
        masks = np.zeros((22, H, W), np.uint8)
        r, c, v = rng.integers(20, 120), rng.integers(10, 60), rng.uniform(3, 6)
        label = rng.integers(1, 49) if cls is None else cls
        for t in range(22):
            x = int(round(c + v * (1 - decay ** t) / (1 - decay)))
            masks[t, r:r + 12, x:x + 12] = label
        videos.append(masks)
    return videos


def train_losses(model, samples: list, steps: int = 30) -> list:
    """The loss of each of `steps` Adam steps on one batch of track samples."""
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = dynamics_loss(model(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_a_few_steps_lower_the_loss():
    # squares that slow down: constant velocity is wrong, a learned deceleration is right
    samples = [track_sample(m) for m in slowing_squares(0.85)]
    torch.manual_seed(0)
    losses = train_losses(ObjectDynamics(hidden=32, message=32), samples)
    assert losses[-1] < 0.5 * losses[0], losses


# ---------------------------------------------------------------- the scripts


@pytest.fixture(scope="module")
def work(tiny_root, unet_ckpt, tmp_path_factory):
    """The U-Net's pseudo-labels of the unlabeled videos, and the flags of a tiny run."""
    work = tmp_path_factory.mktemp("dynamics")
    unet = load_model(unet_ckpt, UNet)
    label_split(lambda f: segment(unet, f), tiny_root, "unlabeled", work / "pl", segmenter=unet_ckpt,
                per_video=vote_per_video)
    argv = ["--root_dir", str(tiny_root), "--pseudo_labels", str(work / "pl"), "--saved_seg_model_dir",
            str(unet_ckpt), "--batch_size", "2", "--state_width", "8", "--message_width", "8", "--device", "cpu"]
    with contextlib.redirect_stdout(io.StringIO()):
        train_dynamics.main(argv + ["--checkpoint_dir", str(work / "ref"), "--epochs", "2"])
    return work, argv


def test_a_floor_model_pre_trains_with_segmenter_errors_then_fine_tunes_on_pseudo_labels(work, capsys):
    """The recipe: pre-train on the floor (train masks, some with a segmenter's errors), then --init_from on the
    pseudo-labels alone: the weights' shapes come from the checkpoint. The tiny U-Net's pseudo-labels show no
    object travelling in depth, so the camera cannot be fitted on them: the checkpoint's view is kept, said so."""
    work, argv = work
    train_dynamics.main(argv + ["--checkpoint_dir", str(work / "pre"), "--epochs", "1", "--coords", "floor",
                                "--segmenter_errors", "0.2", "--unlabeled_videos", "0"])
    pre = load_model(work / "pre" / "best.pt", ObjectDynamics)
    assert pre.view is not None and pre.view.horizon_row < 0
    assert "floor view of the training masks" in capsys.readouterr().out
    train_dynamics.main(argv + ["--checkpoint_dir", str(work / "tuned"), "--epochs", "1", "--train_videos", "0",
                                "--init_from", str(work / "pre" / "best.pt")])
    out = capsys.readouterr().out
    assert "initialised from" in out and "keeping" in out
    tuned = load_model(work / "tuned" / "best.pt", ObjectDynamics)
    assert tuned.view == pre.view and tuned.config["hidden"] == pre.config["hidden"]
    with pytest.raises(ValueError, match="--coords image"):  # a fresh model has no view to fall back on
        train_dynamics.main(argv + ["--checkpoint_dir", str(work / "fresh"), "--epochs", "1", "--train_videos", "0",
                                    "--coords", "floor"])
    assert any(not torch.equal(a, b) for a, b in zip(pre.state_dict().values(), tuned.state_dict().values()))


def test_a_run_from_before_the_floor_flags_resumes_as_the_image_model_it_was(work):
    """A checkpoint whose args lack --coords, --velocity_keep, --segmenter_errors, --init_from and the blend's
    flags (a run begun
    before they existed) continues with --coords image and their empty defaults; the new default floor is refused."""
    work, argv = work
    run = work / "old"
    train_dynamics.main(argv + ["--checkpoint_dir", str(run), "--epochs", "2", "--coords", "image"])
    ckpt = torch.load(run / "last.pt", weights_only=False)
    for k in ("coords", "velocity_keep", "segmenter_errors", "init_from", "motion", "motion_blend", "motion_videos",
              "damping", "horizon_row", "contact", "focal", "guided"):
        del ckpt["args"][k]
    torch.save(ckpt, run / "last.pt")
    with pytest.raises(ResumeError, match="the flags build .*view"):  # the floor model is another model
        train_dynamics.main(argv + ["--checkpoint_dir", str(run), "--epochs", "2", "--resume"])
    with pytest.raises(ResumeError, match="the flags build .*keep"):
        train_dynamics.main(argv + ["--checkpoint_dir", str(run), "--epochs", "2", "--resume", "--coords", "image",
                                    "--velocity_keep", "0.9"])
    train_dynamics.main(argv + ["--checkpoint_dir", str(run), "--epochs", "2", "--resume", "--coords", "image"])
    assert [r["epoch"] for r in read_log(run)] == [1, 2]  # finished: resumed and found nothing left to do


def test_train_script_writes_checkpoints_and_refuses_what_it_should(work):
    work, argv = work
    log = read_log(work / "ref")
    assert [r["epoch"] for r in log] == [1, 2] and 0 <= log[-1]["val_jaccard"] <= 1 and "val_copy_jaccard" in log[-1]
    model = load_model(work / "ref" / "best.pt", ObjectDynamics)
    assert model.config["hidden"] == 8
    with pytest.raises(ResumeError):
        train_dynamics.main(argv + ["--checkpoint_dir", str(work / "ref"), "--epochs", "2"])
    with pytest.raises(ResumeError, match="teacher_prob"):
        train_dynamics.main(argv + ["--checkpoint_dir", str(work / "ref"), "--epochs", "2", "--resume",
                                    "--teacher_prob", "0.5"])
    with pytest.raises(SystemExit):
        train_dynamics.parse_args(["--unlabeled_videos", "0", "--train_videos", "0"])


def test_with_motion_the_checkpoint_carries_the_blend_that_validation_and_inference_forecast(work, capsys):
    work, argv = work
    train_dynamics.main(argv + ["--checkpoint_dir", str(work / "blend"), "--epochs", "1", "--motion", "fit",
                                "--motion_videos", "2", "--motion_blend", "0.25"])
    assert "motion:" in capsys.readouterr().out
    model = load_model(work / "blend" / "best.pt", ObjectDynamics)
    assert model.blend[0] == 0.25 and model.config["blend"]["motion"] == model.blend[1].to_config()
    with pytest.raises(SystemExit):
        train_dynamics.parse_args(argv + ["--motion", "fit", "--motion_blend", "1.5"])
    with pytest.raises(SystemExit):  # a blend without a motion model would be ignored: refused instead
        train_dynamics.parse_args(argv + ["--motion_blend", "0.3"])
    assert train_dynamics.parse_args(argv + ["--motion", "fit"]).motion_blend == 0.5


def test_guided_the_checkpoint_carries_the_motion_model_it_corrects(work):
    work, argv = work
    train_dynamics.main(argv + ["--checkpoint_dir", str(work / "guided"), "--epochs", "1", "--motion", "fit",
                                "--motion_videos", "2", "--guided"])
    model = load_model(work / "guided" / "best.pt", ObjectDynamics)
    assert model.guide is not None and model.config["guide"] == model.blend[1].to_config()
    for flags in (["--guided"], ["--guided", "--motion", "fit", "--velocity_keep", "0.9"],
                  ["--guided", "--motion", "fit", "--teacher_prob", "0.5"]):
        with pytest.raises(SystemExit):
            train_dynamics.parse_args(argv + flags)
    with pytest.raises(ValueError, match="unguided"):  # an unguided checkpoint's weights correct no motion model
        train_dynamics.main(argv + ["--checkpoint_dir", str(work / "guided_init"), "--epochs", "1", "--motion", "fit",
                                    "--motion_videos", "2", "--guided", "--init_from", str(work / "ref" / "best.pt")])
    with pytest.raises(ValueError, match="is guided"):  # found before any tracks are made
        train_dynamics.main(argv + ["--checkpoint_dir", str(work / "guided_init"), "--epochs", "1", "--teacher_prob",
                                    "0.5", "--init_from", str(work / "guided" / "best.pt")])
    assert not (work / "guided_init" / "last.pt").exists()
    assert train_dynamics.parse_args(argv + ["--guided", "--init_from", str(work / "guided" / "best.pt")]).guided


def test_killed_run_resumes_to_the_same_weights(work):
    work, argv = work
    # wider and one video per step, so that epoch 2 lasts long enough to be killed in
    argv = argv + ["--batch_size", "1", "--state_width", "192", "--message_width", "192", "--epochs", "2"]
    reference, killed = work / "uninterrupted", work / "killed"
    subprocess.run([sys.executable, str(SCRIPT), *argv, "--checkpoint_dir", str(reference)], check=True,
                   capture_output=True, env=ONE_THREAD)
    cmd = [sys.executable, SCRIPT, *argv, "--checkpoint_dir", killed]
    assert kill_after_first_epoch(cmd, killed, poll=0.002) == -9, "the run ended before it could be killed in epoch 2"
    assert load_ckpt(killed / "last.pt")["epoch"] == 1
    subprocess.run([str(c) for c in cmd] + ["--resume"], check=True, capture_output=True, env=ONE_THREAD)
    resumed, uninterrupted = load_ckpt(killed / "last.pt"), load_ckpt(reference / "last.pt")
    assert resumed["epoch"] == 2 and [r["epoch"] for r in read_log(killed)] == [1, 2]
    assert all(torch.equal(resumed["model"][k], uninterrupted["model"][k]) for k in uninterrupted["model"])


def test_torchrun_two_processes_agree_with_one(work):
    work, argv = work
    two, one = work / "two", work / "one"
    result = torchrun(SCRIPT, argv + ["--checkpoint_dir", two, "--epochs", "1", "--batch_size", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    subprocess.run([sys.executable, str(SCRIPT), *argv, "--checkpoint_dir", str(one), "--epochs", "1"],
                   env=ONE_THREAD, check=True, capture_output=True)
    log_two, log_one = read_log(two), read_log(one)
    assert len(log_two) == 1, "rank 0 alone writes the log"
    assert log_two[0]["train_loss"] == pytest.approx(log_one[0]["train_loss"], rel=1e-4)
    assert log_two[0]["val_jaccard"] == pytest.approx(log_one[0]["val_jaccard"], abs=1e-6)
    w2, w1 = load_ckpt(two / "last.pt")["model"], load_ckpt(one / "last.pt")["model"]
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-5


def test_inference_scripts(work, tiny_root, unet_ckpt, capsys, tmp_path):
    work, _ = work
    common = ["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(unet_ckpt),
              "--saved_dynamics_model_dir", str(work / "ref" / "best.pt"), "--device", "cpu", "--num_workers", "0"]
    jaccard = inference_val_with_dynamics.main(common + ["--visualize", str(tmp_path / "grids")])
    out = capsys.readouterr().out
    assert f"Jaccard: {jaccard:.4f}" in out.splitlines() and len(list((tmp_path / "grids").glob("*.png"))) == 2
    sub = inference_hidden_with_dynamics.main(common + ["--output", str(tmp_path / "sub.pt")])
    saved = torch.load(tmp_path / "sub.pt", weights_only=True)
    assert saved.dtype == torch.uint8 and saved.shape == (2, H, W) and torch.equal(saved, sub)
    ensemble = common.copy()  # two checkpoints: their ensemble; one model twice forecasts as it alone
    member = tmp_path / "member.pt"
    shutil.copy(work / "ref" / "best.pt", member)
    ensemble.insert(ensemble.index("--saved_dynamics_model_dir") + 2, str(member))
    assert inference_val_with_dynamics.main(ensemble) == jaccard
    with pytest.raises(OutputPathError, match="checkpoint passed as --saved_dynamics_model_dir"):  # any member's
        inference_hidden_with_dynamics.main(ensemble + ["--output", str(member)])
    assert load_ckpt(member)["model_config"] == load_ckpt(work / "ref" / "best.pt")["model_config"]
    swapped = common.copy()
    swapped[swapped.index("--saved_dynamics_model_dir") + 1] = str(unet_ckpt)
    with pytest.raises(CheckpointError, match="'dynamics'"):
        inference_val_with_dynamics.main(swapped)
    (tmp_path / "sub.pt").write_bytes(b"not a tensor")
    with pytest.raises(OSError, match="not a submission"):
        inference_hidden_with_dynamics.main(common + ["--output", str(tmp_path / "sub.pt")])
