"""The two-stage pipeline: reconstructor -> U-Net inference on val (a Jaccard line, the predicted frame drawn) and
hidden (a checked submission), wrong-kind checkpoints refused with the flag named, and the U-Net fine-tuned
on the reconstructor's predicted frames."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from data.format import HEIGHT, WIDTH
from data.metric import SegmentationScore
from data.readers import VideoDataset
from SSL_convLSTM_Reconstructor.model import Reconstructor
from Unets import inference_hidden_with_reconstructor as hidden_script
from Unets import inference_val_with_reconstructor as val_script
from pipeline.evaluate import CAPTION_HEIGHT
from pipeline.predictors import reconstruct
from Unets.segment import segment
from engine import CheckpointError, atomic_save, load_model, make_checkpoint
from Unets.unet import UNet

REPO = Path(__file__).resolve().parents[1]


def save(model, path) -> Path:
    atomic_save(make_checkpoint(model, torch.optim.AdamW(model.parameters()), None, 1, 0.0, {}), path)
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """(reconstructor, U-Net) checkpoints as the train scripts write them; the reconstructor's head is scrambled
    so that its frame 22 is not frame 11 (the two-stage result must differ from the frame-11 one)."""
    d = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    recon = Reconstructor(enc_channels=[4, 8], hidden_channels=[8], downsample=8)
    with torch.no_grad():
        for p in recon.head.parameters():
            p.normal_(0, 0.5)
    return save(recon, d / "recon.pt"), save(UNet(base_channels=4), d / "unet.pt")


def expected_two_stage(root, split, recon_path, unet_path):
    """What the scripts must compute, by hand: reconstruct frame 22 of each video, segment it, in numeric order."""
    recon, unet = load_model(recon_path, Reconstructor), load_model(unet_path, UNet)
    videos = VideoDataset(root, split)
    frames = torch.stack([videos[i]["frames"] for i in range(len(videos))])  # (N, 11, 3, H, W) uint8
    images = reconstruct(recon, frames)
    return segment(unet, images), images, videos


def test_val_prints_the_jaccard_of_the_two_stages_and_draws_the_predicted_frame(tiny_root, ckpts, tmp_path, capsys):
    recon, unet = ckpts
    jaccard = val_script.main(["--root_dir", str(tiny_root), "--saved_recon_model_dir", str(recon),
                               "--saved_seg_model_dir", str(unet), "--num_workers", "0", "--batch_size", "1",
                               "--visualize", str(tmp_path / "pics"), "--num_visualize", "1"])
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"Jaccard: [01]\.\d{4}", out[0]) and out[1] == "scored 2 val videos"
    assert out[2].split() == ["id", "class", "IoU"]
    preds, images, videos = expected_two_stage(tiny_root, "val", recon, unet)
    assert not torch.equal(images, torch.stack([videos[i]["frames"][10] for i in range(len(videos))]))
    score = SegmentationScore()
    score.update(preds, torch.stack([videos[i]["masks"][0] for i in range(len(videos))]))
    assert jaccard == pytest.approx(score.compute(), abs=1e-6)
    [pic] = (tmp_path / "pics").iterdir()  # frame 11 | predicted frame 22 | prediction | truth | wrong pixels
    assert Image.open(pic).size == (5 * WIDTH + 4 * 4, HEIGHT + CAPTION_HEIGHT)


def test_hidden_writes_the_checked_two_stage_submission(tiny_root, ckpts, tmp_path):
    recon, unet = ckpts
    output = tmp_path / "submission.pt"
    hidden_script.main(["--root_dir", str(tiny_root), "--saved_recon_model_dir", str(recon),
                        "--saved_seg_model_dir", str(unet), "--num_workers", "0", "--output", str(output)])
    submission = torch.load(output, weights_only=True)
    preds, _, videos = expected_two_stage(tiny_root, "hidden", recon, unet)
    assert submission.dtype == torch.uint8 and submission.shape == (len(videos), HEIGHT, WIDTH)
    assert torch.equal(submission, preds.to(torch.uint8))


def test_wrong_kind_of_checkpoint_is_refused_with_the_flag_named(tiny_root, ckpts, tmp_path):
    recon, unet = ckpts
    common = ["--root_dir", str(tiny_root), "--num_workers", "0"]
    with pytest.raises(CheckpointError, match="--saved_recon_model_dir: .* holds a 'unet' model, expected a 'reconstructor'"):
        val_script.main(common + ["--saved_recon_model_dir", str(unet), "--saved_seg_model_dir", str(unet)])
    with pytest.raises(CheckpointError, match="--saved_seg_model_dir: .* holds a 'reconstructor' model, expected a 'unet'"):
        hidden_script.main(common + ["--saved_recon_model_dir", str(recon), "--saved_seg_model_dir", str(recon),
                                     "--output", str(tmp_path / "s.pt")])
    assert not (tmp_path / "s.pt").exists()
    result = subprocess.run([sys.executable, "inference_val_with_reconstructor.py", *common, "--saved_recon_model_dir",
                             str(tmp_path / "missing.pt"), "--saved_seg_model_dir", str(unet)],
                            cwd=REPO / "Unets", capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("error: --saved_recon_model_dir: checkpoint not found") and "Traceback" not in result.stderr
    assert "python SSL_convLSTM_Reconstructor/train_reconstructor.py --checkpoint_dir" in result.stderr  # the right script
