"""Segmentation with a trained U-Net: frames -> class ids, the one step that training's validation, every
predictor and the pseudo-labels share (a whole-frame pass, each object re-segmented in a crop, a vote)."""
import torch

from data.readers import to_float
from engine import autocast, memory_format
from Unets.objects import classify_pieces
from Unets.postprocess import VIDEO_SHARE, color_pieces, connected_components, vote_per_object, vote_per_video


@torch.no_grad()
def segment(model, frames: torch.Tensor, vote: bool = True, refine: bool = True) -> torch.Tensor:
    """Class ids of frames: (B, 3, H, W) uint8 or float in [0, 1] -> (B, H, W) int64, on the model's device.

    The one segmentation step shared by training's validation and every inference script. vote: each
    connected piece of one predicted color takes a single class (Unets/postprocess.py: vote_per_object);
    scripts/bench/bench_unet.py measures what it adds (the README's U-Net table). A U-Net with an object head
    instead scores background and colors only, and each connected piece of one color takes its color's
    class of the shape and material its object head gives it (Unets/objects.py: classify_pieces; `vote`
    does not apply: a piece has one class either way). refine: re-segment each object in a crop of the
    size the U-Net was trained on, when it was trained on crops (refine_with_crops; False only to measure it).
    """
    x = model_input(model, frames)  # converted once, for the whole-frame pass and the crops
    colors = getattr(model, "objects", None) is not None  # pixels give colors, the object head the rest
    logits = unet_logits(model, x, colors=colors)
    if refine and model.config.get("crop_size") and model.config.get("norm", "group") == "group":
        logits = refine_with_crops(model, x, logits, model.config["crop_size"], colors=colors)
    if colors:
        return classify_pieces(model.objects, x, logits.argmax(dim=1))
    return vote_per_object(logits) if vote else logits.argmax(dim=1)


@torch.no_grad()
def segment_videos(model, frames: torch.Tensor, share: float = VIDEO_SHARE) -> torch.Tensor:
    """Class ids of whole videos: (B, T, 3, H, W) -> (B, T, H, W) int64: each frame segmented (segment), then each
    video's flickering classes voted away (Unets/postprocess.py: vote_per_video, at `share`; 0: no such vote). What
    every step that segments a video's frames together uses: pseudo-labels, the forecasters' inputs, the sim-to-real
    measure."""
    B, T = frames.shape[:2]
    masks = segment(model, frames.flatten(0, 1))
    masks = masks.reshape(B, T, *masks.shape[-2:])
    return vote_per_video(masks, share) if share > 0 else masks


def model_input(model, frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8, or float in [0, 1] -> float in [0, 1] on the model's device."""
    x = frames.to(next(model.parameters()).device, non_blocking=True)
    return to_float(x) if x.dtype == torch.uint8 else x.float()


MIN_REFINED_PIXELS = 10  # smaller pieces keep the whole frame's scores
CROP_BATCH = 64  # crops per forward pass


@torch.no_grad()
def refine_with_crops(model, frames: torch.Tensor, logits: torch.Tensor, size: int, colors: bool = False) -> torch.Tensor:
    """The U-Net's scores of whole frames with every object re-segmented as it was trained: frames
    (B, 3, H, W), logits (B, C, H, W) of those frames (C = 49 classes, or with colors 9: background and the
    colors) -> (B, C, H, W) log-probabilities, those of a
    size x size crop centred on each piece of one predicted color (Unets/postprocess.py: color_pieces;
    at least MIN_REFINED_PIXELS) where crops cover a pixel (averaged where they overlap), the whole
    frame's elsewhere.

    Why: the U-Net trains on object-centred crops (Unets/crops.py: ObjectCrops), and its
    GroupNorms normalise each input over all its pixels, so a whole frame, mostly floor, is
    normalised otherwise than the crops it learned from, and gets more object pixels wrong on a whole
    frame than on crops of the same regions (the README: the U-Net's recipe). A frame costs one whole pass plus a ninth of one per object.
    """
    B, C, H, W = logits.shape
    logp = logits.float().log_softmax(dim=1)
    ch, cw = min(size, H), min(size, W)
    pred = logits.argmax(dim=1)
    labels = (connected_components(pred) if colors else color_pieces(pred)).reshape(B, -1)  # (B, H*W)
    boxes = []  # (video, top row, left column)
    rows = torch.arange(H, device=logits.device).repeat_interleave(W).float()  # (H*W,) row of each flat pixel
    cols = torch.arange(W, device=logits.device).repeat(H).float()
    for b in range(B):
        pieces, inverse, counts = torch.unique(labels[b], return_inverse=True, return_counts=True)
        cy = torch.zeros(len(pieces), device=logits.device).index_add_(0, inverse, rows) / counts
        cx = torch.zeros(len(pieces), device=logits.device).index_add_(0, inverse, cols) / counts
        for k in torch.nonzero((pieces > 0) & (counts >= MIN_REFINED_PIXELS)).flatten().tolist():
            y0 = min(max(int(round(float(cy[k]))) - ch // 2, 0), H - ch)  # centred, clipped like ObjectCrops
            x0 = min(max(int(round(float(cx[k]))) - cw // 2, 0), W - cw)
            boxes.append((b, y0, x0))
    if not boxes:
        return logp
    device = next(model.parameters()).device
    x = model_input(model, frames)  # a no-op for what segment passes
    total = torch.zeros_like(logp)
    count = torch.zeros(B, 1, H, W, device=logp.device)
    for start in range(0, len(boxes), CROP_BATCH):
        chunk = boxes[start:start + CROP_BATCH]
        crops = torch.stack([x[b, :, y0:y0 + ch, x0:x0 + cw] for b, y0, x0 in chunk])  # (N, 3, ch, cw)
        tops = torch.tensor([y0 for _, y0, _ in chunk], device=device) if model.config.get("coords") else None
        with autocast(device):
            crops = crops.contiguous(memory_format=memory_format(device))
            crop_logp = (model(crops, tops, colors=True) if colors else model(crops, tops)).float().log_softmax(dim=1)
        for (b, y0, x0), lp in zip(chunk, crop_logp.to(logp.device)):
            total[b, :, y0:y0 + ch, x0:x0 + cw] += lp
            count[b, :, y0:y0 + ch, x0:x0 + cw] += 1
    return torch.where(count > 0, total / count.clamp(min=1), logp)


@torch.no_grad()
def unet_logits(model, frames: torch.Tensor, colors: bool = False) -> torch.Tensor:
    """(B, 3, H, W) uint8 or float in [0, 1] -> (B, 49, H, W) logits (colors: (B, 9, H, W) of background and
    the colors), on the model's device."""
    device = next(model.parameters()).device
    x = model_input(model, frames).contiguous(memory_format=memory_format(device))
    with autocast(device):
        return model(x, colors=True) if colors else model(x)
