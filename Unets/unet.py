"""U-Net for per-frame segmentation: small named parts and a forward that mirrors the figure.

    frame (B, 3, H, W) float in [0, 1]
      inc ─────────────────────────────────────────── up4 ── outc ─> logits (B, 49, H, W)
       └─ down1 ───────────────────────────── up3 ──┘
            └─ down2 ─────────────── up2 ──┘
                 └─ down3 ─ up1 ──┘
                      └─ down4 ┘                      widths: c, 2c, 4c, 8c, 16c (c = base_channels)

Normalization (norm): GroupNorm by default, BatchNorm ("batch") in Unets/train.py's small preset. GroupNorm
makes a frame's output independent of what else is in its batch, so 1 process x batch 8 and 2 processes x
batch 4 compute the same thing (tested) and train and eval mode agree; BatchNorm trains faster at the small
preset's few CPU minutes, where that exactness matters less than the speed. Transposed convolutions upsample (deterministic backward, unlike bilinear
on CUDA). Any H, W works: Up pads its input to the skip's size when a pooling floored an odd size.

Row channel (coords=True, the default): the network also sees each pixel's row in the whole frame,
so that a crop (Unets/crops.py: ObjectCrops) keeps the depth cue of the camera's perspective. The
camera looks down at the floor, so the row tells how far a pixel is, hence how big an object there
looks: cubes are smaller than cylinders (CLEVR's sizes), and without the row a near cube looks like a
far cylinder. In a 20-epoch run without it, 17 of the 25 objects the U-Net got wrong on the true
frame 22 were near cubes taken for cylinders (scripts/bench/bench_unet.py has the run).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from data.classes import COLORS, MATERIALS, NUM_CLASSES, SHAPES, class_parts
from data.format import HEIGHT
from engine.registry import register_model
from Unets.objects import ObjectClassifier
from Unets.postprocess import color_logits


NORMS = ("group", "batch")


def _norm(channels: int, kind: str = "group") -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    # Up to 8 groups of at least 4 channels (base_channels=8 gives 2 groups at the first level).
    groups = min(8, max(1, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


class DoubleConv(nn.Sequential):
    """(3x3 conv -> norm -> ReLU) twice; keeps H, W. norm: GroupNorm ("group") or BatchNorm ("batch")."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "group"):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            _norm(out_channels, norm),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            _norm(out_channels, norm),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """2x2 max-pool (halves H, W, flooring odd sizes), then DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "group"):
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, norm))


class Up(nn.Module):
    """Transposed conv doubles H, W and halves the channels; pad to the skip's size, concatenate, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "group"):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels // 2 + out_channels, out_channels, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]  # 0 or 1 after an odd size
        if dh or dw:
            x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        return self.conv(torch.cat([skip, x], dim=1))


# Share of background pixels in the masks, real samples and synthetic data alike (about 0.94).
BACKGROUND_SHARE = 0.94


class OutConv(nn.Conv2d):
    """1x1 conv from features to class logits.

    Its bias starts at the log of the class prior (background BACKGROUND_SHARE, objects sharing the
    rest), so training starts from "mostly background" instead of spending its first hundreds of
    steps growing the background logit from a uniform guess.
    """

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__(in_channels, num_classes, kernel_size=1)
        with torch.no_grad():
            self.bias.fill_(math.log((1 - BACKGROUND_SHARE) / (num_classes - 1)))
            self.bias[0] = math.log(BACKGROUND_SHARE)  # class 0 is the background

    def colors(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 9, H, W) logits of background and the 8 colors, each the log-sum-exp of its classes'."""
        return color_logits(self(x))


