"""Strict readers for every split of the competition format (see data/format.py).

Three datasets cover every use in the repository:
- LabeledFrameDataset: each frame of every labeled video with its mask (segmentation training);
- VideoDataset: chosen frames (and masks, where the split has them) of each video, in numeric order
  (reconstructor and forecaster training, val scoring, hidden inference).
Frames stay uint8 until the batch is on its device; `to_float` is the one preprocessing step.
Anything malformed raises with the offending path and the fix; nothing is skipped silently.

PNG decoding is too slow to feed a GPU. scripts/convert_to_memmap.py writes a split once into uint8
arrays (MEMMAP_DIR below); SplitIndex reads them instead of the PNGs whenever they are there and hold
the split's videos (same ids, same shapes, and every file of every video still of the size and
modification time it had when converted), and says so when they are there but stale. Either way the
frames and masks come out of SplitIndex.frames/masks, identical.

The checks of one video's files are written once, in video_problems: SplitIndex raises the first
problem it finds, scripts/check_dataset.py lists them all.
"""
import hashlib
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from data.classes import NUM_CLASSES
from data.format import (
    HEIGHT, MASK_FILE, NUM_FRAMES, NUM_INPUT_FRAMES, SPLIT_FRAMES, SPLIT_HAS_MASK,
    SPLITS, TARGET_INDEX, WIDTH, frame_name, list_videos, video_number,
)


class DatasetFormatError(ValueError):
    """A file or folder of the dataset is not in the competition's format."""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG color types as PIL names the modes they decode to.
PNG_COLOR_TYPES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


def _open_frame(path):
    """The frame file opened for reading, with the path and the fix when it cannot be."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"missing frame: {path}") from None
    except OSError as e:
        raise DatasetFormatError(f"unreadable PNG {path}: {e.strerror or e}") from None


def _check_png_head(head: bytes, path) -> None:
    """The checks of check_png_header on a file's first 26 bytes."""
    if head[:8] != PNG_SIGNATURE:
        kind = "JPEG data" if head[:3] == b"\xff\xd8\xff" else "not PNG data"
        raise DatasetFormatError(f"unreadable PNG {path}: {kind}; frames must be 8-bit RGB PNGs (convert it)")
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise DatasetFormatError(f"unreadable PNG {path}: truncated header; replace the file")
    width, height = struct.unpack(">II", head[16:24])
    depth, color = head[24], head[25]
    if (width, height) != (WIDTH, HEIGHT):
        raise DatasetFormatError(f"{path}: image is {width}x{height}, expected {WIDTH}x{HEIGHT}")
    if (depth, color) != (8, 2):
        raise DatasetFormatError(f"{path}: image mode is {PNG_COLOR_TYPES.get(color, f'color type {color}')} "
                                 f"({depth}-bit), expected 8-bit RGB (convert it)")


# signature (8), IHDR length (4) and type (4), width, height (4 + 4), bit depth, color type
_PNG_HEAD = 26


# Every PNG ends with its IEND chunk (length 0, type, CRC): a file cut anywhere after its header lacks it.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def check_png_header(path) -> None:
    """Check a frame file by its content, not its name: the PNG signature, then the IHDR chunk's size, bit
    depth and color type (a 16-bit RGB PNG decodes as RGB, one level off, so the mode alone is not enough),
    then its last 12 bytes, the IEND chunk (one seek: a file truncated after its header is found)."""
    path = Path(path)
    with _open_frame(path) as f:
        _check_png_head(f.read(_PNG_HEAD), path)
        f.seek(-len(PNG_END), os.SEEK_END)
        if f.read(len(PNG_END)) != PNG_END:
            raise DatasetFormatError(f"unreadable PNG {path}: truncated (it does not end with the PNG IEND chunk); "
                                     f"replace the file")


