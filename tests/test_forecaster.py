"""The mask forecaster: shapes, the copy it starts from, learning through the train script's loss,
resume (also after a kill, to the same weights), torchrun with 2 CPU processes matching 1, and both
inference scripts (Jaccard line, checked submission, wrong-kind checkpoints)."""
import json
import sys
from pathlib import Path

import pytest
import torch

from forecasting.motion import extrapolate_mask
from data.pseudo_labels import label_split
from forecasting import train_forecaster
from forecasting.forecaster import MaskForecaster, class_fractions
from Unets import inference_hidden_with_forecaster, inference_val_with_forecaster
from Unets.segment import segment
from conftest import kill_after_first_epoch, load_ckpt, one_thread, read_log, torchrun
from engine import CheckpointError, ResumeError, atomic_save, build_model, load_model, make_checkpoint, model_config
from Unets.unet import UNet

SCRIPT = Path(train_forecaster.__file__)
TINY = dict(enc_channels=[4, 8], hidden_channels=[8], kernel_size=3, downsample=2)
TINY_FLAGS = ["--enc_channels", "4", "8", "--hidden_channels", "8", "--kernel_size", "3", "--downsample", "4"]


def moving_squares(batch=3, T=22, H=16, W=24, size=4, seed=0) -> torch.Tensor:
    """(B, T, H, W) ids: one square per video, class 1..48, moving one pixel per frame to the right."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(batch, T, H, W, dtype=torch.uint8)
    for b in range(batch):
        c = int(torch.randint(1, 49, (1,), generator=g))
        y = int(torch.randint(0, H - size, (1,), generator=g))
        for t in range(T):
            x = t * (W - size) // (T - 1)
            masks[b, t, y:y + size, x:x + size] = c
    return masks


@pytest.mark.parametrize("feedback", [False, True])
def test_shapes_and_the_start_masks_it_begins_from(feedback):
    torch.manual_seed(0)
    model = MaskForecaster(**TINY, feedback=feedback)
    masks = moving_squares()
    out = model(masks[:, :11], num_future=11, teacher=masks[:, 11:21] if feedback else None, sampling_prob=0.5)
    assert out.shape == (3, 11, 49, 16, 24)
    low, start = model(masks[:, :11], num_future=4, low_res=True)
    assert low.shape == (3, 4, 49, 8, 12) and start.shape == (3, 4, 16, 24)
    # zero delta at initialisation: frame 22 is the extrapolated frame-11 mask ...
    expected = torch.stack([extrapolate_mask(m) for m in masks[:, :11]])
    assert torch.equal(model.predict(masks[:, :11]), expected.long())
    assert torch.equal(start[:, -1], expected)
    assert not torch.equal(expected, masks[:, 10])  # the squares do move
    # ... and with start="copy", frame 11 itself
    copy = MaskForecaster(**TINY, feedback=feedback, start="copy")
    assert torch.equal(copy.predict(masks[:, :11]), masks[:, 10].long())
    rebuilt = build_model(model_config(model), MaskForecaster)
    assert rebuilt.config == model.config and rebuilt.config["start"] == "extrapolate"
    bouncing = MaskForecaster(**TINY, motion={"damping": 0.6, "contact": 1.0})  # the motion travels in the config
    assert build_model(model_config(bouncing), MaskForecaster).motion == bouncing.motion and bouncing.motion.contact == 1.0


def test_bad_inputs_raise_with_the_reason():
    model = MaskForecaster(**TINY)
    with pytest.raises(ValueError, match="class ids"):
        model(torch.zeros(1, 11, 16, 24))
    with pytest.raises(ValueError, match="divide"):
        model(torch.zeros(1, 11, 15, 24, dtype=torch.uint8))
    with pytest.raises(ValueError, match="feedback"):
        model(torch.zeros(1, 11, 16, 24, dtype=torch.uint8), teacher=torch.zeros(1, 10, 16, 24, dtype=torch.uint8))
    with pytest.raises(ValueError, match="input_scale"):
        MaskForecaster(input_scale=-1.0)
    with pytest.raises(ValueError, match="start must be one of"):
        MaskForecaster(start="flow")


def test_class_fractions_are_the_pooled_one_hot():
    masks = torch.randint(0, 49, (2, 3, 8, 12))
    onehot = torch.nn.functional.one_hot(masks, 49).permute(0, 1, 4, 2, 3).float()
    pooled = torch.nn.functional.avg_pool2d(onehot.flatten(0, 1), 2).reshape(2, 3, 49, 4, 6)
    assert torch.allclose(class_fractions(masks, 49, 2), pooled)


@pytest.mark.parametrize("feedback, weight, prob", [(False, 1.0, 0.0), (False, 0.0, 0.0), (True, 1.0, 0.5)])
def test_a_few_steps_lower_the_cross_entropy(feedback, weight, prob):
    torch.manual_seed(0)
    model = MaskForecaster(**TINY, feedback=feedback)
    masks = moving_squares()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = train_forecaster.forecast_loss(model, masks, weight, prob)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory):
    """A U-Net checkpoint (untrained, tiny), the pseudo-labels and one epoch of the forecaster's train script."""
    work = tmp_path_factory.mktemp("forecaster")
    torch.manual_seed(0)
    unet = UNet(base_channels=2)
    atomic_save(make_checkpoint(unet, torch.optim.AdamW(unet.parameters()), None, 0, 0.0, {}), work / "unet.pt")
    label_split(lambda f: segment(unet, f), tiny_root, "unlabeled", work / "pl", segmenter=work / "unet.pt")
    argv = ["--root_dir", str(tiny_root), "--pseudo_labels", str(work / "pl"), "--saved_seg_model_dir",
            str(work / "unet.pt"), "--checkpoint_dir", str(work / "fc"), "--batch_size", "2", "--num_workers", "0",
            "--device", "cpu", *TINY_FLAGS]
    train_forecaster.main(argv + ["--epochs", "1"])
    return work, argv


