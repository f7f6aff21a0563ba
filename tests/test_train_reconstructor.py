"""SSL_convLSTM_Reconstructor/train_reconstructor.py on the shared machinery: the loss falls, checkpoints describe
themselves, a killed run resumes to the same weights, torchrun with 2 CPU processes matches 1 process;
and the reconstructor's downsample option (the CPU recipe) keeps a full-resolution output."""
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data.readers import VideoDataset, to_float
from SSL_convLSTM_Reconstructor import train_reconstructor as tr
from SSL_convLSTM_Reconstructor.model import Reconstructor
from conftest import ONE_THREAD, kill_after_first_epoch, load_ckpt, one_thread, read_log, torchrun
from engine import CHECKPOINT_KEYS, load_model

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "SSL_convLSTM_Reconstructor" / "train_reconstructor.py"
def flags(root, ckpt, *extra) -> list:
    """A tiny recipe: 4 training videos (unlabeled + train frames), batch 2, network at 1/8 resolution."""
    return ["--root_dir", str(root), "--checkpoint_dir", str(ckpt), "--enc_channels", "4", "8", "--hidden_channels",
            "8", "--downsample", "8", "--batch_size", "2", "--use_train_frames", "--num_workers", "0",
            "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def two_epochs(tiny_root, tmp_path_factory):
    """A finished 2-epoch run in this process: (checkpoint dir, printed text)."""
    ckpt = tmp_path_factory.mktemp("recon") / "ckpt"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), one_thread():
        tr.main(flags(tiny_root, ckpt, "--epochs", "2"))
    return ckpt, out.getvalue()