def read_frame(path) -> np.ndarray:
    """One frame as (H, W, 3) uint8, after checking it is a 240x160 8-bit RGB PNG (check_png_header's checks,
    on the same open file: the header is read once, not opened twice)."""
    path = Path(path)
    with _open_frame(path) as f:
        _check_png_head(f.read(_PNG_HEAD), path)
        f.seek(0)
        try:
            with Image.open(f) as im:
                if im.format != "PNG" or im.mode != "RGB" or im.size != (WIDTH, HEIGHT):  # the header said otherwise
                    raise DatasetFormatError(f"{path}: decodes as {im.format} {im.mode} {im.size}, expected an 8-bit RGB PNG")
                return np.asarray(im.convert("RGB"))  # convert() forces the decode inside the try
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
        raise DatasetFormatError(f"unreadable mask {path}: {str(e).rstrip('.')}; a mask is a NumPy uint8 array "
                                 f"{(num_frames, HEIGHT, WIDTH)} saved with np.save: write it again") from None
    if mask.shape != (num_frames, HEIGHT, WIDTH):
        raise DatasetFormatError(f"{path}: mask shape {mask.shape}, expected {(num_frames, HEIGHT, WIDTH)}")
    if mask.dtype != np.uint8:
        raise DatasetFormatError(f"{path}: mask dtype {mask.dtype}, expected uint8")
    return mask


def check_mask_values(masks: np.ndarray, path) -> np.ndarray:
    """`masks` itself, after checking every value is a class id."""
    if masks.size and masks.max() >= NUM_CLASSES:
        raise DatasetFormatError(f"{path}: mask value {int(masks.max())} out of range 0..{NUM_CLASSES - 1}")
    return masks


CHECK_LEVELS = ("names", "headers", "decode")


def video_problems(path, split: str, frame_indices=None, need_mask: bool = None, level: str = "names") -> list:
    """Every problem of one video folder, as the exceptions a reader would raise (empty: none).

    level "names": the frames and mask that will be read are there (what SplitIndex checks at start);
    "headers": also no other image_N.png, each PNG's header (check_png_header) and the mask's shape, dtype
    and values; "decode": also every PNG decoded in full.
    """
    if level not in CHECK_LEVELS:
        raise ValueError(f"level must be one of {CHECK_LEVELS}, got {level!r}")
    path = Path(path)
    num_frames = SPLIT_FRAMES[split]
    frame_indices = range(num_frames) if frame_indices is None else frame_indices
    need_mask = SPLIT_HAS_MASK[split] if need_mask is None else need_mask
    needed = [frame_name(i) for i in frame_indices] + ([MASK_FILE] if need_mask else [])
    present = {p.name for p in path.iterdir()}
    missing = [n for n in needed if n not in present]
    problems = []
    if missing:
        problems.append(FileNotFoundError(
            f"{path} is missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}: "
            f"every {split} video needs {num_frames} frames" + (" and mask.npy" if need_mask else "")))
    if level == "names":
        return problems
    expected = {frame_name(i) for i in range(num_frames)}
    extra = sorted(n for n in present if n.startswith("image_") and n.endswith(".png") and n not in expected)
    if extra:
        problems.append(DatasetFormatError(f"{path} has {len(extra)} frames beyond image_{num_frames - 1}.png "
                                           f"({', '.join(extra[:4])}): a {split} video has {num_frames} frames"))
    for name in needed:
        if name in missing:
            continue
        try:
            if name == MASK_FILE:
                check_mask_values(np.asarray(open_mask(path / name)), path / name)
            elif level == "decode":
                read_frame(path / name)
            else:
                check_png_header(path / name)
        except (OSError, DatasetFormatError) as e:
            problems.append(e)
    return problems


def file_signatures(paths, split: str) -> np.ndarray:
    """(N, K, 2) int64: (size, mtime in ns) of the K files of each video folder that a conversion reads (its
    frames, then its mask on a labeled split); (-1, -1) where a file is missing. One os.stat per file."""
    names = [frame_name(i) for i in range(SPLIT_FRAMES[split])] + ([MASK_FILE] if SPLIT_HAS_MASK[split] else [])
    out = np.full((len(paths), len(names), 2), -1, dtype=np.int64)
    for v, folder in enumerate(paths):
        for k, name in enumerate(names):
            try:
                st = os.stat(Path(folder) / name)
            except FileNotFoundError:
                continue
            out[v, k] = st.st_size, st.st_mtime_ns
    return out


