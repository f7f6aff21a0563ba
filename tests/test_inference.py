"""Inference: the val score printed as the competition computes it, a valid submission in numeric video
order, and every bad input (checkpoint, split, output path) refused clearly without losing a file."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from data.format import HEIGHT, LAST_INPUT_INDEX, WIDTH
from data.metric import SegmentationScore
from data.readers import VideoDataset
from Unets import inference_hidden_without_reconstructor as hidden_script
from Unets import inference_val_without_reconstructor as val_script
import engine
from engine import OutputPathError
from pipeline.submission import check_submission
from pipeline.evaluate import CAPTION_HEIGHT, predict, video_loader
from Unets.segment import segment
from engine import CheckpointError
from Unets.unet import UNet

REPO = Path(__file__).resolve().parents[1]


def expected_frame11_predictions(root, split, ckpt):
    """What the scripts must compute, done here by hand: segment frame 11 of each video, in numeric order."""
    model = engine.load_model(ckpt, UNet)
    videos = VideoDataset(root, split)
    preds = torch.stack([segment(model, videos[i]["frames"][LAST_INPUT_INDEX][None])[0] for i in range(len(videos))])
    return preds, videos


def test_val_prints_the_competition_score_of_frame_11_against_frame_22(tiny_root, unet_ckpt, tmp_path, capsys):
    jaccard = val_script.main(["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(unet_ckpt),
                               "--num_workers", "0", "--batch_size", "1", "--visualize", str(tmp_path / "pics"),
                               "--num_visualize", "1"])
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"Jaccard: [01]\.\d{4}", out[0]) and float(out[0].split()[1]) == round(jaccard, 4)
    assert out[1] == "scored 2 val videos"
    assert out[2].split() == ["id", "class", "IoU"] and out[3].startswith("  0  background")
    preds, videos = expected_frame11_predictions(tiny_root, "val", unet_ckpt)
    score = SegmentationScore()
    score.update(preds, torch.stack([videos[i]["masks"][0] for i in range(len(videos))]))  # frame 22's masks
    assert jaccard == pytest.approx(score.compute(), abs=1e-6)
    [pic] = (tmp_path / "pics").iterdir()  # one grid: frame 11 | prediction | truth | wrong pixels, captioned
    assert pic.name == f"video_{videos.video_ids[0]}.png"
    assert Image.open(pic).size == (4 * WIDTH + 3 * 4, HEIGHT + CAPTION_HEIGHT)


def test_hidden_writes_a_checked_submission_in_numeric_order(tiny_root, unet_ckpt, tmp_path, capsys):
    output = tmp_path / "submission.pt"
    hidden_script.main(["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(unet_ckpt),
                        "--num_workers", "0", "--output", str(output)])
    submission = torch.load(output, weights_only=True)
    preds, videos = expected_frame11_predictions(tiny_root, "hidden", unet_ckpt)
    assert submission.dtype == torch.uint8 and submission.shape == (len(videos), HEIGHT, WIDTH)
    assert torch.equal(submission, preds.to(torch.uint8))
    assert f"wrote {output}" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["submission.pt"]  # no temporary file left


def test_scripts_run_from_their_own_folder(tiny_root, unet_ckpt, tmp_path):
    result = subprocess.run([sys.executable, "inference_val_without_reconstructor.py", "--root_dir", str(tiny_root),
                             "--saved_seg_model_dir", str(unet_ckpt), "--num_workers", "0"],
                            cwd=REPO / "Unets", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"^Jaccard: [01]\.\d{4}$", result.stdout, re.M)
    result = subprocess.run([sys.executable, "inference_hidden_without_reconstructor.py", "--root_dir", str(tiny_root),
                             "--saved_seg_model_dir", str(tmp_path / "missing.pt")],
                            cwd=REPO / "Unets", capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("error: --saved_seg_model_dir: checkpoint not found")
    assert "Traceback" not in result.stderr


def test_unwritable_output_fails_before_inference(tiny_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    missing_ckpt = str(tmp_path / "never_read.pt")  # were the model loaded first, this would fail instead
    for output, message in [(blocker / "sub.pt", "cannot write --output"), (tmp_path, "is a folder"),
                            (tmp_path / "no" / "sub.pt", "does not exist")]:
        with pytest.raises(OutputPathError, match=message):
            hidden_script.main(["--root_dir", str(tiny_root), "--saved_seg_model_dir", missing_ckpt,
                                "--output", str(output)])


def test_existing_submission_is_never_half_overwritten(tiny_root, unet_ckpt, tmp_path, monkeypatch):
    output = tmp_path / "submission.pt"
    torch.save(torch.zeros(2, HEIGHT, WIDTH, dtype=torch.uint8), output)  # the previous submission
    before = output.read_bytes()

    def crash_mid_write(obj, f):
        f.write(b"half a tensor")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        hidden_script.main(["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(unet_ckpt),
                            "--num_workers", "0", "--output", str(output)])
    assert output.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["submission.pt"]


def test_output_never_replaces_a_checkpoint_or_another_file(tiny_root, unet_ckpt, tmp_path):
    model = tmp_path / "M.pt"
    model.write_bytes(unet_ckpt.read_bytes())
    notes = tmp_path / "notes.pt"
    notes.write_text("my notes")
    for output, message in [(model, "is the checkpoint passed as --saved_seg_model_dir"),
                            (notes, "exists and is not a submission")]:
        with pytest.raises(OutputPathError, match=f"--output {output} {message}.*choose another --output"):
            hidden_script.main(["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(model),
                                "--num_workers", "0", "--output", str(output)])
    assert model.read_bytes() == unet_ckpt.read_bytes() and notes.read_text() == "my notes"
    run = tmp_path / "run"  # a run folder stands for its best.pt: that file is refused as --output too
    run.mkdir()
    (run / "best.pt").write_bytes(unet_ckpt.read_bytes())
    with pytest.raises(OutputPathError, match="is the checkpoint passed as --saved_seg_model_dir"):
        hidden_script.main(["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(run), "--num_workers", "0",
                            "--output", str(run / "best.pt")])
    assert (run / "best.pt").read_bytes() == unet_ckpt.read_bytes()


def test_val_scores_without_the_excluded_videos_and_says_so(tiny_root, unet_ckpt, tmp_path, capsys):
    videos = VideoDataset(tiny_root, "val")
    first, second = videos.video_ids
    (tmp_path / "bad.txt").write_text(f"video_{first}\n")
    args = ["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(unet_ckpt), "--num_workers", "0"]
    jaccard = val_script.main(args + ["--exclude_videos", str(tmp_path / "bad.txt")])
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"scored 1 of 2 val videos; excluded: video_{first}"
    preds, _ = expected_frame11_predictions(tiny_root, "val", unet_ckpt)
    score = SegmentationScore()
    score.update(preds[1:], videos[1]["masks"])
    assert jaccard == pytest.approx(score.compute(), abs=1e-6)
    with pytest.raises(ValueError, match="--exclude_videos: video_99999 not found in .*val"):
        val_script.main(args + ["--exclude_videos", "video_99999"])
    hidden = VideoDataset(tiny_root, "hidden").video_ids[0]
    with pytest.raises(ValueError, match=f"--exclude_videos video_{hidden}: the hidden split takes no exclusions"):
        val_script.main(args + ["--exclude_videos", f"video_{hidden}"])
    with pytest.raises(ValueError, match="hidden split takes no exclusions"):
        VideoDataset(tiny_root, "hidden", exclude=[hidden])
    assert len(VideoDataset(tiny_root, "hidden", exclude=[second])) == 2  # a val video: nothing to leave out


def test_visualize_naming_a_file_is_named_before_the_model_loads(tiny_root, tmp_path):
    (tmp_path / "pics").write_text("")
    with pytest.raises(OutputPathError, match="--visualize .*pics is a file, not a folder"):
        val_script.main(["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(tmp_path / "never_read.pt"),
                         "--visualize", str(tmp_path / "pics")])


def test_bad_checkpoints_are_named(tiny_root, unet_ckpt, tmp_path):
    def run(ckpt):
        val_script.main(["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(ckpt), "--num_workers", "0"])

    with pytest.raises(CheckpointError, match="checkpoint not found: .*missing.pt"):
        run(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="is a folder without best.pt"):
        run(tmp_path)
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable checkpoint .*garbage.pt"):
        run(tmp_path / "garbage.pt")
    ckpt = torch.load(unet_ckpt, weights_only=True)
    torch.save({**ckpt, "model_config": {"name": "reconstructor", "kwargs": {}}}, tmp_path / "recon.pt")
    with pytest.raises(CheckpointError, match="holds a 'reconstructor' model, expected a 'unet' model"):
        run(tmp_path / "recon.pt")
    torch.save({**ckpt, "model_config": {"name": "unet", "kwargs": {"base_channels": 8}}}, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="weights do not fit UNet"):
        run(tmp_path / "mismatch.pt")


def test_root_without_the_split_is_named_before_the_model_loads(tiny_root, tmp_path):
    (tmp_path / "train").symlink_to(tiny_root / "train", target_is_directory=True)
    missing_ckpt = str(tmp_path / "never_read.pt")
    with pytest.raises(FileNotFoundError, match="split folder not found: .*val"):
        val_script.main(["--root_dir", str(tmp_path), "--saved_seg_model_dir", missing_ckpt])
    with pytest.raises(FileNotFoundError, match="split folder not found: .*hidden"):
        hidden_script.main(["--root_dir", str(tmp_path), "--saved_seg_model_dir", missing_ckpt,
                            "--output", str(tmp_path / "sub.pt")])
    assert not (tmp_path / "sub.pt").exists()


def test_submission_checks():
    good = torch.zeros(2, HEIGHT, WIDTH, dtype=torch.uint8)
    check_submission(good, [5, 9], [5, 9])
    with pytest.raises(ValueError, match="numeric order"):
        check_submission(good, [9, 5], [5, 9])
    with pytest.raises(ValueError, match="dtype"):
        check_submission(good.long(), [5, 9], [5, 9])
    with pytest.raises(ValueError, match="shape"):
        check_submission(good[:, :10], [5, 9], [5, 9])
    with pytest.raises(ValueError, match="out of range"):
        check_submission(good + 49, [5, 9], [5, 9])


def test_predictor_contract_is_checked(tiny_root):
    loader = video_loader(tiny_root, "hidden", batch_size=2)
    with pytest.raises(ValueError, match=r"predictor returned shape \(2, 10, 10\)"):
        next(predict(lambda frames: torch.zeros(frames.shape[0], 10, 10), loader, "cpu"))
    seen = []
    batch, preds = next(predict(lambda f: seen.append(f.shape) or torch.zeros(f.shape[0], HEIGHT, WIDTH), loader, "cpu"))
    assert seen == [(2, 11, 3, HEIGHT, WIDTH)] and preds.dtype == torch.uint8  # (B, 11, 3, H, W) in, (B, H, W) out


class CropAware(torch.nn.Module):
    """A stand-in U-Net whose answer depends on what it is shown, like a GroupNorm network trained on
    crops: bright pixels are a red cube in a whole frame, a red sphere in a crop. Records the crops."""

    def __init__(self, crop_size: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # a parameter: segment finds the device from it
        self.config = {"coords": True, "crop_size": crop_size}
        self.seen = []

    def forward(self, x, top=None):
        from data.classes import class_id
        B, _, H, W = x.shape
        self.seen.append((H, W, None if top is None else top.tolist()))
        logits = torch.zeros(B, 49, H, W)
        logits[:, 0] = 1.0
        bright = x[:, 0] > 0.5
        cls = class_id("cube", "metal", "red") if (H, W) == (HEIGHT, WIDTH) else class_id("sphere", "metal", "red")
        logits[:, cls][bright] = 5.0
        return logits


def test_each_object_is_segmented_again_in_a_crop_centred_on_it():
    from data.classes import class_id
    frames = torch.zeros(2, 3, HEIGHT, WIDTH, dtype=torch.uint8)
    frames[0, :, 100:110, 30:50] = 255  # an object centred on row 104.5, column 39.5
    frames[0, :, 2:6, 200:204] = 255  # a 16-pixel object near the top edge: its crop is clipped at row 0
    frames[0, :, 150, 10:13] = 255  # 3 pixels: too small to be refined
    model = CropAware(crop_size=64)
    pred = segment(model, frames)
    sphere, cube = class_id("sphere", "metal", "red"), class_id("cube", "metal", "red")
    assert (pred[0, 100:110, 30:50] == sphere).all() and (pred[0, 2:6, 200:204] == sphere).all()
    assert (pred[0, 150, 10:13] == cube).all()  # the whole frame's answer
    assert (pred[1] == 0).all() and (pred[0][frames[0, 0] == 0] == 0).all()
    crops = [s for s in model.seen if s[:2] == (64, 64)]
    assert len(crops) == 1 and sorted(crops[0][2]) == [0, 72]  # tops: 104 - 32 (rounded centroid), clipped 0
    assert (segment(model, frames, refine=False)[0, 100:110, 30:50] == cube).all()  # the whole frame's answer
    model = CropAware(crop_size=0)  # trained on whole frames: nothing to re-segment
    assert (segment(model, frames)[0, 100:110, 30:50] == cube).all() and len(model.seen) == 1


def test_a_bad_file_read_in_a_loader_worker_is_one_line(tiny_root, unet_ckpt, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    bad = sorted((root / "val").iterdir())[0] / "image_10.png"
    bad.write_bytes(b"garbage")
    result = subprocess.run([sys.executable, "Unets/inference_val_without_reconstructor.py", "--root_dir", str(root),
                             "--saved_seg_model_dir", str(unet_ckpt), "--num_workers", "2"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"error: unreadable PNG {bad}: not PNG data; frames must be 8-bit RGB PNGs (convert it)"
    assert "Traceback" not in result.stderr and "DataLoader worker" not in result.stderr


def test_a_run_folder_stands_for_its_best_pt(tiny_root, unet_ckpt):
    """--saved_seg_model_dir takes the run's folder as well as the file: the folder's best.pt is loaded."""
    args = ["--root_dir", str(tiny_root), "--num_workers", "0"]
    by_file = val_script.main(args + ["--saved_seg_model_dir", str(unet_ckpt)])
    by_folder = val_script.main(args + ["--saved_seg_model_dir", str(unet_ckpt.parent)])
    assert by_file == by_folder