def test_train_script_writes_checkpoints_and_resumes(trained):
    work, argv = trained
    lines = [json.loads(x) for x in (work / "fc" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1] and 0 <= lines[0]["val_jaccard"] <= 1 and "val_copy_jaccard" in lines[0]
    with pytest.raises(ResumeError):  # a fresh run would overwrite the checkpoints
        train_forecaster.main(argv + ["--epochs", "1"])
    with pytest.raises(ResumeError, match="epochs"):
        train_forecaster.main(argv + ["--epochs", "3", "--resume"])
    assert json.loads((work / "fc" / "log.jsonl").read_text().splitlines()[-1])["epoch"] == 1
    other = work / "other_unet.pt"
    other.write_bytes((work / "unet.pt").read_bytes() + b"x")
    swapped = argv.copy()
    swapped[swapped.index("--saved_seg_model_dir") + 1] = str(other)
    with pytest.raises(ValueError, match="another segmenter"):  # val inputs made by another U-Net are not reused
        train_forecaster.main(swapped + ["--epochs", "2", "--resume"])
    model = load_model(work / "fc" / "best.pt", MaskForecaster)
    assert model.config["downsample"] == 4 and model.config["enc_channels"] == [4, 8]
    ckpt = torch.load(work / "fc" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["model_config"]["name"] == "forecaster"


def run_in(argv: list, ckpt) -> list:
    """The fixture's command line with another --checkpoint_dir."""
    argv = list(argv)
    argv[argv.index("--checkpoint_dir") + 1] = str(ckpt)
    return argv


def test_killed_run_resumes_to_the_same_weights(trained, tmp_path):
    """Kill a 2-epoch run during epoch 2 (after epoch 1's last.pt), resume it: the weights of an uninterrupted run."""
    _, argv = trained
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    with one_thread():
        train_forecaster.main(run_in(argv, reference) + ["--epochs", "2"])
    returncode = kill_after_first_epoch([sys.executable, SCRIPT, *run_in(argv, killed), "--epochs", "2"], killed)
    assert returncode == -9, "the run ended before it could be killed during epoch 2"
    assert [r["epoch"] for r in read_log(killed)] == [1]
    with one_thread():
        train_forecaster.main(run_in(argv, killed) + ["--epochs", "2", "--resume"])
    resumed, uninterrupted = load_ckpt(killed / "last.pt"), load_ckpt(reference / "last.pt")
    assert resumed["epoch"] == uninterrupted["epoch"] == 2
    assert all(torch.equal(resumed["model"][k], uninterrupted["model"][k]) for k in uninterrupted["model"])
    assert [r["train_loss"] for r in read_log(killed)] == [r["train_loss"] for r in read_log(reference)]


def test_torchrun_two_processes_agree_with_one(trained, tmp_path):
    """--batch_size is per process: 2 gloo processes x 1 video take the same steps as 1 process x 2."""
    _, argv = trained
    two, one = tmp_path / "two", tmp_path / "one"
    result = torchrun(SCRIPT, run_in(argv, two) + ["--epochs", "1", "--batch_size", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    with one_thread():
        train_forecaster.main(run_in(argv, one) + ["--epochs", "1"])
    log_two, log_one = read_log(two), read_log(one)
    assert len(log_two) == 1, "rank 0 alone writes the log"
    assert log_two[0]["train_loss"] == pytest.approx(log_one[0]["train_loss"], rel=1e-4)
    assert log_two[0]["val_jaccard"] == pytest.approx(log_one[0]["val_jaccard"], abs=1e-4)  # reduced over both ranks
    w2, w1 = load_ckpt(two / "last.pt")["model"], load_ckpt(one / "last.pt")["model"]
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-4


def test_flags_that_do_not_go_together_are_refused():
    with pytest.raises(SystemExit):
        train_forecaster.parse_args(["--sampling_prob", "0.5"])  # needs --feedback
    with pytest.raises(SystemExit):
        train_forecaster.parse_args(["--unlabeled_videos", "0", "--train_videos", "0"])


def test_inference_scripts(trained, tiny_root, capsys, tmp_path):
    work, _ = trained
    common = ["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(work / "unet.pt"),
              "--saved_forecaster_model_dir", str(work / "fc" / "best.pt"), "--device", "cpu", "--num_workers", "0"]
    jaccard = inference_val_with_forecaster.main(common + ["--restrict_classes", "--min_blob_size", "5",
                                                           "--visualize", str(tmp_path / "grids")])
    out = capsys.readouterr().out
    assert f"Jaccard: {jaccard:.4f}" in out.splitlines() and "IoU" in out
    assert len(list((tmp_path / "grids").glob("video_*.png"))) == 2
    sub = inference_hidden_with_forecaster.main(common + ["--output", str(tmp_path / "sub.pt")])
    saved = torch.load(tmp_path / "sub.pt", weights_only=True)
    assert saved.dtype == torch.uint8 and saved.shape == (2, 160, 240) and torch.equal(saved, sub)
    swapped = common.copy()
    swapped[swapped.index("--saved_forecaster_model_dir") + 1] = str(work / "unet.pt")
    with pytest.raises(CheckpointError, match="'forecaster'"):
        inference_val_with_forecaster.main(swapped)
    swapped = common.copy()
    swapped[swapped.index("--saved_seg_model_dir") + 1] = str(work / "fc" / "best.pt")
    with pytest.raises(CheckpointError, match="'unet'"):
        inference_hidden_with_forecaster.main(swapped + ["--output", str(tmp_path / "sub2.pt")])
