"""The competition's score, defined once: dataset-level Jaccard over 49 classes.

The leaderboard computed torchmetrics' multiclass Jaccard index (macro over classes) on the
predicted frame-22 masks of the whole split at once, not a mean of per-video scores. Classes that
appear in neither the predictions nor the targets are left out of the mean (torchmetrics does this).
"""
from collections import Counter

import numpy as np
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from data.classes import BACKGROUND, CLASS_NAMES, NUM_CLASSES, class_parts
from data.format import LAST_INPUT_INDEX, TARGET_INDEX


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    return x.long()


class SegmentationScore:
    """Accumulates a confusion matrix over batches of masks and scores the whole set.

    score = SegmentationScore(); score.update(pred, target) for each batch of (B, H, W) ids;
    score.compute() -> the competition's Jaccard; score.per_class() -> IoU per class (nan where a
    class is in neither). Under torch.distributed, compute() sums the confusion matrices of all ranks.
    """

    def __init__(self, device="cpu"):
        # update() checks shapes and ranges itself, once: torchmetrics' own checks (validate_args) take
        # 15 times as long as the counting (torch.unique over every pixel, twice per update)
        self._metric = MulticlassJaccardIndex(num_classes=NUM_CLASSES, average="macro", validate_args=False).to(device)
        self._per_class = MulticlassJaccardIndex(num_classes=NUM_CLASSES, average="none", validate_args=False).to(device)
        self.device = device

    @torch.no_grad()
    def update(self, pred, target) -> None:
        pred, target = _as_tensor(pred).to(self.device), _as_tensor(target).to(self.device)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        for name, ids in (("predicted", pred), ("target", target)):
            if ids.numel() and (ids.min() < 0 or ids.max() >= NUM_CLASSES):
                raise ValueError(f"{name} ids must be in 0..{NUM_CLASSES - 1}, got {ids.min()}..{ids.max()}")
        self._metric.update(pred, target)
        self._per_class.update(pred, target)

    def compute(self) -> float:
        return float(self._metric.compute())

    def per_class(self) -> torch.Tensor:
        """(49,) IoU per class, nan for classes absent from both predictions and targets."""
        iou = self._per_class.compute().float().cpu()  # summed over ranks by torchmetrics
        confmat = self._per_class.confmat.clone()  # (49, 49) rows = target, cols = pred; this rank's
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(confmat)  # presence must be judged on all ranks' counts too
        confmat = confmat.cpu()
        present = (confmat.sum(0) + confmat.sum(1)) > 0
        iou[~present] = float("nan")
        return iou

    def table(self) -> str:
        return per_class_table(self.per_class())


def jaccard(preds, targets) -> float:
    """The competition's score of a whole set of masks: (N, H, W) predictions vs (N, H, W) targets."""
    score = SegmentationScore()
    score.update(preds, targets)
    return score.compute()


def per_class_table(iou: torch.Tensor) -> str:
    """Readable per-class IoU table (classes absent from both sides are listed as '-')."""
    lines = [f"{'id':>3}  {'class':<24} IoU"]
    for i in range(NUM_CLASSES):
        v = float(iou[i])
        lines.append(f"{i:>3}  {CLASS_NAMES[i]:<24} " + ("   -" if np.isnan(v) else f"{v:.4f}"))
    return "\n".join(lines)


# Reference predictions that bound every model from below and above (one video's masks, (22, H, W)).
def copy_last_input_prediction(masks):
    """Predict frame 22 as the true mask of frame 11: what a perfect segmenter with no motion model scores."""
    return masks[LAST_INPUT_INDEX]


def ceiling_prediction(masks):
    """The true frame-22 mask with objects absent from frame 11 set to background: an object not in
    view at frame 11 cannot be placed from the input, so no model is expected to beat this."""
    target = masks[TARGET_INDEX]
    if isinstance(target, torch.Tensor):
        keep = torch.isin(target, torch.unique(masks[LAST_INPUT_INDEX]))
        return torch.where(keep, target, torch.zeros_like(target))
    seen = np.unique(masks[LAST_INPUT_INDEX])
    return np.where(np.isin(target, seen), target, BACKGROUND).astype(target.dtype)


def object_outcomes(pred: torch.Tensor, truth: torch.Tensor) -> Counter:
    """For each object (class) of each frame of truth (N, H, W): "right", "background", or which parts of
    its class (shape, material, color) the majority predicted class of its pixels gets wrong."""
    out = Counter()
    for p, t in zip(pred, truth):
        for cid in (c for c in t.unique().tolist() if c != BACKGROUND):
            votes = torch.bincount(p[t == cid].long())
            guess = int(votes.argmax())
            if guess == cid:
                out["right"] += 1
            elif guess == BACKGROUND:
                out["background"] += 1
            else:
                wrong = [name for name, a, b in zip(("shape", "material", "color"), class_parts(cid), class_parts(guess))
                         if a != b]
                out[" and ".join(wrong)] += 1
    return out
