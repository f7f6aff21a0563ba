"""Where a U-Net loses its score: every frame of the val videos segmented, then scored again with each
segmented piece (4-connected, one predicted color) given the truth's shape, material or class, the class
most of the piece's true object pixels have. The gaps say what to fix: the outlines and colors (the last
row is all a perfect classifier of the pieces could give), or the shape and material.

    python scripts/analysis/diagnose_unet.py --root_dir D --saved_seg_model_dir U/best.pt [--split train] [--val_videos N]

Prints the Jaccard over all frames, the same with each piece's true shape, true shape and material, true
class; the shares of true objects (a class in a frame) whose pixels mostly get their class, or what is wrong; and, for a U-Net with an object head, the head's accuracy on the true objects' windows.
"""
import argparse
import sys

import torch
from tqdm import tqdm

from data.classes import MATERIALS, NUM_CLASSES, class_id, class_parts
from data.format import NUM_FRAMES
from data.metric import jaccard, object_outcomes
from data.readers import LabeledFrameDataset, add_exclude_args, read_exclusions, to_float
from engine import at_least, check_flags, choose_device, run_cli
from engine.flags import device as device_rule
from pipeline.cli import add_scores_json_arg, check_scores_json, write_scores
from pipeline.models import load_for_flag
from Unets.objects import CLASS_KIND, MIN_OBJECT_PIXELS, boxes_of, head_kinds
from Unets.postprocess import color_pieces
from Unets.segment import segment
from Unets.unet import UNet

BATCH = 44  # frames per segmentation pass


def with_true_parts(pred: torch.Tensor, truth: torch.Tensor, parts: str) -> torch.Tensor:
    """pred (N, H, W) with each piece of one predicted color given the truth's `parts` ("shape", "shape+material"
    or "class") of the class most of its object pixels have in truth (pieces over background keep theirs)."""
    out = pred.clone()
    pieces = color_pieces(pred)
    for f in range(len(pred)):
        for label in torch.unique(pieces[f]).tolist():
            if label == 0:
                continue
            where = pieces[f] == label
            true = truth[f][where]
            true = true[true > 0]
            if not len(true):
                continue
            t_shape, t_material, t_color = class_parts(int(torch.mode(true).values))
            p_shape, p_material, p_color = class_parts(int(pred[f][where][0]))
            out[f][where] = {"shape": class_id(t_shape, p_material, p_color),
                             "shape+material": class_id(t_shape, t_material, p_color),
                             "class": class_id(t_shape, t_material, t_color)}[parts]
    return out


def object_errors(pred: torch.Tensor, truth: torch.Tensor) -> dict:
    """Shares of the true objects (a class in a frame) by what the majority class of their pixels gets wrong
    (data/metric.py: object_outcomes), and their number."""
    counts = object_outcomes(pred, truth)
    total = max(1, sum(counts.values()))
    return {k: v / total for k, v in counts.most_common()} | {"objects": total}


def head_accuracy(model, frames: torch.Tensor, truth: torch.Tensor) -> dict:
    """The object head's kind (shape x material) of the true objects' boxes (at least MIN_OBJECT_PIXELS), as
    segmentation asks it (Unets/objects.py: head_kinds, window and mirror image)."""
    pixels, boxes = boxes_of(truth, NUM_CLASSES - 1)
    which = torch.nonzero(pixels >= MIN_OBJECT_PIXELS)
    kinds = CLASS_KIND[which[:, 1] + 1]
    got = head_kinds(model.objects, to_float(frames), which[:, 0], boxes[which[:, 0], which[:, 1]])
    right = lambda parts: (parts(got) == parts(kinds)).float().mean().item()  # noqa: E731
    return {"kind": right(lambda k: k), "shape": right(lambda k: k // len(MATERIALS)),
            "material": right(lambda k: k % len(MATERIALS))}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root_dir", required=True, help="dataset root holding val/ with masks")
    p.add_argument("--saved_seg_model_dir", required=True, help="U-Net checkpoint (Unets/train.py) or its run folder")
    p.add_argument("--split", default="val", choices=("val", "train"),
                   help="the labeled split to diagnose (train: how well the U-Net fits what it learned from)")
    p.add_argument("--val_videos", type=int, default=0, help="the first N videos of the split only (0: all)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA if present)")
    add_exclude_args(p)
    add_scores_json_arg(p)
    args = p.parse_args(argv)
    check_flags(p, args, {"val_videos": at_least(0), "device": device_rule})
    check_scores_json(args)  # before any work: never over a checkpoint, a mask or an input
    device = choose_device(args.device)
    model = load_for_flag(args.saved_seg_model_dir, UNet, "--saved_seg_model_dir", device).eval()
    data = LabeledFrameDataset(args.root_dir, args.split, exclude=read_exclusions(args.exclude_videos, args.root_dir))
    print(data.index.describe())
    count = min(len(data), args.val_videos * NUM_FRAMES) if args.val_videos else len(data)
    frames, truth, preds = [], [], []
    for start in tqdm(range(0, count, BATCH), desc="segment", leave=False):
        items = [data[i] for i in range(start, min(count, start + BATCH))]
        frames.append(torch.stack([f for f, _ in items]))
        truth.append(torch.stack([m for _, m in items]).long())
        preds.append(segment(model, frames[-1]).cpu())
    frames, truth, pred = torch.cat(frames), torch.cat(truth), torch.cat(preds)
    scores = {"jaccard": jaccard(pred, truth)}
    for parts in ("shape", "shape+material", "class"):
        scores[f"true_{parts}"] = jaccard(with_true_parts(pred, truth, parts), truth)
    print(f"{args.split} Jaccard over {count} frames: {scores['jaccard']:.4f}")
    print(f"  each piece given its true shape:              {scores['true_shape']:.4f}")
    print(f"  ... its true shape and material:              {scores['true_shape+material']:.4f}")
    print(f"  ... its true class (outlines and pieces only): {scores['true_class']:.4f}")
    scores["objects"] = object_errors(pred, truth)
    print(f"true objects ({scores['objects']['objects']}) by their pixels' majority class: " + ", ".join(
        f"{k} {v:.1%}" for k, v in scores["objects"].items() if k != "objects"))
    if getattr(model, "objects", None) is not None:
        scores["head"] = head_accuracy(model.cpu(), frames, truth)
        print("object head on the true objects' windows (and their mirror images): " + ", ".join(f"{k} {v:.1%}" for k, v in scores["head"].items()))
    write_scores(args.scores_json, scores)
    return scores


if __name__ == "__main__":
    sys.exit(run_cli(main))
