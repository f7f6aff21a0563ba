"""The one submission path: a predictor's frame-22 predictions of the hidden split, checked against the
competition's format and written atomically, never over a checkpoint or another file."""
from pathlib import Path

import torch

from data.classes import NUM_CLASSES
from data.format import HEIGHT, WIDTH
from engine import OutputPathError, atomic_save, check_not_an_input, checkpoint_file
from pipeline.evaluate import Predictor, predict, video_loader


def check_output_is_not_an_input(output: Path, args) -> None:
    """Refuse an --output that would replace something other than a submission: one of the run's checkpoints
    (--saved_*_model_dir), or any existing file that is not a submission (a tensor (N, 160, 240) uint8)."""
    for flag, values in vars(args).items():
        if not flag.startswith("saved_"):
            continue
        for value in values if isinstance(values, (list, tuple)) else [values]:  # an ensemble names several
            if value and checkpoint_file(value).resolve() == output.resolve():
                raise OutputPathError(f"--output {output} is the checkpoint passed as --{flag}: writing the submission "
                                      f"there would destroy the model; choose another --output")
    check_not_an_input(output, "--output", args)  # any other input of the command, or a dataset's file
    if not output.exists():
        return
    try:
        old = torch.load(output, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unpickling raises many types: whatever it is, it is not a submission
        old = None
    if not (isinstance(old, torch.Tensor) and old.dtype == torch.uint8 and tuple(old.shape[1:]) == (HEIGHT, WIDTH)
            and old.dim() == 3):
        raise OutputPathError(f"--output {output} exists and is not a submission: choose another --output, or move "
                              f"that file away first")


def check_submission(submission: torch.Tensor, video_ids, expected_ids) -> None:
    """The competition's format: uint8 (N, 160, 240), values 0..48, one row per hidden video in numeric order."""
    expected_ids = list(expected_ids)
    if list(video_ids) != expected_ids or any(a >= b for a, b in zip(expected_ids, expected_ids[1:])):
        raise ValueError("submission rows are not the hidden videos in increasing numeric order")
    if submission.dtype != torch.uint8:
        raise ValueError(f"submission dtype {submission.dtype}, expected torch.uint8")
    if tuple(submission.shape) != (len(expected_ids), HEIGHT, WIDTH):
        raise ValueError(f"submission shape {tuple(submission.shape)}, expected {(len(expected_ids), HEIGHT, WIDTH)}")
    if submission.numel() and int(submission.max()) >= NUM_CLASSES:
        raise ValueError(f"submission value {int(submission.max())} out of range 0..{NUM_CLASSES - 1}")


def write_submission(submission: torch.Tensor, path, video_ids, expected_ids) -> None:
    """Check, then write atomically (temporary file renamed over `path`: an old file is never half-overwritten)."""
    check_submission(submission, video_ids, expected_ids)
    atomic_save(submission, path)


def predict_hidden(predictor: Predictor, root, *, batch_size: int = 8, device="cpu", num_workers: int = 0):
    """(submission (N, H, W) uint8, the video ids of its rows, the split's video ids in numeric order):
    write_submission checks the two lists agree."""
    loader = video_loader(root, "hidden", batch_size, num_workers, device)
    ids, preds = [], []
    for batch, p in predict(predictor, loader, device, desc="hidden"):
        ids.extend(int(v) for v in batch["video_id"])
        preds.append(p)
    return torch.cat(preds), ids, loader.dataset.video_ids
