"""Strict readers for every split of the competition format (see data/format.py).

Three datasets cover every use in the repository:
- LabeledFrameDataset: each frame of every labeled video with its mask (segmentation training);
- VideoDataset: chosen frames (and masks, where the split has them) of each video, in numeric order
  (reconstructor and forecaster training, val scoring, hidden inference).
Frames stay uint8 until the batch is on its device; `to_float` is the one preprocessing step.
Anything malformed raises with the offending path and the fix; nothing is skipped silently.

PNG decoding costs ~2 ms a frame, too slow to feed a GPU. scripts/convert_to_memmap.py writes a
split once into uint8 arrays (MEMMAP_DIR below); SplitIndex reads them instead of the PNGs whenever
they are there and hold the split's videos (same ids, same shapes), and says so when they are
there but stale. Either way the frames and masks come out of SplitIndex.frames/masks, identical.
"""
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from data.classes import NUM_CLASSES
from data.format import (
    HEIGHT, MASK_FILE, NUM_FRAMES, NUM_INPUT_FRAMES, SPLIT_FRAMES, SPLIT_HAS_MASK,
    SPLITS, TARGET_INDEX, WIDTH, frame_name, list_videos,
)


class DatasetFormatError(ValueError):
    """A file or folder of the dataset is not in the competition's format."""


def read_frame(path) -> np.ndarray:
    """One frame as (H, W, 3) uint8, after checking it is a 240x160 8-bit RGB PNG."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.size != (WIDTH, HEIGHT):
                raise DatasetFormatError(f"{path}: image is {im.size[0]}x{im.size[1]}, expected {WIDTH}x{HEIGHT}")
            if im.mode != "RGB":
                raise DatasetFormatError(f"{path}: image mode is {im.mode}, expected 8-bit RGB")
            return np.asarray(im.convert("RGB"))  # convert() forces the decode inside the try
    except FileNotFoundError:
        raise FileNotFoundError(f"missing frame: {path}") from None
    except DatasetFormatError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetFormatError(f"unreadable PNG {path}: {e}") from None


def open_mask(path, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """A video's mask.npy, memory-mapped, after checking its shape and dtype (values are checked on read)."""
    path = Path(path)
    try:
        mask = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing mask: {path}") from None
    except (OSError, ValueError) as e:
        raise DatasetFormatError(f"unreadable mask {path}: {e}") from None
    if mask.shape != (num_frames, HEIGHT, WIDTH):
        raise DatasetFormatError(f"{path}: mask shape {mask.shape}, expected {(num_frames, HEIGHT, WIDTH)}")
    if mask.dtype != np.uint8:
        raise DatasetFormatError(f"{path}: mask dtype {mask.dtype}, expected uint8")
    return mask


def check_mask_values(masks: np.ndarray, path) -> np.ndarray:
    if masks.size and masks.max() >= NUM_CLASSES:
        raise DatasetFormatError(f"{path}: mask value {int(masks.max())} out of range 0..{NUM_CLASSES - 1}")
    return masks


# ROOT/memmap/<split>_frames.npy (N, F, H, W, 3) uint8 (F: the split's frames), <split>_masks.npy
# (N, 22, H, W) uint8 for labeled splits, <split>_video_ids.npy (N,) int64 in numeric order, written
# last: its presence marks a finished conversion (scripts/convert_to_memmap.py).
MEMMAP_DIR = "memmap"


def memmap_paths(root, split: str) -> dict:
    d = Path(root) / MEMMAP_DIR
    return {"frames": d / f"{split}_frames.npy", "masks": d / f"{split}_masks.npy", "ids": d / f"{split}_video_ids.npy"}


class MemmapSplit:
    """The converted arrays of one split, opened read-only on first use in each process (a pickled
    dataset sent to a worker carries the paths, not the mapped memory)."""

    def __init__(self, paths: dict, has_mask: bool):
        self.paths, self.has_mask, self._arrays = paths, has_mask, None

    def arrays(self) -> dict:
        if self._arrays is None:
            names = ("frames", "masks") if self.has_mask else ("frames",)
            self._arrays = {k: np.load(self.paths[k], mmap_mode="r", allow_pickle=False) for k in names}
        return self._arrays

    def __getstate__(self):
        return {**self.__dict__, "_arrays": None}

    @classmethod
    def open(cls, root, split: str, video_ids, has_mask: bool):
        """The split's arrays when converted and consistent with `video_ids`; None when not converted;
        None with a warning (stale arrays: the PNGs are read instead) when they do not match."""
        paths = memmap_paths(root, split)
        if not paths["ids"].is_file():
            return None
        fix = f"re-run python scripts/convert_to_memmap.py --root_dir {root} --split {split}"
        try:
            ids = np.load(paths["ids"], allow_pickle=False)
            frames = np.load(paths["frames"], mmap_mode="r", allow_pickle=False)
            masks = np.load(paths["masks"], mmap_mode="r", allow_pickle=False) if has_mask else None
        except (OSError, ValueError) as e:
            warnings.warn(f"{paths['ids'].parent}: unreadable {split} arrays ({e}); reading PNGs ({fix})", stacklevel=3)
            return None
        want = (len(video_ids), SPLIT_FRAMES[split], HEIGHT, WIDTH, 3)
        problem = None
        if ids.tolist() != list(video_ids):
            problem = f"its {len(ids)} video ids differ from the {len(video_ids)} videos in {Path(root) / split}"
        elif frames.shape != want or frames.dtype != np.uint8:
            problem = f"{paths['frames'].name} is {frames.dtype} {frames.shape}, expected uint8 {want}"
        elif masks is not None and (masks.shape != (len(video_ids), NUM_FRAMES, HEIGHT, WIDTH) or masks.dtype != np.uint8):
            problem = f"{paths['masks'].name} is {masks.dtype} {masks.shape}"
        if problem:
            warnings.warn(f"{paths['ids'].parent}: stale {split} arrays, {problem}; reading PNGs ({fix})", stacklevel=3)
            return None
        return cls(paths, has_mask)