class FactoredOutConv(nn.Module):
    """1x1 conv to part logits, summed into the 49 class logits: background has its own logit, and
    object (shape, material, color) gets object + shape[s] + material[m] + color[c].

    Every object pixel then teaches the color, material and shape of 16, 24 and 8 classes at once,
    instead of one class of 48 that a few train videos may never show; the argmax is the best
    color, material and shape taken apart. Color is learned first, material and shape later; a flat
    49-class head learns all three more slowly. Biases start at the class prior like OutConv's.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        parts = 2 + len(SHAPES) + len(MATERIALS) + len(COLORS)  # background, object, then the parts
        self.conv = nn.Conv2d(in_channels, parts, kernel_size=1)
        ids = torch.tensor([
            [SHAPES.index(s), MATERIALS.index(m), COLORS.index(c)]
            for s, m, c in (class_parts(i) for i in range(1, NUM_CLASSES))
        ])  # (48, 3): each object class's shape, material and color index
        first = 2
        self.register_buffer("shape_index", ids[:, 0] + first, persistent=False)
        self.register_buffer("material_index", ids[:, 1] + first + len(SHAPES), persistent=False)
        self.register_buffer("color_index", ids[:, 2] + first + len(SHAPES) + len(MATERIALS), persistent=False)
        self.part_starts = (first, first + len(SHAPES), first + len(SHAPES) + len(MATERIALS))  # shapes, materials, colors
        with torch.no_grad():
            self.conv.bias.zero_()
            self.conv.bias[0] = math.log(BACKGROUND_SHARE)
            self.conv.bias[1] = math.log((1 - BACKGROUND_SHARE) / (NUM_CLASSES - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.conv(x)  # (B, parts, H, W)
        objects = p[:, 1:2] + p[:, self.shape_index] + p[:, self.material_index] + p[:, self.color_index]
        return torch.cat([p[:, :1], objects], dim=1)  # (B, 49, H, W)

    def colors(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 9, H, W) logits of background and the 8 colors: each color's the log-sum-exp of its 6 classes',
        which factor: object + color[c] + logsumexp(shape) + logsumexp(material). The same as
        Unets/postprocess.py: color_logits of forward's 49 logits (a test checks it), without making them."""
        p = self.conv(x)
        s, m, c = self.part_starts
        shapes, materials = p[:, s:m].logsumexp(dim=1, keepdim=True), p[:, m:c].logsumexp(dim=1, keepdim=True)
        return torch.cat([p[:, :1], p[:, 1:2] + shapes + materials + p[:, c:c + len(COLORS)]], dim=1)


HEADS = ("factored", "flat")
# What UNet() builds and what Unets/train.py's flags default to (one source of the model's defaults).
DEFAULT = {"base_channels": 16, "head": "factored"}


