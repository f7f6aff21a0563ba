"""The one evaluate path: a predictor's frame-22 predictions of a labeled split, scored with the competition's
metric (and a few drawn as PNG grids).

A predictor maps a batch of input videos to frame 22's class ids:
    predictor(frames) -> preds,  frames (B, 11, 3, H, W) uint8 on the device -> preds (B, H, W) int64
A predictor that makes an image of frame 22 on the way (the reconstructor's two stages) returns
(preds, images (B, 3, H, W) uint8) instead, and --visualize draws the image beside the masks.
"""
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader
from tqdm import tqdm

from data.classes import colorize
from data.format import HEIGHT, LAST_INPUT_INDEX, NUM_INPUT_FRAMES, WIDTH
from data.metric import SegmentationScore
from data.readers import VideoDataset
from engine import make_folder

Predictor = Callable[[torch.Tensor], torch.Tensor]


def video_loader(root, split: str, batch_size: int, num_workers: int = 0, device=torch.device("cpu"),
                 frame_indices=range(NUM_INPUT_FRAMES), mask_indices=None, exclude=()) -> DataLoader:
    """Batches of a split's videos in numeric order: {"video_id": (B,), "frames": (B, T, 3, H, W) uint8, "masks"?}.
    The split is checked first (missing folder or frames raise with the path). exclude: video ids left out."""
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    dataset = VideoDataset(root, split, frame_indices=frame_indices, mask_indices=mask_indices, exclude=exclude)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=torch.device(device).type == "cuda")


def predict(predictor: Predictor, loader: DataLoader, device, desc: str = "predict"):
    """Yields (batch, preds) with preds (B, H, W) uint8 on the CPU, checked against the predictor contract;
    a predicted image of frame 22, when the predictor returns one, is in batch["predicted_frame"] (CPU)."""
    for batch in tqdm(loader, desc=desc, dynamic_ncols=True):
        frames = batch["frames"].to(device, non_blocking=True)
        preds = predictor(frames)
        if isinstance(preds, tuple):
            preds, images = preds
            batch["predicted_frame"] = images.cpu()
        expected = (frames.shape[0], HEIGHT, WIDTH)
        if tuple(preds.shape) != expected:
            raise ValueError(f"predictor returned shape {tuple(preds.shape)}, expected {expected} (B, H, W)")
        yield batch, preds.to("cpu", torch.uint8)


CAPTION_HEIGHT = 14  # pixels of the white strip above each panel that names it


def wrong_pixels(pred, truth) -> np.ndarray:
    """(H, W, 3) uint8: the true mask dimmed, with every pixel the prediction got wrong in red."""
    pred, truth = torch.as_tensor(pred).cpu(), torch.as_tensor(truth).cpu()
    panel = (colorize(truth).astype(np.float32) * 0.35).astype(np.uint8)
    panel[(pred != truth).numpy()] = (255, 0, 0)
    return panel


def save_grid(path, frame: torch.Tensor, pred, truth=None, predicted_frame: torch.Tensor = None,
              frame_name: str = "frame 11", target_name: str = "frame 22") -> None:
    """One PNG, panels side by side with a caption over each: the input frame | the predicted image of the
    target frame (when given) | the predicted mask | the true mask and the wrong pixels (when truth is given).
    Frames (3, H, W) uint8; masks (H, W) class ids."""
    panels = [(frame.permute(1, 2, 0).cpu().numpy(), f"input: {frame_name}")]
    if predicted_frame is not None:
        panels.append((predicted_frame.permute(1, 2, 0).cpu().numpy(), f"predicted image, {target_name}"))
    panels.append((colorize(pred), f"predicted mask, {target_name}"))
    if truth is not None:
        panels += [(colorize(truth), f"true mask, {target_name}"), (wrong_pixels(pred, truth), "wrong pixels (red)")]
    H, W = panels[0][0].shape[:2]
    gap = 4
    canvas = Image.new("RGB", (len(panels) * (W + gap) - gap, H + CAPTION_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (image, caption) in enumerate(panels):
        canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (k * (W + gap), CAPTION_HEIGHT))
        draw.text((k * (W + gap) + 2, 1), caption, fill="black")
    canvas.save(path)


def evaluate(predictor: Predictor, root, *, split: str = "val", batch_size: int = 8, device="cpu",
             num_workers: int = 0, visualize_dir=None, num_visualize: int = 4, exclude=()) -> SegmentationScore:
    """Frame-22 predictions of every video of a labeled split (but those `exclude`d) scored with the
    competition's metric; score.videos says which were scored ("N of M val videos; excluded: ...").
    visualize_dir: captioned grids (frame 11, [predicted image of frame 22,] predicted mask, true mask, wrong
    pixels) for the first num_visualize videos."""
    loader = video_loader(root, split, batch_size, num_workers, device, exclude=exclude)
    if visualize_dir is not None:
        make_folder(visualize_dir, "--visualize")
    score, drawn = SegmentationScore(), 0
    for batch, preds in predict(predictor, loader, device, desc=f"{split}"):
        truth = batch["masks"][:, 0]  # (B, H, W): frame 22's mask
        score.update(preds, truth)
        for k in range(len(preds)):
            if visualize_dir is None or drawn >= num_visualize:
                break
            predicted = batch["predicted_frame"][k] if "predicted_frame" in batch else None
            save_grid(Path(visualize_dir) / f"video_{int(batch['video_id'][k])}.png",
                      batch["frames"][k, LAST_INPUT_INDEX], preds[k], truth[k], predicted)
            drawn += 1
    score.videos = loader.dataset.index.describe()
    return score
