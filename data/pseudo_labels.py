"""Pseudo-label stores: the U-Net's masks of every video of a split, kept on disk for the mask-space models.

    DIR/<split>/masks.npy   uint8 (N, T, H, W), memory-mapped: row i = video ids[i], T = the frames labelled
    DIR/<split>/ids.npy     int64 (N,), the split's video ids in numeric order
    DIR/<split>/done.npy    bool (N,), rows written so far (rewritten atomically after each batch)
    DIR/<split>/meta.json   split, frames, the segmenter's checkpoint (path and sha256), the dataset's
                            fingerprint (data/readers.py: dataset_fingerprint, of the videos labelled)

Frames labelled: all 22 of an unlabeled video (training targets of SimVP and the dynamics); frames 1-11 of
a val or hidden video (its inputs: frame 22 of val is scored against the true mask). The train
split needs no store: the trainers read its true masks (TrueMaskVideos).
A store is filled by `label_split` (scripts/make_pseudo_labels.py), batch by batch; re-running
continues with the rows not done. A store made by another segmenter, for other videos or from another
dataset with the same video ids is refused (the fix is in the message) rather than mixed, and so is
one whose files are damaged (a truncated masks.npy is never grown back with zeros).
"""
import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from engine.io import atomic_write
from data.format import HEIGHT, NUM_FRAMES, NUM_INPUT_FRAMES, WIDTH, list_videos
from data.readers import DatasetFormatError, SplitIndex, _chw, dataset_fingerprint

# The frames a store holds, per split (see the module docstring).
STORE_FRAMES = {"unlabeled": NUM_FRAMES, "val": NUM_INPUT_FRAMES, "hidden": NUM_INPUT_FRAMES}
MASKS, IDS, DONE, META = "masks.npy", "ids.npy", "done.npy", "meta.json"


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def store_dir(out_dir, split: str) -> Path:
    return Path(out_dir) / split


def _remake(d: Path, out_dir, split: str) -> str:
    return (f"delete {d} and make the store again: python scripts/make_pseudo_labels.py --split {split} "
            f"--out {out_dir} --root_dir ROOT --saved_seg_model_dir UNET.pt")


def _read(path: Path, fix: str, **kwargs):
    """A store file (meta.json, or an array: np.load kwargs), with its path and the fix when it is damaged."""
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return np.load(path, allow_pickle=False, **kwargs)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: {fix}") from None
    except (OSError, ValueError) as e:  # truncated, pickled, not JSON
        raise DatasetFormatError(f"{path} is damaged ({e}): {fix}") from None


def _check_store(d: Path, out_dir, split: str, meta: dict, ids: np.ndarray, done: np.ndarray, masks) -> None:
    fix = _remake(d, out_dir, split)
    want = (len(ids), meta.get("frames"), HEIGHT, WIDTH)
    if masks.shape != want or masks.dtype != np.uint8 or done.shape != ids.shape:
        raise DatasetFormatError(f"{d / MASKS} is {masks.dtype} {masks.shape} with {done.shape[0]} rows marked, "
                                 f"expected uint8 {want}: {fix}")


def _check_dataset(d: Path, out_dir, split: str, meta: dict, root, ids) -> None:
    """The store was made from the videos of ROOT/split as they are now (same ids and file sizes)."""
    folders = dict(list_videos(Path(root) / split))  # by number: unpadded and zero-padded names alike
    paths = [folders.get(int(v), Path(root) / split / f"video_{int(v)}") for v in ids]
    if meta.get("dataset") != dataset_fingerprint(paths, split, ids):
        made = meta.get("root", "an unrecorded dataset") if "dataset" in meta else "a version that recorded no dataset"
        raise ValueError(f"{d} holds pseudo-labels of another dataset than {Path(root) / split} (made from {made}, "
                         f"or its videos changed since): {_remake(d, out_dir, split)}")