def test_a_few_steps_lower_the_loss_through_the_scripts_loss(tiny_root):
    """reconstruction_loss (frame 22 + frames 12-21, L1 + SSIM + gradient terms), as compute_loss calls it, on
    real frames (cropped to 48 x 64: cheap); the head is scrambled so there is a loss to lower."""
    args = tr.parse_args(flags(tiny_root, "unused", "--ssim_weight", "0.2", "--gradient_weight", "0.5"))
    torch.manual_seed(0)
    model = tr.build_model(args)
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(0, 0.3)
    videos = VideoDataset(tiny_root, "unlabeled", frame_indices=range(22), mask_indices=[])
    frames = to_float(torch.stack([videos[i]["frames"][..., 40:88, 80:144] for i in range(len(videos))]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with one_thread():
        first = tr.reconstruction_loss(model, frames, args).item()
        for _ in range(10):
            loss = tr.reconstruction_loss(model, frames, args)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            last = tr.reconstruction_loss(model, frames, args).item()
    assert last < 0.7 * first, f"loss {first:.4f} -> {last:.4f} in 10 steps"


def test_run_writes_self_describing_checkpoints_and_psnr_beside_the_copy(two_epochs):
    ckpt, printed = two_epochs
    assert "git commit:" in printed and "unlabeled + train" in printed
    assert "val frame 22: PSNR" in printed and "frame 11 copied: PSNR" in printed
    assert sorted(p.name for p in ckpt.iterdir()) == ["best.pt", "last.pt", "log.jsonl"]
    last = load_ckpt(ckpt / "last.pt")
    assert tuple(last) == CHECKPOINT_KEYS and last["model_config"]["name"] == "reconstructor"
    assert last["model_config"]["kwargs"]["downsample"] == 8 and last["model_config"]["kwargs"]["future_steps"] == 11
    log = read_log(ckpt)
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(set(r) >= {"train_loss", "val_psnr", "val_ssim", "copy11_psnr", "copy11_ssim", "samples_per_s"} for r in log)
    assert log[0]["copy11_psnr"] == log[1]["copy11_psnr"] > 10 and 0 < log[0]["val_ssim"] <= 1
    assert load_ckpt(ckpt / "best.pt")["best_score"] == pytest.approx(max(r["val_psnr"] for r in log), abs=1e-5)
    model = load_model(ckpt / "best.pt", Reconstructor)  # the path alone rebuilds it
    assert model.config["enc_channels"] == [4, 8]


def test_refusals_and_cli_errors(two_epochs, tiny_root, tmp_path):
    ckpt, _ = two_epochs
    with pytest.raises(ValueError, match="--loss was l1 in the run, now mse"):
        tr.main(flags(tiny_root, ckpt, "--epochs", "2", "--resume", "--loss", "mse"))
    result = subprocess.run([sys.executable, "train_reconstructor.py", "--root_dir", str(tmp_path / "nowhere")],
                            cwd=SCRIPT.parent, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("error: dataset root not found")


def test_killed_run_resumes_to_the_same_weights(two_epochs, tiny_root, tmp_path):
    reference, killed = two_epochs[0], tmp_path / "killed"
    returncode = kill_after_first_epoch([sys.executable, SCRIPT, *flags(tiny_root, killed, "--epochs", "2")], killed)
    assert returncode == -9, "the run ended before it could be killed during epoch 2"
    subprocess.run([sys.executable, str(SCRIPT), *flags(tiny_root, killed, "--epochs", "2", "--resume")],
                   check=True, capture_output=True, env=ONE_THREAD)
    resumed, uninterrupted = load_ckpt(killed / "last.pt"), load_ckpt(reference / "last.pt")
    assert resumed["epoch"] == 2
    assert all(torch.equal(resumed["model"][k], uninterrupted["model"][k]) for k in uninterrupted["model"])
    assert [r["epoch"] for r in read_log(killed)] == [1, 2]


def test_torchrun_two_processes_agree_with_one(tiny_root, tmp_path):
    """--batch_size is per process: 2 gloo processes x 1 video take the same steps as 1 process x 2."""
    two, one = tmp_path / "two", tmp_path / "one"
    result = torchrun(SCRIPT, [*flags(tiny_root, two, "--epochs", "1"), "--batch_size", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    with one_thread(), contextlib.redirect_stdout(io.StringIO()):
        tr.main(flags(tiny_root, one, "--epochs", "1"))
    log_two, log_one = read_log(two), read_log(one)
    assert len(log_two) == 1, "rank 0 alone writes the log"
    assert log_two[0]["train_loss"] == pytest.approx(log_one[0]["train_loss"], rel=1e-4)
    assert log_two[0]["val_psnr"] == pytest.approx(log_one[0]["val_psnr"], abs=1e-3)  # reduced over both ranks
    w2, w1 = load_ckpt(two / "last.pt")["model"], load_ckpt(one / "last.pt")["model"]
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-4


def test_downsample_keeps_full_resolution_and_starts_as_the_copy():
    torch.manual_seed(0)
    model = Reconstructor(enc_channels=[4, 8], hidden_channels=[8], downsample=4).eval()
    frames = torch.rand(2, 11, 3, 36, 52)
    with torch.no_grad():
        out = model(frames, num_future=3)
        assert out.shape == (2, 3, 3, 36, 52) and torch.equal(out, frames[:, -1:].expand_as(out))
        for p in model.head.parameters():
            p.normal_()
        out = model(frames, num_future=3)
    assert out.min() >= 0 and out.max() <= 1 and (out - frames[:, -1:]).abs().max() > 0.1


@pytest.mark.parametrize("downsample", [1, 4])
def test_extrapolated_reference_starts_as_the_reference_and_is_required(downsample):
    torch.manual_seed(0)
    model = Reconstructor(enc_channels=[4, 8], hidden_channels=[8], downsample=downsample,
                          reference="extrapolated", motion={"damping": 0.5}).eval()
    frames, ref = torch.rand(2, 11, 3, 36, 52), torch.rand(2, 3, 3, 36, 52)
    with torch.no_grad():
        assert torch.equal(model(frames, num_future=3, ref=ref), ref)  # zero change at the start
        assert model(frames, num_future=3, ref=ref, low_res=True).shape == (2, 3, 3, 36 // downsample, 52 // downsample)
    with pytest.raises(ValueError, match="pass ref"):
        model(frames)
    with pytest.raises(ValueError, match=r"ref must be \(B, num_future"):
        model(frames, num_future=2, ref=ref)
    with pytest.raises(ValueError, match="ref is for reconstructors"):
        Reconstructor(enc_channels=[4, 8], hidden_channels=[8])(frames, ref=ref[:, :1])
    with pytest.raises(ValueError, match="reference 'flow' must be one of"):
        Reconstructor(reference="flow")
    assert model.config["reference"] == "extrapolated" and model.config["motion"]["damping"] == 0.5


def test_extrapolated_reference_trains_from_pseudo_labels_and_runs_two_stages(tiny_root, tmp_path, capsys):
    """--reference extrapolated end to end: pseudo-labels of the unlabeled videos, the val inputs segmented,
    a trained checkpoint that records its reference, and the two-stage scripts making the same frames."""
    from data.pseudo_labels import label_split
    from Unets import inference_hidden_with_reconstructor, inference_val_with_reconstructor
    from Unets.postprocess import vote_per_video
    from Unets.segment import segment
    from engine import atomic_save, make_checkpoint
    from Unets.unet import UNet
    torch.manual_seed(0)
    unet = UNet(base_channels=2)
    atomic_save(make_checkpoint(unet, torch.optim.AdamW(unet.parameters()), None, 0, 0.0, {}), tmp_path / "unet.pt")
    label_split(lambda f: segment(unet, f), tiny_root, "unlabeled", tmp_path / "pl", segmenter=tmp_path / "unet.pt",
                per_video=vote_per_video)
    extra = ["--reference", "extrapolated", "--pseudo_labels", str(tmp_path / "pl"), "--saved_seg_model_dir",
             str(tmp_path / "unet.pt"), "--epochs", "1"]
    with one_thread():
        tr.main(flags(tiny_root, tmp_path / "r", *extra))
    assert (tmp_path / "pl" / "val" / "done.npy").exists()  # the val inputs, segmented once
    model = load_model(tmp_path / "r" / "best.pt", Reconstructor)
    assert model.config["reference"] == "extrapolated"
    assert model.config["motion"] == torch.load(tmp_path / "r" / "best.pt", weights_only=True)["args"]["motion"]  # the fitted one
    assert "val_psnr" in read_log(tmp_path / "r")[0]
    two = ["--root_dir", str(tiny_root), "--saved_recon_model_dir", str(tmp_path / "r" / "best.pt"),
           "--saved_seg_model_dir", str(tmp_path / "unet.pt"), "--num_workers", "0", "--device", "cpu"]
    with one_thread():
        inference_val_with_reconstructor.main(two)
        inference_hidden_with_reconstructor.main(two + ["--output", str(tmp_path / "s.pt")])
    assert "Jaccard: " in capsys.readouterr().out
    assert torch.load(tmp_path / "s.pt", weights_only=True).dtype == torch.uint8
    with pytest.raises(SystemExit):  # the flags go together
        tr.parse_args(["--reference", "extrapolated"])