def dataset_fingerprint(paths, split: str, video_ids) -> str:
    """A digest of the videos' ids and their files' sizes (not times: a copied dataset keeps its
    fingerprint): what a pseudo-label store records to refuse another dataset with the same video ids."""
    h = hashlib.sha256(np.asarray(video_ids, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(file_signatures(paths, split)[..., 0]).tobytes())
    return h.hexdigest()


EXCLUDABLE_SPLITS = ("train", "val", "unlabeled")  # hidden is not: a submission needs every hidden video


def exclusion_ids(values) -> list:
    """The video numbers --exclude_videos names: video names and/or files of one name a line."""
    names = []
    for value in values or ():
        if not value.startswith("video_") and Path(value).is_file():
            names += [line.strip() for line in Path(value).read_text().splitlines() if line.strip()]
        else:
            names.append(value)
    ids = []
    for name in names:
        number = video_number(name)
        if number is None:
            raise ValueError(f"--exclude_videos {name}: not a video name (video_N) nor a file of such names")
        ids.append(number)
    return ids


def read_exclusions(values, root) -> list:
    """--exclude_videos: video names (video_1370) and/or files holding one name a line -> sorted video ids,
    after checking each is a video of ROOT/<one of EXCLUDABLE_SPLITS>: a name that matches nothing is a
    typo. Every script takes the same list and leaves out those of the splits it reads."""
    splits = EXCLUDABLE_SPLITS
    ids = exclusion_ids(values)
    if not ids:
        return []
    present = {split: {vid for vid, _ in list_videos(Path(root) / split)} for split in (*splits, "hidden")
               if (Path(root) / split).is_dir()}  # by number: video_13 and video_00013 alike
    hidden = [v for v in ids if v in present.get("hidden", ())]
    if hidden:
        raise ValueError(f"--exclude_videos video_{hidden[0]}: the hidden split takes no exclusions (a submission "
                         f"needs every hidden video); fix or replace the video instead")
    unknown = [v for v in ids if not any(v in present.get(split, ()) for split in splits)]
    if unknown:
        raise ValueError(f"--exclude_videos: {', '.join(f'video_{v}' for v in unknown)} not found in "
                         f"{' or '.join(str(Path(root) / s) for s in splits)}; exclude only videos that exist")
    return sorted(set(ids))


def exclusion_fix(names) -> str:
    """The line that leaves bad videos out, the same in check_dataset and in the trainers' check."""
    return (f"to train and score without the bad videos, pass --exclude_videos {' '.join(names)} "
            f"(or a file with one name a line)")


def add_exclude_args(parser) -> None:
    """The --exclude_videos flag of the scripts that read train, val or unlabeled videos."""
    parser.add_argument("--exclude_videos", nargs="+", default=[], metavar="NAME_OR_FILE",
                        help="train, val or unlabeled videos to leave out (e.g. video_1370), or a file with one name "
                             "a line; each is named in the output (scripts/check_dataset.py lists bad videos); the "
                             "hidden split takes none")


# ROOT/memmap/<split>_frames.npy (N, F, H, W, 3) uint8 (F: the split's frames), <split>_masks.npy
# (N, 22, H, W) uint8 for labeled splits, <split>_files.npy (N, K, 2) int64, file_signatures of the
# files converted, <split>_video_ids.npy (N,) int64 in numeric order, written last: its presence marks a
# finished conversion (scripts/convert_to_memmap.py).
MEMMAP_DIR = "memmap"


def memmap_paths(root, split: str) -> dict:
    d = Path(root) / MEMMAP_DIR
    return {"frames": d / f"{split}_frames.npy", "masks": d / f"{split}_masks.npy", "files": d / f"{split}_files.npy",
            "ids": d / f"{split}_video_ids.npy"}


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
    def open(cls, root, split: str, video_ids, video_paths, has_mask: bool):
        """The split's arrays when converted and consistent with `video_ids` and the files in `video_paths`;
        None when not converted; None with a warning (stale arrays: the files are read instead, checked as
        ever) when they do not match: other videos, or a file changed, added or deleted since (its size or
        modification time differs). Reading the files, not refusing, keeps the result right either way."""
        paths = memmap_paths(root, split)
        if not paths["ids"].is_file():
            return None
        fix = f"re-run python scripts/convert_to_memmap.py --root_dir {root} --split {split}"
        try:
            ids = np.load(paths["ids"], allow_pickle=False)
            frames = np.load(paths["frames"], mmap_mode="r", allow_pickle=False)
            masks = np.load(paths["masks"], mmap_mode="r", allow_pickle=False) if has_mask else None
            converted = np.load(paths["files"], allow_pickle=False)
        except FileNotFoundError as e:
            warnings.warn(f"{paths['ids'].parent}: stale {split} arrays, {Path(e.filename).name} is missing (a conversion "
                          f"by an older version, which recorded no file signatures); reading the files ({fix})",
                          stacklevel=3)
            return None
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
        else:
            now = file_signatures(video_paths, split)
            if converted.shape != now.shape:
                problem = f"{paths['files'].name} is {converted.shape}, expected {now.shape}"
            elif not np.array_equal(converted, now):
                v, k = np.argwhere((converted != now).any(axis=-1))[0]
                name = frame_name(k) if k < SPLIT_FRAMES[split] else MASK_FILE
                change = "deleted" if now[v, k, 0] < 0 else "added" if converted[v, k, 0] < 0 else "changed"
                problem = f"{Path(video_paths[v]) / name} was {change} since the conversion"
        if problem:
            warnings.warn(f"{paths['ids'].parent}: stale {split} arrays, {problem}; reading the files instead ({fix})",
                          stacklevel=3)
            return None
        return cls(paths, has_mask)


def check_other_splits(root, split: str, ids) -> None:
    """One video number names one video of a root: refuse a split folder that resolves to another split's (a
    symlink val -> train), and a number present in two splits (the same video trained and validated on)."""
    root, here = Path(root), (Path(root) / split).resolve()
    ids = set(ids)
    for other in SPLITS:
        folder = root / other
        if other == split or not folder.is_dir():
            continue
        if folder.resolve() == here:
            raise DatasetFormatError(f"{root / split} and {folder} are one folder ({here}): each split needs its "
                                     f"own videos; point them at separate folders")
        with os.scandir(folder) as it:
            shared = sorted(n for n in (video_number(e.name) for e in it) if n is not None and n in ids)
        if shared:
            raise DatasetFormatError(
                f"{len(shared)} video numbers are in both {root / split} and {folder} (video_{shared[0]}"
                f"{' ...' if len(shared) > 1 else ''}): one video in two splits would be trained and scored on; "
                f"remove it from one split (python scripts/check_dataset.py --root_dir {root} lists them)")


class SplitIndex:
    """The validated list of videos of one split, and reads of their frames and masks.

    Checks at construction that the split folder exists, is not empty and that every video holds
    the frames (and mask) that will be read, so a bad dataset fails at start, not hours in.
    memmap=True reads the split's converted arrays (see MEMMAP_DIR) when they hold the split's videos;
    the per-video file checks are then skipped (the conversion read every file through them).
    exclude: video ids to leave out (read_exclusions), never read nor checked; those of this split are in
    `excluded`, and `total` counts the split's videos before. The hidden split takes none: a submission
    needs every hidden video.
    """

    def __init__(self, root, split: str, frame_indices=None, need_mask: bool = None, memmap: bool = True,
                 exclude=()):
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
        self.frame_indices = list(frame_indices)
        videos = list_videos(self.root / split)
        check_other_splits(self.root, split, [vid for vid, _ in videos])
        exclude = set(exclude)
        if split == "hidden" and any(vid in exclude for vid, _ in videos):
            raise ValueError("--exclude_videos: the hidden split takes no exclusions (a submission needs every "
                             "hidden video); fix or replace the video instead")
        self.total = len(videos)
        self.excluded = [vid for vid, _ in videos if vid in exclude]
        videos = [(vid, path) for vid, path in videos if vid not in exclude]
        if not videos:
            raise ValueError(f"--exclude_videos leaves no video in {self.root / split}")
        self.video_ids = [vid for vid, _ in videos]
        self.paths = [path for _, path in videos]
        self.memmap = MemmapSplit.open(self.root, split, self.video_ids, self.paths, self.has_mask) if memmap else None
        if self.memmap is not None:
            return
        for path in self.paths:
            problems = video_problems(path, split, frame_indices, self.has_mask, level="names")
            if problems:
                hint = (f"python scripts/check_dataset.py --root_dir {self.root} lists every problem"
                        + ("" if split == "hidden" else f"; --exclude_videos {path.name} leaves the video out"))
                raise type(problems[0])(f"{problems[0]} ({hint})") from None

    def describe(self) -> str:
        """"N of M <split> videos; excluded: video_X ..." (or "N <split> videos")."""
        if not self.excluded:
            return f"{len(self)} {self.split} videos"
        return (f"{len(self)} of {self.total} {self.split} videos; excluded: "
                + " ".join(f"video_{v}" for v in self.excluded))

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


def _split_indexes(dataset):
    """The SplitIndex objects a dataset reads through, inside the usual wrappers (Subset, ConcatDataset,
    RandomFlips, crops: anything with .dataset, .datasets or .index)."""
    if isinstance(dataset, SplitIndex):
        yield dataset
        return
    for name in ("index", "dataset"):
        inner = getattr(dataset, name, None)
        if inner is not None and inner is not dataset:
            yield from _split_indexes(inner)
    for inner in getattr(dataset, "datasets", None) or ():
        yield from _split_indexes(inner)


def check_before_training(*datasets, progress: bool = True) -> None:
    """Before the first epoch, every file the datasets will read checked by header (check_dataset's checks
    without --decode: PNG signature, size, mode and end, extra frames, each mask's shape, dtype and values;
    seconds for thousands of videos), so a bad file in the last val video stops the run now, not after an
    epoch. Raises DatasetFormatError listing every problem, then the --exclude_videos line."""
    from tqdm import tqdm

    seen, indexes = set(), []
    for ds in datasets:
        for index in _split_indexes(ds) if ds is not None else ():
            if id(index) not in seen:
                seen.add(id(index))
                indexes.append(index)
    found = []
    for index in indexes:
        if index.memmap is not None:  # the conversion read every file through the same checks
            continue
        for path in tqdm(index.paths, desc=f"check {index.split} files", unit="video", leave=False,
                         disable=not progress, dynamic_ncols=True):
            found += [(path, e) for e in video_problems(path, index.split, index.frame_indices, index.has_mask,
                                                       level="headers")]
    if not found:
        return
    bad = sorted({p.name for p, _ in found}, key=lambda n: int(n.split("_")[1]))
    lines = [f"{len(found)} problems in {len(bad)} videos, found before training (the files this run reads, "
             f"checked by header):"] + [f"  {e}" for _, e in found[:50]]
    if len(found) > 50:
        lines.append(f"  ... and {len(found) - 50} more (python scripts/check_dataset.py --root_dir "
                     f"{indexes[0].root} lists them all)")
    lines.append(exclusion_fix(bad))
    raise DatasetFormatError("\n".join(lines))


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

    def __init__(self, root, split: str = "train", memmap: bool = True, exclude=()):
        if not SPLIT_HAS_MASK.get(split, False):
            raise ValueError(f"split {split!r} has no masks; labeled splits are train and val")
        self.index = SplitIndex(root, split, need_mask=True, memmap=memmap, exclude=exclude)

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
    memmap: read the split's converted arrays when present; exclude: video ids left out (see SplitIndex).
    """

    def __init__(self, root, split: str, frame_indices=range(NUM_INPUT_FRAMES), mask_indices=None,
                 memmap: bool = True, exclude=()):
        self.frame_indices = list(frame_indices)
        if mask_indices is None:
            mask_indices = [TARGET_INDEX] if SPLIT_HAS_MASK.get(split, False) else []
        self.mask_indices = list(mask_indices)
        self.index = SplitIndex(root, split, self.frame_indices, need_mask=bool(self.mask_indices), memmap=memmap,
                                exclude=exclude)
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