def open_store(out_dir, split: str, root, require_complete: bool = True):
    """(masks memmap (N, T, H, W) uint8 read-only, ids (N,), meta) of a finished store of ROOT/split, with the
    fix when it is not one: missing, unfinished, damaged, or made from another dataset."""
    d = store_dir(out_dir, split)
    if not (d / META).is_file():
        raise FileNotFoundError(
            f"no pseudo-labels for {split} in {d}: make them with python scripts/make_pseudo_labels.py "
            f"--split {split} --out {out_dir} --root_dir ROOT --saved_seg_model_dir UNET.pt"
        )
    fix = _remake(d, out_dir, split)
    meta = _read(d / META, fix)
    ids, done = _read(d / IDS, fix), _read(d / DONE, fix)
    masks = _read(d / MASKS, fix, mmap_mode="r")
    _check_store(d, out_dir, split, meta, ids, done, masks)
    if require_complete and not done.all():
        raise ValueError(f"{d}: pseudo-labels are unfinished ({int(done.sum())}/{len(done)} videos): re-run "
                         f"scripts/make_pseudo_labels.py with the same arguments to finish them")
    _check_dataset(d, out_dir, split, meta, root, ids)
    return masks, ids, meta


def store_finished(out_dir, split: str) -> bool:
    """Whether DIR/<split> is a set-up store whose every row is done (damaged files raise with the fix)."""
    d = store_dir(out_dir, split)
    return (d / META).is_file() and bool(_read(d / DONE, _remake(d, out_dir, split)).all())


def per_video_name(per_video) -> str:
    """How a store's per-video step is recorded in its meta.json: its `describe` (its name, version and settings),
    else its name, or None."""
    if per_video is None:
        return None
    return getattr(per_video, "describe", None) or getattr(per_video, "__name__", type(per_video).__name__)


def check_per_video(d: Path, meta: dict, per_video: str) -> None:
    """A store's per-video step (meta.json, per_video_name) is `per_video`, else the fix: one place for the
    resume (label_split), the readers (StoredMaskVideos) and the val inputs (pipeline/val_inputs.py)."""
    if meta.get("per_video") != per_video:
        raise ValueError(f"{d} holds pseudo-labels made with per-video step {meta.get('per_video')}, not {per_video}; "
                         f"a store of another per-video vote is not mixed in: delete {d} and make it again "
                         f"(scripts/make_pseudo_labels.py), or choose another --out")


