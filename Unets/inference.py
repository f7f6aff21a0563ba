"""Inference shared by every inference script: from a predictor to a score or a submission.

A predictor maps a batch of input videos to frame 22's class ids:
    predictor(frames) -> preds,  frames (B, 11, 3, H, W) uint8 on the device -> preds (B, H, W) int64
A predictor that makes an image of frame 22 on the way (the reconstructor's two stages) returns
(preds, images (B, 3, H, W) uint8) instead, and --visualize draws the image beside the masks.
Entry scripts differ only in how they build it (from a U-Net checkpoint alone, or a reconstructor
and a U-Net); everything else (loading videos in numeric order, batching, scoring with the
competition's metric, pictures, checking and writing the submission) lives here:

    def build_predictor(args, device):
        return segmentation_predictor(load_model(args.saved_seg_model_dir, UNet, device))
    val_main(build_predictor, __doc__)          # or hidden_main(build_predictor, __doc__)

Extra flags (e.g. --saved_recon_model_dir) come through add_args=lambda parser: ...
"""
import argparse
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm import tqdm

from data.classes import NUM_CLASSES, colorize
from data.format import HEIGHT, LAST_INPUT_INDEX, NUM_INPUT_FRAMES, WIDTH
from data.metric import SegmentationScore
from data.motion import Motion, extrapolate_frames, future_horizons
from data.postprocess import color_pieces, remove_small_blobs, restrict_to_input_classes, vote_per_object
from data.pseudo_labels import file_sha256, label_split, open_store, store_dir, store_finished
from data.readers import VideoDataset, add_exclude_args, read_exclusions, to_float
from SSL_convLSTM_Reconstructor.forecaster import MaskForecaster
from SSL_convLSTM_Reconstructor.model import Reconstructor
from Unets.training import (
    CheckpointError, OutputPathError, atomic_save, autocast, check_writable, choose_device, load_model, make_folder,
    memory_format,
)
from Unets.unet import UNet

Predictor = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def segment(model, frames: torch.Tensor, vote: bool = True, refine: bool = True) -> torch.Tensor:
    """Class ids of frames: (B, 3, H, W) uint8 or float in [0, 1] -> (B, H, W) int64, on the model's device.

    The one segmentation step shared by training's validation and every inference script. vote: each
    connected piece of one predicted color takes a single class (data/postprocess.py: vote_per_object);
    measured by scripts/bench_unet.py, it adds several points of val Jaccard at every stage of training
    (0.38 -> 0.44 after 3 epochs of the default recipe). refine: re-segment each object in a crop of the
    size the U-Net was trained on, when it was trained on crops (refine_with_crops; False only to measure it).
    """
    x = model_input(model, frames)  # converted once, for the whole-frame pass and the crops
    logits = unet_logits(model, x)
    if refine and model.config.get("crop_size") and model.config.get("norm", "group") == "group":
        logits = refine_with_crops(model, x, logits, model.config["crop_size"])
    return vote_per_object(logits) if vote else logits.argmax(dim=1)


