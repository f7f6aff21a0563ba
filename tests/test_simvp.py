"""SimVP in mask space: shapes and the rollout, a few steps lowering the loss (with and without scheduled sampling
and the IoU term), the scheduled-sampling draws, and its train and inference scripts (checkpoints, resume after
a kill to the same weights, torchrun with 2 processes matching 1, the val score and a valid submission)."""
import contextlib
import io
import sys

import numpy as np
import pytest
import torch

from data.pseudo_labels import label_split
from engine import CheckpointError, ResumeError, build_model, load_model, model_config
from forecasting import train_simvp
from forecasting.simvp import PRESETS, SimVP, class_fractions
from scripts import predict
from Unets import inference_hidden_with_simvp, inference_val_with_simvp
from Unets.postprocess import vote_per_video
from Unets.segment import segment
from Unets.unet import UNet

from conftest import kill_after_first_epoch, load_ckpt, one_thread, read_log, torchrun

SCRIPT = train_simvp.__file__
TINY = dict(downsample=2, hid_S=4, hid_T=8, N_S=2, N_T=2, translator_norm="group")
TINY_FLAGS = ["--downsample", "4", "--hid_S", "4", "--hid_T", "8", "--N_S", "2", "--N_T", "2",
              "--translator_norm", "group"]


def moving_squares(batch=3, T=22, H=16, W=24, size=4, seed=0) -> torch.Tensor:
    """(B, T, H, W) ids: one square per video, class 1..48, moving right at a constant speed."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(batch, T, H, W, dtype=torch.uint8)
    for b in range(batch):
        c = int(torch.randint(1, 49, (1,), generator=g))
        y = int(torch.randint(0, H - size, (1,), generator=g))
        for t in range(T):
            x = t * (W - size) // (T - 1)
            masks[b, t, y:y + size, x:x + size] = c
    return masks


def test_shapes_rollout_and_config():
    torch.manual_seed(0)
    masks = moving_squares()
    model = SimVP(**TINY)
    x = model.inputs(masks[:, :11])
    assert x.shape == (3, 11, 49, 8, 12) and torch.allclose(x.sum(2), torch.ones(3, 11, 8, 12))
    assert model(x).shape == (3, 11, 49, 8, 12) and model.steps == 1
    assert model.predict(masks[:, :11]).shape == (3, 16, 24)
    step = SimVP(**TINY, out_frames=1, embed=5)  # one frame a step, rolled 11 times on its own one-hot argmax
    assert step(x).shape == (3, 1, 49, 8, 12) and step.rollout(x).shape == (3, 11, 49, 8, 12)
    moved = step.advance(x, torch.randn(3, 1, 49, 8, 12))
    assert torch.equal(moved[:, :10], x[:, 1:]) and torch.equal(moved[:, 10].sum(1), torch.ones(3, 8, 12))
    rebuilt = build_model(model_config(step), SimVP)
    assert rebuilt.config == step.config and rebuilt.config["out_frames"] == 1
    assert SimVP(**PRESETS["published"]).multiple == 4  # full resolution, two halvings: 160 x 240 divides


def test_bad_inputs_and_configs_raise_with_the_reason():
    model = SimVP(**TINY)
    with pytest.raises(ValueError, match="class ids"):
        model.inputs(torch.zeros(1, 11, 16, 24))
    with pytest.raises(ValueError, match="divide by 4"):
        model.inputs(torch.zeros(1, 11, 18, 24, dtype=torch.uint8))
    with pytest.raises(ValueError, match="N_T"):
        SimVP(N_T=1)
    with pytest.raises(ValueError, match="out_frames"):
        SimVP(out_frames=12)
    with pytest.raises(ValueError, match="translator_norm"):
        SimVP(translator_norm="layer")
    with pytest.raises(ValueError, match="copy_prior"):
        SimVP(copy_prior=-1.0)


@pytest.mark.parametrize("kw", [dict(TINY), dict(TINY, downsample=1), dict(TINY, downsample=1, out_frames=1, embed=5)])
def test_untrained_model_with_the_copy_prior_is_copy_frame_11(kw):
    """The copy prior (logits = scale x the last input frame + a readout that starts at zero): before any training
    frame 22 is frame 11, pixel for pixel, also at half resolution (its full-resolution detail is kept)
    and when rolled forward one frame at a time; without the prior an untrained model predicts noise."""
    torch.manual_seed(0)
    masks = moving_squares(batch=4, size=3)  # 3-pixel squares: not aligned with the 2 x 2 cells
    model = SimVP(**kw).eval()
    assert model.config["copy_prior"] == PRESETS["cpu"]["copy_prior"] > 0
    assert torch.equal(model.predict(masks[:, :11]), masks[:, 10].long())
    x = model.inputs(masks[:, :11])
    assert torch.equal(model(x), model.copy_scale * x[:, -1:].expand(-1, model.out_frames, -1, -1, -1))
    plain = SimVP(**dict(kw, copy_prior=0.0)).eval()
    assert plain.copy_scale is None and not torch.equal(plain.predict(masks[:, :11]), masks[:, 10].long())
    with pytest.raises(RuntimeError, match="copy_scale"):  # a checkpoint made without the prior does not load
        model.load_state_dict(plain.state_dict())


def test_class_fractions_are_the_pooled_one_hot():
    masks = torch.randint(0, 49, (2, 3, 8, 12))
    onehot = torch.nn.functional.one_hot(masks, 49).permute(0, 1, 4, 2, 3).float()
    pooled = torch.nn.functional.avg_pool2d(onehot.flatten(0, 1), 2).reshape(2, 3, 49, 4, 6)
    assert torch.allclose(class_fractions(masks, 49, 2), pooled)


@pytest.mark.parametrize("out_frames, own, iou, prior", [(11, False, 0.0, 0.0), (1, True, 0.0, 0.0),
                                                       (11, False, 1.0, 0.0), (11, False, 0.0, 6.0)])
def test_a_few_steps_lower_the_loss(out_frames, own, iou, prior):
    torch.manual_seed(0)
    model = SimVP(**TINY, out_frames=out_frames, copy_prior=prior)
    masks = moving_squares()
    steps = torch.tensor([0, 2, 5]) if own else None  # videos first rolled 0, 2 and 5 steps on their own output
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    with one_thread():  # tiny convolutions: more threads only wait on each other
        for _ in range(20):
            loss = train_simvp.simvp_loss(model, masks, steps, final_weight=1.0, iou_weight=iou)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_scheduled_sampling_draws_rise_per_epoch_and_do_not_depend_on_order():
    assert train_simvp.max_own_steps(11, 5) == 0 and train_simvp.max_own_steps(1, 5) == 5
    assert train_simvp.max_own_steps(1, 20) == 10  # the target stays inside frames 12-22
    videos = [{"masks": torch.zeros(2, 2)} for _ in range(200)]
    sampled = train_simvp.ScheduledSampling(videos, seed=0, epochs=3, max_prob=1.0, max_steps=4)
    per_epoch = []
    for epoch in (1, 2, 3):
        sampled.set_epoch(epoch)
        per_epoch.append([int(sampled[i]["own_steps"]) for i in range(200)])
    assert sum(per_epoch[0]) == 0 and 60 < np.count_nonzero(per_epoch[1]) < 140 and min(per_epoch[2]) >= 1
    assert set(per_epoch[2]) == {1, 2, 3, 4}
    sampled.set_epoch(2)
    assert [int(sampled[i]["own_steps"]) for i in reversed(range(200))] == per_epoch[1][::-1]


# ---------------------------------------------------------------- the scripts


@pytest.fixture(scope="module")
def work(tiny_root, unet_ckpt, tmp_path_factory):
    """The U-Net's pseudo-labels of the unlabeled videos, the flags of a tiny run and one 1-epoch run."""
    work = tmp_path_factory.mktemp("simvp")
    unet = load_model(unet_ckpt, UNet)
    label_split(lambda f: segment(unet, f), tiny_root, "unlabeled", work / "pl", segmenter=unet_ckpt,
                per_video=vote_per_video)
    argv = ["--root_dir", str(tiny_root), "--pseudo_labels", str(work / "pl"), "--saved_seg_model_dir",
            str(unet_ckpt), "--batch_size", "2", "--num_workers", "0", "--device", "cpu", *TINY_FLAGS]
    with contextlib.redirect_stdout(io.StringIO()):
        train_simvp.main(argv + ["--checkpoint_dir", str(work / "ref"), "--epochs", "1"])
    return work, argv