def label_split(segment_fn: Callable[[torch.Tensor], torch.Tensor], root, split: str, out_dir, *,
                segmenter: str, batch_size: int = 8, num_videos: int = 0, desc: str = None, exclude=(),
                per_video: Callable[[torch.Tensor], torch.Tensor] = None) -> Path:
    """Segment the frames STORE_FRAMES[split] of every video of `split` into DIR/<split>, resumably.

    segment_fn: (N, 3, H, W) uint8 frames -> (N, H, W) class ids (any device). segmenter: the
    checkpoint file that segment_fn comes from (its sha256 is recorded and checked on resume). per_video:
    a step over each video's masks (B, T, H, W) -> (B, T, H, W) after segment_fn (Unets/postprocess.py:
    vote_per_video), recorded by name and checked on resume like the segmenter.
    num_videos: the first N videos only (0: all). exclude: video ids left out (SplitIndex). Returns the
    store's folder.
    """
    if split not in STORE_FRAMES:
        raise ValueError(f"--split {split}: pseudo-labels are for {sorted(STORE_FRAMES)}; the train split's "
                         f"true masks are read directly by the trainers")
    T = STORE_FRAMES[split]
    index = SplitIndex(root, split, frame_indices=range(T), need_mask=False, exclude=exclude)
    n = len(index) if not num_videos else min(num_videos, len(index))
    ids = np.asarray(index.video_ids[:n], dtype=np.int64)
    meta = {"split": split, "frames": T, "segmenter": str(Path(segmenter).resolve()),
            "segmenter_sha256": file_sha256(segmenter), "root": str(Path(root).resolve()),
            "dataset": dataset_fingerprint(index.paths[:n], split, ids), "per_video": per_video_name(per_video)}
    d = store_dir(out_dir, split)
    if (d / META).is_file():  # resume: same videos, same segmenter, same dataset, undamaged
        fix = _remake(d, out_dir, split)
        old, old_ids, done = _read(d / META, fix), _read(d / IDS, fix), _read(d / DONE, fix)
        if old.get("segmenter_sha256") != meta["segmenter_sha256"] or old.get("frames") != T:
            raise ValueError(f"{d} holds pseudo-labels of another segmenter ({old.get('segmenter')}): delete {d} "
                             f"or choose another --out")
        check_per_video(d, old, meta["per_video"])
        if not np.array_equal(old_ids, ids):
            raise ValueError(f"{d} holds pseudo-labels of other videos ({len(old_ids)} from "
                             f"{old_ids[:1].tolist()}): delete {d} or choose another --out")
        _check_dataset(d, out_dir, split, old, root, ids)
        # checked read-only first: mode r+ would grow a truncated file with zeros, rows already marked done
        _check_store(d, out_dir, split, old, old_ids, done, _read(d / MASKS, fix, mmap_mode="r"))
        masks = np.load(d / MASKS, mmap_mode="r+")
    else:
        d.mkdir(parents=True, exist_ok=True)
        masks = np.lib.format.open_memmap(d / MASKS, mode="w+", dtype=np.uint8, shape=(n, T, HEIGHT, WIDTH))
        done = np.zeros(n, dtype=bool)
        np.save(d / IDS, ids)
        atomic_write(d / DONE, lambda f: np.save(f, done))
        (d / META).write_text(json.dumps(meta, indent=1))  # written last: its presence means the store is set up
    todo = np.flatnonzero(~done)
    bar = tqdm(total=n, initial=n - len(todo), desc=desc or f"pseudo-labels {split}", unit="video", dynamic_ncols=True)
    for start in range(0, len(todo), batch_size):
        rows = todo[start:start + batch_size]
        frames = torch.stack([_chw(index.frames(int(i), range(T))) for i in rows])  # (B, T, 3, H, W) uint8
        pred = segment_fn(frames.flatten(0, 1)).reshape(len(rows), T, HEIGHT, WIDTH)  # (B*T, H, W) -> (B, T, H, W)
        if per_video is not None:
            pred = per_video(pred)
        masks[rows] = pred.to("cpu", torch.uint8).numpy()
        masks.flush()
        done[rows] = True
        atomic_write(d / DONE, lambda f: np.save(f, done))  # after the masks are on disk: a crash never marks an unwritten row
        bar.update(len(rows))
    bar.close()
    del masks
    return d


class StoredMaskVideos(Dataset):
    """Videos of a finished store of ROOT/split: item {"video_id", "masks": (T, H, W) uint8}. exclude: video ids
    left out (a store made before a video was found bad serves without it); num_videos: the first N kept.
    per_video: the per-video step the store must have been made with (label_split's record of it), if any."""

    def __init__(self, out_dir, split: str, root, num_videos: int = 0, exclude=(), per_video: str = None):
        self.masks, self.ids, self.meta = open_store(out_dir, split, root)
        if per_video is not None:
            check_per_video(store_dir(out_dir, split), self.meta, per_video)
        exclude = set(exclude)
        self.rows = [r for r, v in enumerate(self.ids) if int(v) not in exclude]
        self.rows = self.rows[:num_videos] if num_videos else self.rows
        self.video_ids = [int(self.ids[r]) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        # np.array copies the row out of the read-only memmap
        r = self.rows[i]
        return {"video_id": int(self.ids[r]), "masks": torch.from_numpy(np.array(self.masks[r]))}


class TrueMaskVideos(Dataset):
    """The true masks of all 22 frames of a labeled split's videos: item {"video_id", "masks": (22, H, W) uint8}."""

    def __init__(self, root, split: str = "train", num_videos: int = 0, exclude=()):
        self.index = SplitIndex(root, split, frame_indices=[], need_mask=True, exclude=exclude)
        self.n = len(self.index) if not num_videos else min(num_videos, len(self.index))
        self.video_ids = list(self.index.video_ids[:self.n])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"video_id": self.index.video_ids[i], "masks": torch.from_numpy(self.index.masks(i, range(NUM_FRAMES)))}