def model_input(model, frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8, or float in [0, 1] -> float in [0, 1] on the model's device."""
    x = frames.to(next(model.parameters()).device, non_blocking=True)
    return to_float(x) if x.dtype == torch.uint8 else x.float()


MIN_REFINED_PIXELS = 10  # smaller pieces keep the whole frame's scores
CROP_BATCH = 64  # crops per forward pass


@torch.no_grad()
def refine_with_crops(model, frames: torch.Tensor, logits: torch.Tensor, size: int) -> torch.Tensor:
    """The U-Net's scores of whole frames with every object re-segmented as it was trained: frames
    (B, 3, H, W), logits (B, 49, H, W) of those frames -> (B, 49, H, W) log-probabilities, those of a
    size x size crop centred on each piece of one predicted color (data/postprocess.py: color_pieces;
    at least MIN_REFINED_PIXELS) where crops cover a pixel (averaged where they overlap), the whole
    frame's elsewhere.

    Why: the U-Net trains on object-centred crops (Unets/training.py: ObjectCrops), and its
    GroupNorms normalise each input over all its pixels, so a whole frame, mostly floor, is
    normalised otherwise than the crops it learned from. On synthetic val, a 20-epoch U-Net's crops
    got 45% fewer object pixels wrong than its whole-frame pass over the same regions, and a quarter
    as many floor pixels taken for objects. A frame costs one whole pass plus a ninth of one per object.
    """
    B, C, H, W = logits.shape
    logp = logits.float().log_softmax(dim=1)
    ch, cw = min(size, H), min(size, W)
    labels = color_pieces(logits.argmax(dim=1)).reshape(B, -1)  # (B, H*W)
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
            crop_logp = model(crops.contiguous(memory_format=memory_format(device)), tops).float().log_softmax(dim=1)
        for (b, y0, x0), lp in zip(chunk, crop_logp.to(logp.device)):
            total[b, :, y0:y0 + ch, x0:x0 + cw] += lp
            count[b, :, y0:y0 + ch, x0:x0 + cw] += 1
    return torch.where(count > 0, total / count.clamp(min=1), logp)


@torch.no_grad()
def unet_logits(model, frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 or float in [0, 1] -> (B, 49, H, W) logits, on the model's device."""
    device = next(model.parameters()).device
    x = model_input(model, frames).contiguous(memory_format=memory_format(device))
    with autocast(device):
        return model(x)  # (B, 49, H, W)


def segmentation_predictor(model, frame_index: int = LAST_INPUT_INDEX, vote: bool = True,
                           refine: bool = True) -> Predictor:
    """Frame 22 predicted as the segmentation of one input frame (frame 11 by default): no motion model."""
    if not 0 <= frame_index < NUM_INPUT_FRAMES:
        raise ValueError(f"frame_index must be an input frame 0..{NUM_INPUT_FRAMES - 1}, got {frame_index}")
    model.eval()
    return lambda frames: segment(model, frames[:, frame_index], vote, refine)  # (B, 11, 3, H, W) -> (B, 3, H, W)


def forecaster_predictor(unet, forecaster, *, restrict_classes: bool = False, min_blob_size: int = 0) -> Predictor:
    """Frame 22 forecast in mask space: the U-Net segments frames 1-11, the forecaster rolls their masks
    forward to frame 22's class logits. Post-processing (data/postprocess.py): restrict_classes drops
    classes absent from the U-Net's masks of frames 1-11; min_blob_size > 1 turns same-class blobs
    smaller than that many pixels into background."""
    unet.eval()
    forecaster.eval()
    device = next(forecaster.parameters()).device

    @torch.no_grad()
    def predictor(frames: torch.Tensor) -> torch.Tensor:
        B, T, _, H, W = frames.shape
        inputs = segment(unet, frames.flatten(0, 1)).reshape(B, T, H, W).to(device)  # (B*T, H, W) -> (B, T, H, W)
        with autocast(device):
            logits = forecaster(inputs)[:, -1].float()  # (B, 49, H, W): frame 22
        if restrict_classes:
            logits = restrict_to_input_classes(logits, inputs)
        preds = logits.argmax(dim=1)
        return remove_small_blobs(preds, min_blob_size) if min_blob_size > 1 else preds

    return predictor


def add_forecaster_args(parser: argparse.ArgumentParser) -> None:
    """The flags of the two inference scripts with the forecaster."""
    parser.add_argument("--saved_forecaster_model_dir", default="checkpoints/forecaster/best.pt",
                        help="mask forecaster checkpoint (SSL_convLSTM_Reconstructor/train_forecaster.py)")
    parser.add_argument("--restrict_classes", action="store_true",
                        help="post-processing: never predict a class absent from the U-Net's masks of frames 1-11")
    parser.add_argument("--min_blob_size", type=int, default=0,
                        help="post-processing: same-class blobs smaller than this many pixels become background (0: off)")


def build_forecaster_predictor(args, device) -> Predictor:
    """U-Net (--saved_seg_model_dir) + forecaster (--saved_forecaster_model_dir), each rebuilt from its checkpoint."""
    if args.min_blob_size < 0:
        raise ValueError(f"--min_blob_size must be >= 0, got {args.min_blob_size}")
    unet = load_model(args.saved_seg_model_dir, UNet, device)
    forecaster = load_model(args.saved_forecaster_model_dir, MaskForecaster, device)
    return forecaster_predictor(unet, forecaster, restrict_classes=args.restrict_classes,
                                min_blob_size=args.min_blob_size)


def needs_segmenter(reconstructor) -> bool:
    """A reconstructor with reference "extrapolated" needs the U-Net's masks of frames 10-11 (model.py)."""
    return reconstructor.config["reference"] == "extrapolated"


@torch.no_grad()
def extrapolated_reference(unet, frames: torch.Tensor, motion: Motion = None) -> torch.Tensor:
    """Frames 1-11 (B, 11, 3, H, W) uint8 -> (B, 1, 3, H, W) uint8: frame 11 with the objects the U-Net
    finds in frames 10-11 moved to where their velocity takes them by frame 22 (data/motion.py)."""
    B, T, _, H, W = frames.shape
    masks = segment(unet, frames[:, LAST_INPUT_INDEX - 1:LAST_INPUT_INDEX + 1].flatten(0, 1)).reshape(B, 2, H, W)
    return torch.stack([extrapolate_frames(f, m.to(f.device), future_horizons(), motion)
                        for f, m in zip(frames, masks)])


@torch.no_grad()
def reconstruct(reconstructor, frames: torch.Tensor, unet=None) -> torch.Tensor:
    """Frame 22 as an image: frames 1-11 (B, 11, 3, H, W) uint8 -> (B, 3, H, W) uint8, on the reconstructor's
    device. Rounded to uint8 like a real frame, so the U-Net sees here exactly what Unets/train.py
    fine-tunes it on (--saved_recon_model_dir). unet: the segmenter a reconstructor with reference
    "extrapolated" needs (needs_segmenter)."""
    device = next(reconstructor.parameters()).device
    frames = frames.to(device, non_blocking=True)
    ref = None
    if needs_segmenter(reconstructor):
        if unet is None:
            raise ValueError("this reconstructor's reference is 'extrapolated': it needs the U-Net's masks of frames "
                             "10-11, so pass a U-Net")
        ref = to_float(extrapolated_reference(unet, frames, Motion.from_config(reconstructor.config["motion"])).to(device))
    with autocast(device):
        out = reconstructor(to_float(frames), ref=ref)[:, -1]  # (B, 1, 3, H, W) -> (B, 3, H, W): frame 22
    return out.float().clamp(0, 1).mul(255).round().to(torch.uint8)


def reconstruct_split(reconstructor, root, split: str, *, batch_size: int = 8, num_workers: int = 0,
                      desc: str = None, unet=None, exclude=()) -> dict:
    """The reconstructor's frame 22 of every video of a split, once, in numeric order (small splits: it all
    stays in memory, 115 KB a video): {"video_ids": [N], "images": (N, 3, H, W) uint8 on the CPU,
    "masks": (N, H, W) uint8, frame 22's true masks, for a labeled split}."""
    device = next(reconstructor.parameters()).device
    loader = video_loader(root, split, batch_size, num_workers, device, exclude=exclude)  # frames 1-11 (+ frame 22's mask)
    out = {"video_ids": [], "images": [], "masks": []}
    for batch in tqdm(loader, desc=desc or f"reconstruct {split}", dynamic_ncols=True, leave=False):
        out["video_ids"].extend(int(v) for v in batch["video_id"])
        out["images"].append(reconstruct(reconstructor, batch["frames"], unet).cpu())
        if "masks" in batch:
            out["masks"].append(batch["masks"][:, 0])
    out["images"] = torch.cat(out["images"])
    out["masks"] = torch.cat(out["masks"]) if out["masks"] else None
    return out


def reconstruction_predictor(reconstructor, unet) -> Predictor:
    """Two stages: the reconstructor predicts frame 22 as an image, the U-Net segments it.
    Returns (preds, images) so that --visualize can draw the predicted frame."""
    reconstructor.eval()
    unet.eval()

    def predictor(frames: torch.Tensor):
        images = reconstruct(reconstructor, frames, unet)  # (B, 3, H, W) uint8
        return segment(unet, images), images

    return predictor


def prepare_val_inputs(root, pseudo_labels, seg_checkpoint, device, print_fn=print, exclude=()) -> None:
    """PSEUDO_LABELS/val: the U-Net's masks of val frames 1-11 (the inputs a model trained on U-Net masks is
    validated with), made once (resumably) and reused by later runs. A finished store is used as it is
    (the U-Net is then needed only if given, to check it made the store). exclude: val video ids left out."""
    d = store_dir(pseudo_labels, "val")
    if Path(seg_checkpoint).is_file():  # another kind of model is named as such, before the store is judged by it
        load_for_flag(seg_checkpoint, UNet, "--saved_seg_model_dir")
    if store_finished(pseudo_labels, "val"):
        _, _, meta = open_store(pseudo_labels, "val", root)  # damaged, or of another dataset: refused with the fix
        if Path(seg_checkpoint).is_file() and file_sha256(seg_checkpoint) != meta["segmenter_sha256"]:
            raise ValueError(f"{d} holds val inputs made by another segmenter ({meta['segmenter']}) than "
                             f"{seg_checkpoint}: delete {d} to segment them again")
        print_fn(f"val inputs: {d} (made by {meta['segmenter']})")
        return
    unet = load_model(seg_checkpoint, UNet, device)
    label_split(lambda frames: segment(unet, frames), root, "val", pseudo_labels, segmenter=seg_checkpoint,
                desc="val inputs (U-Net on frames 1-11)", exclude=exclude)


def load_for_flag(path, model_cls, flag: str, device="cpu"):
    """load_model with the flag named in any error (a reconstructor passed as the U-Net, a missing file)."""
    try:
        return load_model(path, model_cls, device)
    except CheckpointError as e:
        raise CheckpointError(f"{flag}: {e}") from None


def add_reconstructor_args(parser: argparse.ArgumentParser) -> None:
    """The flag of the two inference scripts with the reconstructor."""
    parser.add_argument("--saved_recon_model_dir", default="checkpoints/reconstructor/best.pt",
                        help="reconstructor checkpoint file (SSL_convLSTM_Reconstructor/train_reconstructor.py)")


def build_reconstructor_predictor(args, device) -> Predictor:
    """Reconstructor (--saved_recon_model_dir) then U-Net (--saved_seg_model_dir), each rebuilt from its checkpoint."""
    reconstructor = load_for_flag(args.saved_recon_model_dir, Reconstructor, "--saved_recon_model_dir", device)
    unet = load_for_flag(args.saved_seg_model_dir, UNet, "--saved_seg_model_dir", device)
    return reconstruction_predictor(reconstructor, unet)


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


def save_grid(path, frame: torch.Tensor, pred, truth=None, predicted_frame: torch.Tensor = None) -> None:
    """One PNG: input frame | predicted frame 22 (when given) | predicted mask | true mask (when given),
    side by side, 4 px apart. Frames (3, H, W) uint8."""
    images = [frame] + ([predicted_frame] if predicted_frame is not None else [])
    panels = [f.permute(1, 2, 0).cpu().numpy() for f in images] + [colorize(pred)]
    panels += [colorize(truth)] if truth is not None else []
    gap = np.full((frame.shape[-2], 4, 3), 255, np.uint8)
    row = np.concatenate(sum([[p, gap] for p in panels], [])[:-1], axis=1)
    Image.fromarray(row).save(path)


def evaluate(predictor: Predictor, root, *, split: str = "val", batch_size: int = 8, device="cpu",
             num_workers: int = 0, visualize_dir=None, num_visualize: int = 4, exclude=()) -> SegmentationScore:
    """Frame-22 predictions of every video of a labeled split (but those `exclude`d) scored with the
    competition's metric; score.videos says which were scored ("N of M val videos; excluded: ...").
    visualize_dir: grids (frame 11, [predicted frame 22,] prediction, truth of frame 22) for the first
    num_visualize videos."""
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


def check_output_is_not_an_input(output: Path, args) -> None:
    """Refuse an --output that would replace something other than a submission: one of the run's checkpoints
    (--saved_*_model_dir), or any existing file that is not a submission (a tensor (N, 160, 240) uint8)."""
    for flag, value in vars(args).items():
        if flag.startswith("saved_") and value and Path(value).resolve() == output.resolve():
            raise OutputPathError(f"--output {output} is the checkpoint passed as --{flag}: writing the submission "
                                  f"there would destroy the model; choose another --output")
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


# ---------------------------------------------------------------------------------------------
# Command line, shared by the entry scripts


def _parser(description: str, hidden: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", default="Dataset_Student", help="dataset root holding the val/ or hidden/ split")
    p.add_argument("--saved_seg_model_dir", default="checkpoints/unet/best.pt",
                   help="U-Net checkpoint file written by Unets/train.py (its model_config rebuilds the model)")
    p.add_argument("--batch_size", type=int, default=8, help="videos per batch")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if present, else CPU)")
    p.add_argument("--num_workers", type=int, default=2, help="data-loading worker processes (0: in the main process)")
    if hidden:
        p.add_argument("--output", default="submission.pt",
                       help="submission file: uint8 tensor (hidden videos, 160, 240), written atomically")
    else:
        p.add_argument("--visualize", default=None, metavar="DIR",
                       help="write PNG grids (frame 11 | [predicted frame 22 |] prediction | true frame 22) "
                            "of a few videos to DIR")
        p.add_argument("--num_visualize", type=int, default=8, help="how many videos --visualize draws")
        add_exclude_args(p)
    return p


def val_main(build_predictor, description: str, argv=None, add_args=None) -> float:
    """Parse arguments, build the predictor, score frame 22 on val; prints `Jaccard: 0.xxxx`, the videos scored
    ("scored 999 of 1000 val videos; excluded: video_1370") and the per-class table."""
    parser = _parser(description, hidden=False)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    device = choose_device(args.device)
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    VideoDataset(args.root_dir, "val", exclude=exclude)  # a missing split fails before the model loads
    if args.visualize:
        make_folder(args.visualize, "--visualize")  # a file in the way fails before the model loads
    predictor = build_predictor(args, device)
    score = evaluate(predictor, args.root_dir, batch_size=args.batch_size, device=device,
                     num_workers=args.num_workers, visualize_dir=args.visualize, num_visualize=args.num_visualize,
                     exclude=exclude)
    jaccard = score.compute()
    print(f"Jaccard: {jaccard:.4f}")
    print(f"scored {score.videos}")
    print(score.table())
    if args.visualize:
        print(f"pictures: {args.visualize}")
    return jaccard


def hidden_main(build_predictor, description: str, argv=None, add_args=None) -> torch.Tensor:
    """Parse arguments, check --output is writable, build the predictor, write the checked submission."""
    parser = _parser(description, hidden=True)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    output = check_writable(args.output)  # before anything expensive
    check_output_is_not_an_input(output, args)
    device = choose_device(args.device)
    VideoDataset(args.root_dir, "hidden")  # a missing split fails before the model loads
    predictor = build_predictor(args, device)
    start = time.perf_counter()
    submission, ids, expected = predict_hidden(predictor, args.root_dir, batch_size=args.batch_size, device=device,
                                               num_workers=args.num_workers)
    seconds = time.perf_counter() - start
    write_submission(submission, output, ids, expected)
    print(f"wrote {output}: {submission.dtype} tensor {tuple(submission.shape)}, rows = videos "
          f"{ids[0]}..{ids[-1]} in numeric order, class ids {int(submission.min())}..{int(submission.max())} "
          f"({len(ids) / seconds:.1f} videos/s)")
    return submission
