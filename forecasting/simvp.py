"""SimVP with the gated spatio-temporal attention translator: the mask-space forecaster of the field.

Written from the papers (SimVP: Gao et al., CVPR 2022; SimVP v2 / gSTA: Tan et al., 2022), at the
scale of this task's masks:

    masks 1..11 (class ids, B x 11 x H x W)
      --one-hot, average-pooled by `downsample`-->   x (B, 11, 49, h, w)  class fractions (h = H/d)
      --[embed > 0: a learned 49 -> embed map]-->     (an embedding of the ids, pooled alike: a 1x1 conv)
      encoder: N_S strided conv layers, per frame     (B*11, hid_S, h/s, w/s), s = 2**(N_S // 2)
      translator: the 11 frames stacked as channels   (B, 11*hid_S, h/s, w/s)
                  -> N_T gSTA blocks                  (B, out_frames*hid_S, h/s, w/s)
      decoder: N_S conv layers (pixel-shuffle up), per output frame, plus the encoder's first-layer
               features of the matching input frame (the skip)
      readout: 1x1 conv to 49 class logits           (B, out_frames, 49, h, w)

A gSTA block (SimVP v2): x + s1 * attention(norm(x)), then x + s2 * mlp(norm(x)), with s1, s2 per-channel
layer scales starting at 0.01. The attention is a large-kernel one decomposed into a 5x5 depthwise conv and
a 7x7 depthwise conv of dilation 3 (a 21x21 field), whose 1x1 conv gives two halves f, g and the output
sigmoid(g) * f (the gate); the MLP is 1x1, depthwise 3x3, GELU, 1x1. Where the block's input and output
widths differ (the first and last blocks) a 1x1 conv maps them.

out_frames: 11 (default, SimVP's one shot) predicts frames 12-22 at once; a smaller K predicts the next K
frames of the 11 given and is rolled forward on its own predictions until frame 22 (the second-place
entry of the competition used K = 1). In a rollout each predicted frame is fed back as the one-hot of
its argmax at the network's resolution (what a mask of that frame would give). `rollout` does it;
forecasting/train_simvp.py trains with scheduled sampling over these steps.

Deviations from the papers, each for a reason of this repository: the input is class fractions (or a learned
embedding of them), not RGB; logits at H/d x W/d are bilinearly upsampled to the frame for frame 22; no
stochastic depth (its per-process random draws would break "2 processes equal 1"); translator_norm
"group" (GroupNorm, one group) is offered beside the published "batch" because the CPU preset's batches are
small; and the copy prior (copy_prior > 0, every preset): each predicted frame's logits are scale x the class
fractions of the window's last frame plus the decoder's output, whose readout starts at zero, and frame 22 at
full resolution keeps frame 11's one-hot detail (full_resolution), so that the untrained model is "copy frame
11" exactly and the network learns only the change. Without it a small model on a small budget sits for its
first hundred steps predicting background everywhere (90%+ of the pixels), far below copying.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from data.classes import NUM_CLASSES
from data.format import NUM_INPUT_FRAMES
from engine.registry import register_model

FUTURE_FRAMES = 11  # frames 12..22
NORMS = ("batch", "group")

# Constructor arguments by preset. DEFAULT (= "cpu") is what SimVP() builds and forecasting/train_simvp.py's
# flags default to.
PRESETS = {
    # A few CPU-minutes: quarter resolution (40 x 60, the translator at 20 x 30), narrow, one shot.
    "cpu": {"downsample": 4, "hid_S": 16, "hid_T": 64, "N_S": 2, "N_T": 4, "out_frames": 11, "embed": 0,
            "translator_norm": "group", "copy_prior": 6.0},
    # The published gSTA configuration (OpenSTL's Moving MNIST SimVP-gSTA: hid_S 64, hid_T 512, N_S 4, N_T 8),
    # at full resolution, one shot: for a GPU.
    "published": {"downsample": 1, "hid_S": 64, "hid_T": 512, "N_S": 4, "N_T": 8, "out_frames": 11, "embed": 0,
                  "translator_norm": "batch", "copy_prior": 6.0},
    # The same network as the competition's second-place entry used it: a learned embedding of the 49 classes,
    # one frame at a time, rolled forward 11 times (train with --sampling_max > 0): for a GPU.
    "second_place": {"downsample": 1, "hid_S": 64, "hid_T": 512, "N_S": 4, "N_T": 8, "out_frames": 1, "embed": 32,
                     "translator_norm": "batch", "copy_prior": 6.0},
}
DEFAULT = PRESETS["cpu"]


def class_fractions(masks: torch.Tensor, num_classes: int = NUM_CLASSES, downsample: int = 1) -> torch.Tensor:
    """(B, T, H, W) class ids -> (B, T, C, H/d, W/d) float: the fraction of each d x d cell in each class
    (the one-hot masks, average-pooled), counted without building the full-resolution one-hot."""
    B, T, H, W = masks.shape
    d = downsample
    h, w = H // d, W // d
    ids = masks.long().reshape(B * T, h, d, w, d).permute(0, 1, 3, 2, 4).reshape(B * T, h * w, d * d)
    index = ids * (h * w) + torch.arange(h * w, device=masks.device).unsqueeze(1)  # class * cells + cell
    out = torch.zeros(B * T, num_classes * h * w, device=masks.device)
    out.scatter_add_(1, index.reshape(B * T, -1),
                     torch.full(index.shape, 1.0 / (d * d), device=masks.device).reshape(B * T, -1))
    return out.reshape(B, T, num_classes, h, w)


def one_hot_argmax(logits: torch.Tensor) -> torch.Tensor:
    """(..., C, h, w) logits -> the one-hot of their argmax, same shape (a predicted frame fed back as a mask)."""
    return F.one_hot(logits.argmax(dim=-3), logits.shape[-3]).movedim(-1, -3).to(logits.dtype)


def _positive(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class ConvNormAct(nn.Module):
    """3x3 conv (stride 2 to go down; or to 4x the channels then pixel shuffle to go up), GroupNorm, SiLU."""

    def __init__(self, c_in: int, c_out: int, down: bool = False, up: bool = False):
        super().__init__()
        if up:
            self.conv = nn.Sequential(nn.Conv2d(c_in, c_out * 4, 3, padding=1), nn.PixelShuffle(2))
        else:
            self.conv = nn.Conv2d(c_in, c_out, 3, stride=2 if down else 1, padding=1)
        self.norm = nn.GroupNorm(2 if c_out % 2 == 0 else 1, c_out)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


def _strided(num_layers: int) -> list:
    """Which encoder layers halve the size: every second one, starting with the second (SimVP's pattern)."""
    return [i % 2 == 1 for i in range(num_layers)]


class Encoder(nn.Module):
    def __init__(self, c_in: int, hid: int, num_layers: int):
        super().__init__()
        down = _strided(num_layers)
        self.layers = nn.ModuleList([ConvNormAct(c_in if i == 0 else hid, hid, down=d) for i, d in enumerate(down)])

    def forward(self, x):  # (N, c_in, h, w) -> (N, hid, h/s, w/s), and the first layer's output (N, hid, h, w)
        skip = x = self.layers[0](x)
        for layer in self.layers[1:]:
            x = layer(x)
        return x, skip


class Decoder(nn.Module):
    def __init__(self, hid: int, c_out: int, num_layers: int):
        super().__init__()
        up = _strided(num_layers)[::-1]
        self.layers = nn.ModuleList([ConvNormAct(hid, hid, up=u) for u in up])
        self.readout = nn.Conv2d(hid, c_out, 1)

    def forward(self, x, skip):  # (N, hid, h/s, w/s), (N, hid, h, w) -> (N, c_out, h, w)
        for layer in self.layers[:-1]:
            x = layer(x)
        return self.readout(self.layers[-1](x + skip))


class GatedAttention(nn.Module):
    """SimVP v2's spatial attention: 1x1, GELU, the gated large-kernel unit, 1x1, plus the input."""

    def __init__(self, dim: int, kernel_size: int = 21, dilation: int = 3):
        super().__init__()
        near = 2 * dilation - 1  # 5: the dense part of the field
        far = kernel_size // dilation + (kernel_size // dilation % 2 - 1)  # 7, dilated by 3: the rest of 21
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()
        self.local = nn.Conv2d(dim, dim, near, padding=near // 2, groups=dim)
        self.wide = nn.Conv2d(dim, dim, far, padding=dilation * (far - 1) // 2, groups=dim, dilation=dilation)
        self.gate = nn.Conv2d(dim, 2 * dim, 1)
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        y = self.act(self.proj_in(x))
        f, g = self.gate(self.wide(self.local(y))).chunk(2, dim=1)
        return x + self.proj_out(torch.sigmoid(g) * f)


class MixMLP(nn.Module):
    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
                                 nn.GELU(), nn.Conv2d(hidden, dim, 1))

    def forward(self, x):
        return self.net(x)


def _norm(kind: str, dim: int) -> nn.Module:
    return nn.BatchNorm2d(dim) if kind == "batch" else nn.GroupNorm(1, dim)


class GSTABlock(nn.Module):
    """One gSTA block at width c_in, then a 1x1 conv to c_out where they differ."""

    def __init__(self, c_in: int, c_out: int, norm: str, mlp_ratio: float = 4.0, layer_scale: float = 1e-2):
        super().__init__()
        self.norm1, self.attn = _norm(norm, c_in), GatedAttention(c_in)
        self.norm2, self.mlp = _norm(norm, c_in), MixMLP(c_in, mlp_ratio)
        self.scale1 = nn.Parameter(torch.full((c_in, 1, 1), layer_scale))
        self.scale2 = nn.Parameter(torch.full((c_in, 1, 1), layer_scale))
        self.reduce = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        x = x + self.scale1 * self.attn(self.norm1(x))
        x = x + self.scale2 * self.mlp(self.norm2(x))
        return self.reduce(x)


class Translator(nn.Module):
    """N_T gSTA blocks over the time-stacked features: c_in -> hid -> ... -> hid -> c_out (N_T >= 2)."""

    def __init__(self, c_in: int, hid: int, c_out: int, num_blocks: int, norm: str):
        super().__init__()
        widths = [c_in] + [hid] * (num_blocks - 1) + [c_out]
        self.blocks = nn.Sequential(*[GSTABlock(a, b, norm) for a, b in zip(widths[:-1], widths[1:])])

    def forward(self, x):
        return self.blocks(x)


@register_model("simvp", train_script="forecasting/train_simvp.py")
class SimVP(nn.Module):
    """Class fractions of frames 1-11 (B, 11, 49, h, w) -> logits of the next out_frames frames (B, K, 49, h, w).

    downsample: the network runs at H/d x W/d of the masks (h and w must divide by 2**(N_S // 2)).
    hid_S, N_S: width and layers of the spatial encoder and decoder; hid_T, N_T: of the translator.
    out_frames: frames predicted per step (11: frames 12-22 at once); embed: width of a learned embedding of
    the 49 classes (0: the one-hot fractions go straight in); translator_norm: "batch" or "group".
    """

    def __init__(self, num_classes: int = NUM_CLASSES, in_frames: int = NUM_INPUT_FRAMES,
                 downsample: int = DEFAULT["downsample"], hid_S: int = DEFAULT["hid_S"], hid_T: int = DEFAULT["hid_T"],
                 N_S: int = DEFAULT["N_S"], N_T: int = DEFAULT["N_T"], out_frames: int = DEFAULT["out_frames"],
                 embed: int = DEFAULT["embed"], translator_norm: str = DEFAULT["translator_norm"],
                 copy_prior: float = DEFAULT["copy_prior"]):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_frames", in_frames), ("downsample", downsample),
                            ("hid_S", hid_S), ("hid_T", hid_T), ("N_S", N_S), ("out_frames", out_frames)):
            _positive(value, name)
        if not isinstance(N_T, int) or N_T < 2:
            raise ValueError(f"N_T must be an integer >= 2 (the first and last blocks map widths), got {N_T!r}")
        if not 1 <= out_frames <= in_frames:
            raise ValueError(f"out_frames must be in 1..in_frames ({in_frames}), got {out_frames}")
        if not isinstance(embed, int) or embed < 0:
            raise ValueError(f"embed must be an integer >= 0, got {embed!r}")
        if translator_norm not in NORMS:
            raise ValueError(f"translator_norm must be one of {NORMS}, got {translator_norm!r}")
        if isinstance(copy_prior, bool) or not isinstance(copy_prior, (int, float)) or not copy_prior >= 0:
            raise ValueError(f"copy_prior must be a number >= 0 (0: no prior), got {copy_prior!r}")
        self.config = {"num_classes": num_classes, "in_frames": in_frames, "downsample": downsample, "hid_S": hid_S,
                       "hid_T": hid_T, "N_S": N_S, "N_T": N_T, "out_frames": out_frames, "embed": embed,
                       "translator_norm": translator_norm, "copy_prior": float(copy_prior)}
        self.num_classes, self.in_frames, self.downsample = num_classes, in_frames, downsample
        self.out_frames, self.hid_S = out_frames, hid_S
        self.multiple = downsample * 2 ** (N_S // 2)  # the masks' sides must divide by this
        # a learned embedding of ids, pooled over d x d cells, is a linear map of the class fractions
        self.embed = nn.Conv2d(num_classes, embed, 1, bias=False) if embed else nn.Identity()
        self.encoder = Encoder(embed or num_classes, hid_S, N_S)
        self.translator = Translator(in_frames * hid_S, hid_T, out_frames * hid_S, N_T, translator_norm)
        self.decoder = Decoder(hid_S, num_classes, N_S)
        if copy_prior:
            # The copy prior: logits = scale x (the window's last frame) + the decoder's output, which starts at
            # zero, so that the untrained model predicts "copy the last frame" and learns only what changes.
            # A parameter (not a buffer), so that a checkpoint made without the prior refuses to load into it.
            self.copy_scale = nn.Parameter(torch.tensor(float(copy_prior)))
            nn.init.zeros_(self.decoder.readout.weight)
            nn.init.zeros_(self.decoder.readout.bias)
        else:
            self.copy_scale = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C, h, w) class fractions (or one-hot frames) -> logits (B, K, C, h, w) of the next K frames.
        Training calls the model itself so that DDP's gradient hooks run."""
        B, T, C, h, w = x.shape
        if T != self.in_frames or C != self.num_classes:
            raise ValueError(f"input must be (B, {self.in_frames}, {self.num_classes}, h, w), got {tuple(x.shape)}")
        K = self.out_frames
        z, skip = self.encoder(self.embed(x.reshape(B * T, C, h, w)))  # (B*T, hid_S, h', w'), (B*T, hid_S, h, w)
        z = self.translator(z.reshape(B, T * self.hid_S, *z.shape[-2:]))  # (B, K*hid_S, h', w')
        skip = skip.reshape(B, T, *skip.shape[1:])[:, T - K:].reshape(B * K, *skip.shape[1:])  # the last K frames'
        out = self.decoder(z.reshape(B * K, self.hid_S, *z.shape[-2:]), skip)  # (B*K, C, h, w)
        out = out.reshape(B, K, self.num_classes, h, w)
        if self.copy_scale is not None:
            out = out + self.copy_scale * x[:, -1:]  # each of the K frames starts as a copy of the last input frame
        return out

    def inputs(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W) class ids -> (B, T, C, H/d, W/d) class fractions, the network's input (sizes checked)."""
        if masks.dim() != 4 or masks.is_floating_point():
            raise ValueError(f"masks must be (B, T, H, W) class ids (uint8/int64), got {masks.dtype} {tuple(masks.shape)}")
        H, W = masks.shape[-2:]
        if H % self.multiple or W % self.multiple:
            raise ValueError(f"mask size {H}x{W} must divide by {self.multiple} (downsample x 2**(N_S // 2))")
        return class_fractions(masks, self.num_classes, self.downsample)

    @property
    def steps(self) -> int:
        """Steps of out_frames frames from frame 11 to frame 22."""
        return math.ceil(FUTURE_FRAMES / self.out_frames)

    def advance(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The next step's input: the window x (B, T, C, h, w) moved on by the K frames just predicted (fed back
        as the one-hot of their argmax)."""
        return torch.cat([x, one_hot_argmax(logits).to(x.dtype)], dim=1)[:, -self.in_frames:]

    def rollout(self, x: torch.Tensor, steps: int = None) -> torch.Tensor:
        """x (B, T, C, h, w) -> logits (B, steps * K, C, h, w) of the frames after it, each step fed the window
        moved on by its own predictions (one step when out_frames is 11)."""
        outputs = []
        for step in range(self.steps if steps is None else steps):
            logits = self(x)
            outputs.append(logits)
            if step + 1 < (self.steps if steps is None else steps):
                x = self.advance(x, logits.detach())
        return torch.cat(outputs, dim=1)

    def upsample(self, logits: torch.Tensor, size) -> torch.Tensor:
        """(B, C, h, w) logits -> (B, C, H, W), bilinear (nothing to do at downsample 1)."""
        if self.downsample == 1:
            return logits
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)

    def full_resolution(self, logits: torch.Tensor, last_masks: torch.Tensor, last_fractions: torch.Tensor):
        """A predicted frame's logits (B, C, h, w) -> (B, C, H, W): upsampled, and, for a one-shot model with the
        copy prior, plus the prior's detail lost to the pooling: scale x (the one-hot of the last input frame,
        last_masks (B, H, W) ids, minus its upsampled class fractions last_fractions (B, C, h, w)). The logits
        are then scale x one-hot(frame 11) + the upsampled learned change, so the untrained model reproduces
        the copy of frame 11 pixel for pixel rather than its blurred quarter-resolution version. A rolled-forward
        model's last window frame is its own low-resolution prediction, which has no detail to add."""
        out = self.upsample(logits.float(), last_masks.shape[-2:])
        if self.copy_scale is None or self.downsample == 1 or self.steps != 1:
            return out
        onehot = F.one_hot(last_masks.long(), self.num_classes).permute(0, 3, 1, 2).to(out.dtype)  # (B, C, H, W)
        return out + self.copy_scale.float() * (onehot - self.upsample(last_fractions.float(), last_masks.shape[-2:]))

    def frame22_logits(self, masks: torch.Tensor) -> torch.Tensor:
        """Input masks (B, 11, H, W) ids -> frame 22's logits (B, C, H, W) at full resolution."""
        x = self.inputs(masks)
        logits = self.rollout(x)  # (B, steps*K, C, h, w): frame 12 onwards
        return self.full_resolution(logits[:, FUTURE_FRAMES - 1], masks[:, -1], x[:, -1])

    @torch.no_grad()
    def predict(self, masks: torch.Tensor) -> torch.Tensor:
        """Frame 22's class ids (B, H, W) from the input masks (B, 11, H, W)."""
        return self.frame22_logits(masks).argmax(dim=1)
