"""The competition's on-disk format: the one place it is defined.

ROOT/train/video_0 .. video_999          image_0.png .. image_21.png + mask.npy
ROOT/val/video_1000 .. video_1999        the same
ROOT/unlabeled/video_2000 .. video_14999 22 frames, no mask
ROOT/hidden/video_15000 .. video_16999   image_0.png .. image_10.png only

Frames are 240 wide x 160 high, 8-bit RGB PNG. mask.npy is uint8 (22, 160, 240) with
values 0..48 (see data/classes.py). Folder numbers are not zero-padded here; a later public
release pads them (video_00000 .. video_19999): both read, videos are ordered by their number, never
as strings, and one number names one video of a root (video_5 beside video_05 is refused).
"""
import os
import re
from pathlib import Path

HEIGHT, WIDTH = 160, 240
NUM_FRAMES = 22  # frames in a full video
NUM_INPUT_FRAMES = 11  # frames 1-11 (indices 0..10) are the model's input
TARGET_INDEX = 21  # frame 22, the one to predict (0-based index)
LAST_INPUT_INDEX = NUM_INPUT_FRAMES - 1  # frame 11
NUM_FUTURE_FRAMES = NUM_FRAMES - NUM_INPUT_FRAMES  # frames 12-22, what a forecaster rolls through

SPLITS = ("train", "val", "unlabeled", "hidden")
LABELED_SPLITS = ("train", "val")
# Frames present in each split's videos, and whether it has masks.
SPLIT_FRAMES = {"train": NUM_FRAMES, "val": NUM_FRAMES, "unlabeled": NUM_FRAMES, "hidden": NUM_INPUT_FRAMES}
SPLIT_HAS_MASK = {"train": True, "val": True, "unlabeled": False, "hidden": False}
# The real dataset's numbering; the synthetic generator numbers the same way (train from 0,
# then val, unlabeled and hidden, each after the one before).
REAL_SPLIT_SIZES = {"train": 1000, "val": 1000, "unlabeled": 13000, "hidden": 2000}

MASK_FILE = "mask.npy"
_VIDEO_RE = re.compile(r"^video_(\d+)$")


def video_number(name: str):
    """The number of a video folder's name (video_12 and video_0012: 12), or None for any other name."""
    m = _VIDEO_RE.match(name)
    return int(m.group(1)) if m else None


def frame_name(i: int) -> str:
    """File name of frame index i (0-based): frame 1 is image_0.png."""
    return f"image_{i}.png"


def video_dir_name(video_id: int) -> str:
    return f"video_{video_id}"


def duplicate_ids(videos) -> list:
    """[[path, path, ...]] of the folders of `videos` ([(id, path)]) that share one number (video_5, video_05)."""
    by_id = {}
    for vid, path in videos:
        by_id.setdefault(vid, []).append(path)
    return [sorted(paths) for _, paths in sorted(by_id.items()) if len(paths) > 1]


def duplicate_message(split_dir, groups) -> str:
    shown = "; ".join(" and ".join(p.name for p in g) for g in groups[:5]) + (" ..." if len(groups) > 5 else "")
    return (f"{split_dir}: {len(groups)} video numbers name two folders ({shown}): each would be read as the same "
            f"video; rename or remove one of each")


def list_videos(split_dir, duplicates: bool = False) -> list:
    """[(video_id, path)] of the video folders in a split, in numeric order.

    Raises FileNotFoundError when the folder is missing and ValueError when it holds no video, or two folders
    of one number (video_5 and video_05; with duplicates=True they are all returned, for check_dataset).
    Other entries (a README, .DS_Store) are ignored; a folder named video_<not a number> is an error.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"split folder not found: {split_dir} (expected ROOT/<split>/video_N; "
            f"check --root_dir, or make a synthetic dataset with scripts/make_synthetic_dataset.py)"
        )
    videos = []
    with os.scandir(split_dir) as it:
        for entry in it:
            if not entry.name.startswith("video_"):
                continue
            number = video_number(entry.name)
            if number is None or not entry.is_dir():
                raise ValueError(f"unexpected entry {Path(entry.path)}: video folders are named video_<number>")
            videos.append((number, Path(entry.path)))
    if not videos:
        raise ValueError(f"empty split: no video_N folder in {split_dir}")
    videos.sort()
    groups = duplicate_ids(videos)
    if groups and not duplicates:
        raise ValueError(duplicate_message(split_dir, groups))
    return videos
