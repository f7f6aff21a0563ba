"""The U-Net's object head: each object's shape and material decided once, from a window around it.

Why: the pixel head sees an object through receptive fields smaller than it (at the small preset's
half resolution an object is ten pixels across), and the cube against the cylinder is what it learns
last. Given the U-Net's own outlines and colors but each object's true shape and material, its
quickstart masks would score about twice as high (scripts/analysis/diagnose_unet.py; the README: the U-Net's
recipe). A small CNN that sees the whole object at full resolution and how big it looks where it stands
(its row: the depth cue) learns the shape and material of a whole object from a few thousand examples
in a minute or two of CPU.

    window: the object's square box (its larger side x BOX_MARGIN + BOX_PAD pixels, centred on its box),
            resampled to WINDOW x WINDOW, RGB only (an outline channel was tried: the U-Net's outlines are
            rounder than the truth's, and the head trained on true ones took cubes for cylinders)
    extras: the box's side in frame heights, the box centre's row in the frame (-1..1)
    ObjectClassifier: 5 conv blocks (widths w, w, 2w, 4w, 4w), global mean -> MLP -> KINDS logits

Training (Unets/train.py --object_head W): the objects of the step's whole frames, from their true masks
(each object class of at least MIN_OBJECT_PIXELS pixels in a frame is one object; those cut by the frame's
edge too, as segmentation meets them), their windows jittered. Segmentation (Unets/segment.py): every
piece of one predicted color, its window cut from the whole frame; each piece then takes its color's class
of the kind head_kinds gives it.
"""
import torch
from torch import nn
from torch.nn import functional as F

from data.classes import COLORS, MATERIALS, NUM_CLASSES, SHAPES, class_id, class_parts
from data.format import HEIGHT
from Unets.postprocess import connected_components

WINDOW = 32  # pixels of the resampled window's side
BOX_MARGIN, BOX_PAD = 1.2, 4  # the window's side: the box's larger side x BOX_MARGIN + BOX_PAD pixels (context)
JITTER = 0.1  # training windows are shifted and scaled by up to this share of their side
MIN_OBJECT_PIXELS = 20  # smaller objects (slivers at frame edges, behind others) are not trained on
KINDS = len(SHAPES) * len(MATERIALS)  # the head's outputs: kind = shape * len(MATERIALS) + material

# Each object class's kind (class 0, background: -1) and, for each (color, kind), its class.
CLASS_KIND = torch.tensor([-1] + [SHAPES.index(s) * len(MATERIALS) + MATERIALS.index(m)
                                  for s, m, _ in (class_parts(c) for c in range(1, NUM_CLASSES))])
COLOR_KIND_CLASS = torch.tensor([[class_id(SHAPES[k // len(MATERIALS)], MATERIALS[k % len(MATERIALS)], color)
                                  for k in range(KINDS)] for color in COLORS])  # (8, KINDS)


def _block(in_channels: int, out_channels: int, norm_layer) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), norm_layer(out_channels),
                         nn.ReLU(inplace=True))


class ObjectClassifier(nn.Module):
    """windows (N, 3, WINDOW, WINDOW), extras (N, 2) -> (N, KINDS) logits of the object's shape x material."""

    def __init__(self, width: int, norm_layer):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(3, w, norm_layer), _block(w, w, norm_layer), nn.MaxPool2d(2),
            _block(w, 2 * w, norm_layer), nn.MaxPool2d(2),
            _block(2 * w, 4 * w, norm_layer), nn.MaxPool2d(2),
            _block(4 * w, 4 * w, norm_layer), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classify = nn.Sequential(nn.Linear(4 * w + 2, 64), nn.ReLU(inplace=True), nn.Linear(64, KINDS))

    def forward(self, windows: torch.Tensor, extras: torch.Tensor) -> torch.Tensor:
        return self.classify(torch.cat([self.features(windows), extras], dim=1))


