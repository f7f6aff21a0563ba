"""Speed of the U-Net: training throughput (forward, loss, backward, AdamW step; data loading excluded) and
hidden inference throughput end to end (PNG decoding, batching, segmentation). scripts/bench/speed_unet.py runs it
as a stage of scripts/bench/bench_unet.py and writes the figures as JSON; speed_table prints them."""
import time

import torch
from torch.nn import functional as F

from data.readers import LabeledFrameDataset, to_float
from pipeline.predictors import segmentation_predictor
from pipeline.submission import predict_hidden
from Unets.crops import ObjectCrops
from Unets.unet import UNet


def train_speed(width: int, root, device, batch: int, crop: int = 0, steps: int = 5) -> float:
    """Samples/s of forward + cross-entropy + backward + AdamW step on frames, or on crop x crop crops
    of them when crop > 0 (data loading excluded)."""
    data = LabeledFrameDataset(root, "train")
    if crop:
        data = ObjectCrops(data, crop, seed=0)
    items = [data[i] for i in range(batch)]  # each decoded (and cropped) once
    frames = torch.stack([item[0] for item in items]).to(device)
    masks = torch.stack([item[1] for item in items]).to(device).long()
    torch.manual_seed(0)
    model = UNet(base_channels=width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        loss = F.cross_entropy(model(to_float(frames)), masks)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, kernel selection)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def hidden_speed(width: int, root, device, batch: int, num_workers: int, trained=None) -> float:
    """Videos/s of the hidden split end to end (PNG decoding of 11 frames per video, batching, segmentation).
    trained: the trained U-Net, timed when its width is `width` (its segmentation re-segments each object it
    finds in a crop, Unets/segment.py: refine_with_crops); otherwise random weights, which find no object,
    so only the whole-frame pass is timed."""
    torch.manual_seed(0)
    model = trained if trained is not None and trained.config["base_channels"] == width else UNet(base_channels=width)
    model = model.to(device).eval()
    start = time.perf_counter()
    submission, _, _ = predict_hidden(segmentation_predictor(model), root, batch_size=batch, device=device,
                                      num_workers=num_workers)
    return len(submission) / (time.perf_counter() - start)


def measure(widths, root, device, batch: int, crop: int, num_workers: int, trained=None) -> list:
    """One row per width: parameters, train crops/s and frames/s, hidden videos/s."""
    return [
        {"base_channels": w, "params_M": round(sum(p.numel() for p in UNet(base_channels=w).parameters()) / 1e6, 2),
         "train_crops_per_s": round(train_speed(w, root, device, batch, crop), 2),
         "train_frames_per_s": round(train_speed(w, root, device, batch), 2),
         "hidden_videos_per_s": round(hidden_speed(w, root, device, batch, num_workers, trained), 2),
         "hidden_model": "trained" if trained is not None and trained.config["base_channels"] == w else "random weights"}
        for w in widths]


def speed_table(speed: dict) -> str:
    """The markdown table of measure()'s rows, as scripts/bench/speed_unet.py writes them ({"batch", "crop", "rows"})."""
    head = (f"| base_channels | params (M) | train crops/s ({speed['crop']}x{speed['crop']}, batch {speed['batch']}) "
            f"| train frames/s (whole) | hidden videos/s |\n|---|---|---|---|---|\n")
    return head + "".join(f"| {s['base_channels']} | {s['params_M']} | {s['train_crops_per_s']} | "
                          f"{s['train_frames_per_s']} | {s['hidden_videos_per_s']} ({s['hidden_model']}) |\n"
                          for s in speed["rows"])