def test_train_script_writes_checkpoints_and_refuses_what_it_should(work):
    work, argv = work
    log = read_log(work / "ref")
    assert [r["epoch"] for r in log] == [1] and 0 <= log[0]["val_jaccard"] <= 1 and "val_copy_jaccard" in log[0]
    model = load_model(work / "ref" / "best.pt", SimVP)
    assert model.config["downsample"] == 4 and model.config["hid_T"] == 8
    with pytest.raises(ResumeError):  # a fresh run would overwrite the checkpoints
        train_simvp.main(argv + ["--checkpoint_dir", str(work / "ref"), "--epochs", "1"])
    with pytest.raises(ResumeError, match="epochs"):
        train_simvp.main(argv + ["--checkpoint_dir", str(work / "ref"), "--epochs", "3", "--resume"])
    with pytest.raises(ValueError, match="never sees its own output"):  # one shot: nothing to schedule
        train_simvp.main(argv + ["--checkpoint_dir", str(work / "ss"), "--sampling_max", "0.5"])
    with pytest.raises(SystemExit):
        train_simvp.parse_args(["--unlabeled_videos", "0", "--train_videos", "0"])


def test_killed_run_resumes_to_the_same_weights(work, tmp_path):
    """A 2-epoch run of the one-frame-a-step model with scheduled sampling (every video rolled on its own output in
    epoch 2), killed during epoch 2 and resumed: the weights of an uninterrupted run."""
    _, argv = work
    argv = argv + ["--batch_size", "1", "--epochs", "2", "--out_frames", "1", "--hid_T", "48", "--sampling_max",
                   "1", "--sampling_steps", "3"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    with one_thread(), contextlib.redirect_stdout(io.StringIO()):
        train_simvp.main(argv + ["--checkpoint_dir", str(reference)])
    code = kill_after_first_epoch([sys.executable, SCRIPT, *argv, "--checkpoint_dir", killed], killed, poll=0.002)
    assert code == -9, "the run ended before it could be killed during epoch 2"
    assert load_ckpt(killed / "last.pt")["epoch"] == 1
    # the killed process left its lock behind: the resume takes it over and says so
    with pytest.warns(UserWarning, match="taking over the lock"), one_thread(), \
            contextlib.redirect_stdout(io.StringIO()):
        train_simvp.main(argv + ["--checkpoint_dir", str(killed), "--resume"])
    resumed, uninterrupted = load_ckpt(killed / "last.pt"), load_ckpt(reference / "last.pt")
    assert resumed["epoch"] == uninterrupted["epoch"] == 2
    assert all(torch.equal(resumed["model"][k], uninterrupted["model"][k]) for k in uninterrupted["model"])
    assert [r["train_loss"] for r in read_log(killed)] == [r["train_loss"] for r in read_log(reference)]


def test_torchrun_two_processes_agree_with_one(work, tmp_path):
    """--batch_size is per process: 2 gloo processes x 1 video take the same steps as 1 process x 2."""
    _, argv = work
    two, one = tmp_path / "two", tmp_path / "one"
    result = torchrun(SCRIPT, argv + ["--checkpoint_dir", two, "--epochs", "1", "--batch_size", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    with one_thread(), contextlib.redirect_stdout(io.StringIO()):
        train_simvp.main(argv + ["--checkpoint_dir", str(one), "--epochs", "1"])
    log_two, log_one = read_log(two), read_log(one)
    assert len(log_two) == 1, "rank 0 alone writes the log"
    assert log_two[0]["train_loss"] == pytest.approx(log_one[0]["train_loss"], rel=1e-4)
    assert log_two[0]["val_jaccard"] == pytest.approx(log_one[0]["val_jaccard"], abs=1e-6)
    w2, w1 = load_ckpt(two / "last.pt")["model"], load_ckpt(one / "last.pt")["model"]
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-5


def test_inference_scripts_and_predict_write_a_valid_submission(work, tiny_root, unet_ckpt, capsys, tmp_path):
    work, _ = work
    common = ["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(unet_ckpt),
              "--saved_simvp_model_dir", str(work / "ref"), "--device", "cpu", "--num_workers", "0"]
    jaccard = inference_val_with_simvp.main(common)
    assert f"Jaccard: {jaccard:.4f}" in capsys.readouterr().out.splitlines()
    sub = predict.main(["--method", "simvp", "--split", "hidden", *common, "--output", str(tmp_path / "sub.pt")])
    saved = torch.load(tmp_path / "sub.pt", weights_only=True)
    assert saved.dtype == torch.uint8 and saved.shape == (2, 160, 240) and torch.equal(saved, sub)
    assert inference_hidden_with_simvp.main.__name__ == "main"  # the thin entry: predict.py with the method fixed
    swapped = common.copy()
    swapped[swapped.index("--saved_simvp_model_dir") + 1] = str(unet_ckpt)
    with pytest.raises(CheckpointError, match="'simvp'"):
        inference_val_with_simvp.main(swapped)