def boxes_of(ids: torch.Tensor, count: int):
    """ids (B, H, W) int64 in 0..count (0: none) -> pixels (B, count) and boxes (B, count, 4) as
    (top, bottom, left, right), bottom and right exclusive, of the pixels of each id 1..count."""
    B, H, W = ids.shape
    if ids.numel() and (ids.min() < 0 or ids.max() > count):  # an id out of range would count in another frame
        raise ValueError(f"boxes_of needs ids in 0..{count}, got {int(ids.min())}..{int(ids.max())}")
    frame = torch.arange(B, device=ids.device).view(B, 1, 1) * (count + 1)
    key = (frame + ids).reshape(B, H, W)  # (frame, id) pairs as one index
    pixels = torch.bincount(key.flatten(), minlength=B * (count + 1)).view(B, count + 1)[:, 1:]
    row_keys = key * H + torch.arange(H, device=ids.device).view(1, H, 1)  # (frame, id, row) pairs
    rows = torch.bincount(row_keys.flatten(), minlength=B * (count + 1) * H).view(B, count + 1, H)[:, 1:] > 0
    col_keys = key * W + torch.arange(W, device=ids.device).view(1, 1, W)
    cols = torch.bincount(col_keys.flatten(), minlength=B * (count + 1) * W).view(B, count + 1, W)[:, 1:] > 0
    top = rows.float().argmax(dim=2)  # the first row holding the id (argmax takes the first maximum)
    bottom = H - rows.flip(2).float().argmax(dim=2)
    left = cols.float().argmax(dim=2)
    right = W - cols.flip(2).float().argmax(dim=2)
    return pixels, torch.stack([top, bottom, left, right], dim=-1)


def windows(frames: torch.Tensor, which: torch.Tensor, boxes: torch.Tensor, jitter=None):
    """The inputs of ObjectClassifier for N objects: frames (B, 3, H, W) float, whole frames, which (N,) the
    frame of each object (ascending), boxes (N, 4) their boxes (boxes_of), jitter: a torch.Generator that
    shifts and scales each window by up to JITTER of its side (training: the boxes of segmented objects are
    not the true ones) -> windows (N, 3, WINDOW, WINDOW), extras (N, 2)."""
    B, _, H, W = frames.shape
    N = len(which)
    if N == 0:
        return frames.new_zeros(0, 3, WINDOW, WINDOW, dtype=torch.float), frames.new_zeros(0, 2, dtype=torch.float)
    box = boxes.float()
    cy, cx = (box[:, 0] + box[:, 1]) / 2, (box[:, 2] + box[:, 3]) / 2
    side = torch.maximum(box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]) * BOX_MARGIN + BOX_PAD
    if jitter is not None:
        u = (torch.rand(N, 3, generator=jitter) * 2 - 1).to(frames.device) * JITTER
        cy, cx, side = cy + u[:, 0] * side, cx + u[:, 1] * side, side * (1 + u[:, 2])
    theta = torch.zeros(N, 2, 3, device=frames.device)
    theta[:, 0, 0], theta[:, 1, 1] = side / W, side / H  # grid_sample's coordinates run -1..1 over the frame
    theta[:, 0, 2], theta[:, 1, 2] = cx / W * 2 - 1, cy / H * 2 - 1
    grid = F.affine_grid(theta, [N, 3, WINDOW, WINDOW], align_corners=False)  # (N, S, S, 2)
    # One grid_sample over the frames, each frame's windows stacked along its grid's rows (no copy of a
    # whole frame per object); slots without an object sample far outside the frame.
    first = torch.searchsorted(which, torch.arange(B, device=which.device))  # each frame's first object
    slot = torch.arange(N, device=which.device) - first[which]
    slots = int(slot.max()) + 1
    stacked = torch.full((B, slots, WINDOW, WINDOW, 2), 4.0, device=frames.device)
    stacked[which, slot] = grid
    sampled = F.grid_sample(frames.float(), stacked.reshape(B, slots * WINDOW, WINDOW, 2), align_corners=False)
    sampled = sampled.reshape(B, 3, slots, WINDOW, WINDOW).permute(0, 2, 1, 3, 4)[which, slot]  # zeros outside
    extras = torch.stack([side / HEIGHT, cy * (2 / (HEIGHT - 1)) - 1], dim=1)
    return sampled, extras