class SplitIndex:
    """The validated list of videos of one split, and reads of their frames and masks.

    Checks at construction that the split folder exists, is not empty and that every video holds
    the frames (and mask) that will be read, so a bad dataset fails at start, not hours in.
    memmap=True reads the split's converted arrays (see MEMMAP_DIR) when they hold the split's videos;
    the per-video file checks are then skipped (the conversion read every file through them).
    """

    def __init__(self, root, split: str, frame_indices=None, need_mask: bool = None, memmap: bool = True):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: one of {SPLITS}")
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"dataset root not found: {self.root} (pass --root_dir, or make a synthetic dataset: "
                f"python scripts/make_synthetic_dataset.py --out {self.root})"
            )
        self.num_frames = SPLIT_FRAMES[split]
        frame_indices = range(self.num_frames) if frame_indices is None else frame_indices
        bad = [i for i in frame_indices if not 0 <= i < self.num_frames]
        if bad:
            raise ValueError(f"split {split!r} has frames 0..{self.num_frames - 1} only, asked for {bad}")
        self.has_mask = SPLIT_HAS_MASK[split] if need_mask is None else need_mask
        if self.has_mask and not SPLIT_HAS_MASK[split]:
            raise ValueError(f"split {split!r} has no masks")
        videos = list_videos(self.root / split)
        self.video_ids = [vid for vid, _ in videos]
        self.paths = [path for _, path in videos]
        self.memmap = MemmapSplit.open(self.root, split, self.video_ids, self.has_mask) if memmap else None
        if self.memmap is not None:
            return
        needed = [frame_name(i) for i in frame_indices] + ([MASK_FILE] if self.has_mask else [])
        for path in self.paths:
            present = {p.name for p in path.iterdir()}
            missing = [n for n in needed if n not in present]
            if missing:
                raise FileNotFoundError(
                    f"{path} is missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}: "
                    f"every {split} video needs {self.num_frames} frames" + (" and mask.npy" if self.has_mask else "")
                )

    def __len__(self) -> int:
        return len(self.paths)

    def frames(self, i: int, indices) -> np.ndarray:
        """(T, H, W, 3) uint8 frames of video i (position in numeric order)."""
        if self.memmap is not None:
            return np.ascontiguousarray(self.memmap.arrays()["frames"][i, list(indices)])  # a copy, not a view
        return np.stack([read_frame(self.paths[i] / frame_name(t)) for t in indices])

    def masks(self, i: int, indices) -> np.ndarray:
        """(T, H, W) uint8 masks of video i."""
        if self.memmap is not None:
            return check_mask_values(np.ascontiguousarray(self.memmap.arrays()["masks"][i, list(indices)]),
                                     self.memmap.paths["masks"])
        path = self.paths[i] / MASK_FILE
        return check_mask_values(np.ascontiguousarray(open_mask(path)[list(indices)]), path)


def _chw(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 array -> (..., 3, H, W) uint8 tensor."""
    return torch.from_numpy(frames).movedim(-1, -3).contiguous()


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> float in [0, 1]: the single preprocessing step, done on the device."""
    return frames.float().div_(255.0)


class LabeledFrameDataset(Dataset):
    """Every frame of every video of a labeled split with its mask: 22 pairs per video.

    Item: (frame (3, H, W) uint8, mask (H, W) uint8).
    """

    def __init__(self, root, split: str = "train", memmap: bool = True):
        if not SPLIT_HAS_MASK.get(split, False):
            raise ValueError(f"split {split!r} has no masks; labeled splits are train and val")
        self.index = SplitIndex(root, split, need_mask=True, memmap=memmap)

    def __len__(self) -> int:
        return len(self.index) * NUM_FRAMES

    def __getitem__(self, k: int):
        v, t = divmod(k, NUM_FRAMES)
        frame = self.index.frames(v, [t])[0]
        mask = self.index.masks(v, [t])[0]
        return _chw(frame), torch.from_numpy(mask)


class VideoDataset(Dataset):
    """Chosen frames of each video of a split, in numeric video order.

    frame_indices: 0-based frames to read, default frames 1-11 (0..10).
    mask_indices: 0-based masks to read; default frame 22's mask where the split has masks, else none.
    Item: {"video_id": int, "frames": (T, 3, H, W) uint8, "masks": (M, H, W) uint8 when M > 0}.
    memmap: read the split's converted arrays when present (see SplitIndex).
    """

    def __init__(self, root, split: str, frame_indices=range(NUM_INPUT_FRAMES), mask_indices=None,
                 memmap: bool = True):
        self.frame_indices = list(frame_indices)
        if mask_indices is None:
            mask_indices = [TARGET_INDEX] if SPLIT_HAS_MASK.get(split, False) else []
        self.mask_indices = list(mask_indices)
        self.index = SplitIndex(root, split, self.frame_indices, need_mask=bool(self.mask_indices), memmap=memmap)
        if self.mask_indices:
            bad = [i for i in self.mask_indices if not 0 <= i < NUM_FRAMES]
            if bad:
                raise ValueError(f"mask indices must be in 0..{NUM_FRAMES - 1}, got {bad}")

    @property
    def video_ids(self) -> list:
        return self.index.video_ids

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        item = {"video_id": self.index.video_ids[i], "frames": _chw(self.index.frames(i, self.frame_indices))}
        if self.mask_indices:
            item["masks"] = torch.from_numpy(self.index.masks(i, self.mask_indices))
        return item

