"""scripts/check_dataset.py lists every problem of every split in one pass, with a summary and exit status 1,
and names the --exclude_videos flag that leaves the bad videos out."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from data.format import HEIGHT, NUM_FRAMES, WIDTH

REPO = Path(__file__).resolve().parents[1]


def check(root, *extra):
    return subprocess.run([sys.executable, "scripts/check_dataset.py", "--root_dir", str(root), *extra],
                          cwd=REPO, capture_output=True, text=True)


def test_a_clean_dataset_passes(tiny_root):
    result = check(tiny_root, "--decode")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no problem found" in result.stdout and "val       2 videos, 0 problems in 0 videos" in result.stdout


def test_every_injected_fault_is_listed(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    train = sorted((root / "train").iterdir())
    val = sorted((root / "val").iterdir())
    hidden = sorted((root / "hidden").iterdir())
    (train[0] / "image_4.png").unlink()  # missing frame
    Image.fromarray(np.zeros((HEIGHT, WIDTH + 1, 3), np.uint8)).save(train[0] / "image_9.png")  # wrong size
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(val[1] / "image_22.png")  # one frame too many
    np.save(val[0] / "mask.npy", np.full((NUM_FRAMES, HEIGHT, WIDTH), 200, np.uint8))  # values out of range
    np.save(val[1] / "mask.npy", np.zeros((NUM_FRAMES - 1, HEIGHT, WIDTH), np.uint8))  # 21 masks for 22 frames
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(hidden[0] / "image_3.png", format="JPEG")
    result = check(root)
    assert result.returncode == 1
    out = result.stdout + result.stderr
    for expected in [f"{train[0]} is missing image_4.png", f"{train[0] / 'image_9.png'}: image is 241x160",
                     f"{val[1]} has 1 frames beyond image_21.png", f"{val[0] / 'mask.npy'}: mask value 200 out of range",
                     f"{val[1] / 'mask.npy'}: mask shape (21, 160, 240)", f"{hidden[0] / 'image_3.png'}: JPEG data"]:
        assert expected in out, expected
    assert "train     2 videos, 2 problems in 1 videos" in out and "hidden    2 videos, 1 problems in 1 videos" in out
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: 6 problems in") and "Traceback" not in result.stderr
    assert f"--exclude_videos {train[0].name} {val[0].name} {val[1].name}" in last
    assert "hidden problems must be fixed" in last


def test_a_missing_split_is_a_problem_not_a_stop(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    shutil.rmtree(root / "unlabeled")
    (sorted((root / "hidden").iterdir())[1] / "image_0.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # truncated
    result = check(root, "--decode")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert f"split folder not found: {root / 'unlabeled'}" in out and "truncated header" in out


def test_duplicate_numbers_cross_split_copies_and_cut_pngs_are_listed(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    val = sorted((root / "val").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    train = sorted((root / "train").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    number = int(val[0].name.split("_")[1])
    shutil.copytree(val[0], root / "val" / f"video_0{number}")  # video_N beside video_0N: both read as N
    shutil.copytree(train[0], root / "val" / "video_90")  # a train video in val under another number
    frame = val[1] / "image_5.png"
    frame.write_bytes(frame.read_bytes()[:300])  # cut after its header: the header alone looks fine
    result = check(root)
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert f"video numbers name two folders (video_0{number} and {val[0].name})" in out
    assert f"leakage: {train[0]} and {root / 'val' / 'video_90'} have the same frame 1" in out
    assert f"unreadable PNG {frame}: truncated" in out
    assert "--exclude_videos" in result.stderr.splitlines()[-1] and "video_90" in result.stderr.splitlines()[-1]


def test_a_misnamed_video_folder_is_noted(tiny_root, tmp_path):
    """The readers skip a folder not named video_<number> (by design: a README, a .git): check_dataset names it."""
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    first = sorted((root / "train").iterdir())[0]
    first.rename(root / "train" / "vid2")
    result = check(root, "--split", "train")
    assert f"note: {root / 'train'} holds 1 folders not named video_<number>, which no script reads: vid2" in (
        result.stdout + result.stderr)