def training_objects(frames: torch.Tensor, masks: torch.Tensor, limit: int, jitter=None):
    """The objects a training batch of whole frames teaches: frames (B, 3, H, W) float, true masks (B, H, W)
    -> (windows, extras, kinds (N,)) of every object class of at least MIN_OBJECT_PIXELS pixels in a frame
    (each class is one object), the first `limit` of them (batches are shuffled)."""
    pixels, boxes = boxes_of(masks, NUM_CLASSES - 1)  # (B, 48), (B, 48, 4)
    which = torch.nonzero(pixels >= MIN_OBJECT_PIXELS)[:limit]  # (N, 2): (frame, class - 1), frame ascending
    win, extras = windows(frames, which[:, 0], boxes[which[:, 0], which[:, 1]], jitter=jitter)
    return win, extras, CLASS_KIND.to(masks.device)[which[:, 1] + 1]


OBJECT_BATCH = 128  # windows per forward pass


@torch.no_grad()
def head_kinds(head: ObjectClassifier, frames: torch.Tensor, which: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(N,) kinds the head gives N objects (windows' arguments), each window and its mirror image together:
    their log-probabilities summed (training flips frames left-right, so both are views it knows)."""
    kinds = [torch.zeros(0, dtype=torch.long, device=frames.device)]
    for s in range(0, len(which), OBJECT_BATCH):
        win, extras = windows(frames, which[s:s + OBJECT_BATCH], boxes[s:s + OBJECT_BATCH])
        logp = head(win, extras).float().log_softmax(dim=1) + head(win.flip(-1), extras).float().log_softmax(dim=1)
        kinds.append(logp.argmax(dim=1))
    return torch.cat(kinds)


@torch.no_grad()
def classify_pieces(head: ObjectClassifier, frames: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
    """Class ids from a color map: frames (B, 3, H, W) float, colors (B, H, W) in 0..8 (0: background, then
    Unets/postprocess.py: CLASS_COLOR) -> (B, H, W) class ids, each 4-connected piece of one color its color's
    class of the kind (shape and material) head_kinds gives it. Every piece, however small: a sliver of an
    object is still that object."""
    B, H, W = colors.shape
    pieces = connected_components(colors)  # labels are flat pixel indices: renumber each frame's 1..n
    compact = torch.zeros_like(pieces)
    for i in range(B):
        values, inverse = torch.unique(pieces[i], return_inverse=True)
        compact[i] = inverse + (0 if values[0] == 0 else 1)
    count = int(compact.max()) if compact.numel() else 0
    if count == 0:
        return torch.zeros_like(colors, dtype=torch.long)
    pixels, boxes = boxes_of(compact, count)
    which = torch.nonzero(pixels > 0)  # (N, 2): (frame, piece - 1), frame ascending
    kinds = head_kinds(head, frames, which[:, 0], boxes[which[:, 0], which[:, 1]])
    piece_color = torch.zeros(B, count + 1, dtype=torch.long, device=colors.device)
    piece_color.scatter_(1, compact.reshape(B, -1), colors.reshape(B, -1).long())  # one color per piece
    piece_class = torch.zeros(B, count + 1, dtype=torch.long, device=colors.device)  # piece 0: background
    piece_class[which[:, 0], which[:, 1] + 1] = COLOR_KIND_CLASS.to(colors.device)[
        piece_color[which[:, 0], which[:, 1] + 1] - 1, kinds]
    return torch.gather(piece_class, 1, compact.reshape(B, -1)).reshape(B, H, W)