@register_model("unet", train_script="Unets/train.py")
class UNet(nn.Module):
    """frames (B, in_channels, H, W) float in [0, 1] -> logits (B, num_classes, H, W).

    head: "factored" (FactoredOutConv, 49 classes only) or "flat" (OutConv, one logit per class).
    coords: append the row channel (see the module's docstring): forward(x, top) with top (B,) the
    first row of each crop in its frame (None: whole frames, top 0); frames are HEIGHT rows tall.
    crop_size: the size of the object-centred crops it is trained on (0: whole frames). The network
    does not use it; segmentation does (Unets/segment.py: segment re-segments each object in a crop
    of this size, as training saw it), so it travels in the config with the weights.
    object_head: the width of the object head (Unets/objects.py: ObjectClassifier; 0: none), which decides
    each segmented object's shape and material from a window around it at full resolution.
    `config` holds the constructor's arguments; checkpoints store it as model_config so a checkpoint
    is rebuilt from its path alone (see engine/registry.py).
    """

    def __init__(self, base_channels: int = DEFAULT["base_channels"], in_channels: int = 3, num_classes: int = NUM_CLASSES,
                 head: str = DEFAULT["head"], coords: bool = True, crop_size: int = 0, norm: str = "group", scale: int = 1,
                 object_head: int = 0):
        super().__init__()
        if base_channels < 1 or in_channels < 1 or num_classes < 2:
            raise ValueError(
                f"UNet needs base_channels >= 1, in_channels >= 1, num_classes >= 2; got "
                f"{base_channels}, {in_channels}, {num_classes}"
            )
        if head not in HEADS or (head == "factored" and num_classes != NUM_CLASSES):
            raise ValueError(f"UNet head must be one of {HEADS} (factored needs the {NUM_CLASSES} classes); "
                             f"got {head!r} with {num_classes} classes")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"UNet scale must be an int >= 1, got {scale!r}")
        if norm not in NORMS:
            raise ValueError(f"UNet norm must be one of {NORMS}, got {norm!r}")
        if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 0:
            raise ValueError(f"UNet crop_size must be an int >= 0, got {crop_size!r}")
        self.config = {"base_channels": base_channels, "in_channels": in_channels, "num_classes": num_classes,
                       "head": head, "coords": coords, "crop_size": crop_size}
        if norm != "group":  # only then: the configs (and resumes) of earlier GroupNorm checkpoints stay as they were
            self.config["norm"] = norm
        if scale != 1:
            self.config["scale"] = scale
        if isinstance(object_head, bool) or not isinstance(object_head, int) or object_head < 0:
            raise ValueError(f"UNet object_head must be an int >= 0 (its width; 0: none), got {object_head!r}")
        if object_head:
            self.config["object_head"] = object_head
        self.scale = scale
        self.coords = coords
        c = base_channels
        self.inc = DoubleConv(in_channels + int(coords), c, norm)
        self.down1 = Down(c, 2 * c, norm)
        self.down2 = Down(2 * c, 4 * c, norm)
        self.down3 = Down(4 * c, 8 * c, norm)
        self.down4 = Down(8 * c, 16 * c, norm)
        self.up1 = Up(16 * c, 8 * c, norm)
        self.up2 = Up(8 * c, 4 * c, norm)
        self.up3 = Up(4 * c, 2 * c, norm)
        self.up4 = Up(2 * c, c, norm)
        self.outc = FactoredOutConv(c) if head == "factored" else OutConv(c, num_classes)
        # each object's shape and material from a window around it (Unets/objects.py), 49 classes only
        if object_head and num_classes != NUM_CLASSES:
            raise ValueError(f"UNet object_head needs the {NUM_CLASSES} classes, got {num_classes}")
        self.objects = ObjectClassifier(object_head, lambda ch: _norm(ch, norm)) if object_head else None

    def row_channel(self, x: torch.Tensor, top=None) -> torch.Tensor:
        """(B, 1, H, W): each pixel's row in its whole frame, mapped from 0..HEIGHT-1 to -1..1."""
        B, _, H, W = x.shape
        rows = torch.arange(H, device=x.device, dtype=x.dtype).expand(B, H)  # (B, H)
        if top is not None:
            rows = rows + torch.as_tensor(top, device=x.device, dtype=x.dtype).reshape(B, 1)
        rows = rows * (2 / (HEIGHT - 1)) - 1
        return rows[:, None, :, None].expand(B, 1, H, W)

    def forward(self, x: torch.Tensor, top=None, objects=None, colors: bool = False):
        """Logits (B, num_classes, H, W), or with colors=True (B, 9, H, W) of background and the 8 colors
        (Unets/postprocess.py: CLASS_COLOR order; computed at the network's resolution, then upsampled).
        With objects = (windows, extras) of Unets/objects.py, also the object head's (N, KINDS) logits of
        them: (logits, object logits), in one call, so that DDP sees every part."""
        if objects is not None:
            if self.objects is None:
                raise ValueError("objects only apply to a UNet built with object_head > 0")
            return self.forward(x, top, colors=colors), self.objects(*objects)
        if self.coords:
            x = torch.cat([x, self.row_channel(x, top)], dim=1)
        elif top is not None:
            raise ValueError("top (crop offsets) only applies to a UNet built with coords=True")
        size = x.shape[-2:]
        if self.scale > 1:  # the network runs at 1/scale of the input's resolution (mean of each scale x scale block)
            x = F.avg_pool2d(x, self.scale, ceil_mode=True)
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        x = self.outc.colors(x) if colors else self.outc(x)
        if self.scale > 1:  # logits back to the input's size: bilinear, so boundaries fall between coarse pixels
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x
