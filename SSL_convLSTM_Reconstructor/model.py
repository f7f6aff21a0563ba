"""Encoder -> ConvLSTM -> decoder: predict frame 22 (and optionally frames 12-21) from frames 1-11.

    frames 1..11 --Encoder, per frame--> bottleneck features --ConvLSTM--> state after frame 11
    state --ConvLSTM, no input, one step per future frame--> h for frames 12..22
    h (last K steps) + frame 11's encoder features at every scale --Decoder--> OutputHead(+ frame 11)
        --> frames 22-K+1..22, (B, K, C, H, W)

The decoder sees frame 11 at every scale (U-Net skips) and the head predicts a change relative
to frame 11 rather than a frame from nothing, so static background and object texture are copied
and the network spends its capacity on what moves. Output modes (OutputHead):
- "residual" (default): out = act(frame11 + delta); with act "clamp" (a straight-through clamp
  to [0, 1]: the forward value is clamped, the gradient passes as if it were not, so no pixel
  gets stuck outside the range). Starts as an exact copy of frame 11.
- "blend": out = m * frame11 + (1 - m) * act(gen), with a per-pixel mask m in (0, 1). Starts as
  (almost) a copy of frame 11 (m ~ 0.95); a convex combination, so it stays in the range of act.
- "direct": out = act(gen): the original design, no reference to frame 11 in the output.
See the Reconstructor docstring for why residual is the default.

Every part takes its channel counts as arguments: the family also takes
49-class inputs (one-hot masks) and outputs (e.g. output_activation "softmax" with "blend", the
result a probability map, or "none" with "residual" or "direct", the result logits).
"""
import math
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from engine.registry import build_model, register_model
from SSL_convLSTM_Reconstructor.convlstm import ConvLSTM, positive_int

OUTPUT_MODES = ("blend", "residual", "direct")
OUTPUT_ACTIVATIONS = ("sigmoid", "clamp", "softmax", "none")
# Which activations make sense with which mode (see the module docstring).
_ALLOWED = {
    "blend": ("sigmoid", "clamp", "softmax"),  # act(gen) must live where the reference frame does
    "residual": ("clamp", "none"),  # sigmoid/softmax of (frame11 + delta) would not start as frame 11
    "direct": OUTPUT_ACTIVATIONS,
}
NORMS = ("group", "none")
REFERENCES = ("frame11", "extrapolated")
BLEND_INIT_LOGIT = 3.0  # sigmoid(3) = 0.95: the blend starts as (almost) a copy of frame 11


# Constructor arguments of two tested sizes; DEFAULT is what Reconstructor() builds and what
# train_reconstructor.py's flags default to (one source of the model's defaults).
PRESETS = {
    # ConvLSTM at 1/4 of the network's input (run at 1/4 resolution by the train script's --downsample 4,
    # a training choice kept out of the model's defaults): the CPU quickstart.
    "small": {"enc_channels": [8, 16, 32], "hidden_channels": [32], "kernel_size": 3},
    # ConvLSTM at 1/8 with 5 x 5 kernels (16 px a step at full resolution): for a GPU.
    "large": {"enc_channels": [32, 64, 128, 128], "hidden_channels": [128, 128], "kernel_size": 5},
}
DEFAULT = PRESETS["small"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)  # batch-size independent (batches are small)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """num_convs x (3x3 conv -> norm -> ReLU); keeps H, W."""

    def __init__(self, in_channels: int, out_channels: int, num_convs: int = 2, norm: str = "group"):
        layers = []
        for i in range(num_convs):
            layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1,
                                 bias=norm == "none"),
                       _norm(norm, out_channels), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class Encoder(nn.Module):
    """Per-frame encoder: a ConvBlock at full resolution, then (2x max-pool -> ConvBlock) per level.

    forward(x (N, C, H, W)) -> [features at 1, 1/2, ..., 1/2**(len(channels)-1) resolution],
    feature s of shape (N, channels[s], H / 2**s, W / 2**s). H and W must divide by 2**(levels-1).
    """

    def __init__(self, in_channels: int, channels: Sequence[int], norm: str = "group"):
        super().__init__()
        self.stages = nn.ModuleList(
            ConvBlock(in_channels if s == 0 else channels[s - 1], channels[s], norm=norm) for s in range(len(channels))
        )

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        features = []
        for s, stage in enumerate(self.stages):
            x = stage(x if s == 0 else F.max_pool2d(x, 2))
            features.append(x)
        return features


class Decoder(nn.Module):
    """Bottleneck features -> full resolution: (bilinear 2x up -> concat skip -> ConvBlock) per level.

    channels: the encoder's widths (the decoder's output at level s has channels[s]);
    bottom_channels: channels of the bottleneck input; skip: concatenate the skip features
    (the encoder's features of one frame, at every level including the bottleneck).
    forward(x (N, bottom_channels, h, w), skips [(N, channels[s], H_s, W_s)]) -> (N, channels[0], H, W)
    """

    def __init__(self, channels: Sequence[int], bottom_channels: int, skip: bool = True, norm: str = "group"):
        super().__init__()
        self.skip = skip
        levels = len(channels)
        # At the bottleneck: merge the ConvLSTM output with the last frame's bottleneck features.
        self.bottom = ConvBlock(bottom_channels + (channels[-1] if skip else 0), channels[-1], num_convs=1, norm=norm)
        self.ups = nn.ModuleList(
            ConvBlock(channels[s + 1] + (channels[s] if skip else 0), channels[s], norm=norm)
            for s in reversed(range(levels - 1))
        )

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.bottom(torch.cat([x, skips[-1]], dim=1) if self.skip else x)
        for up, s in zip(self.ups, reversed(range(len(skips) - 1))):
            x = F.interpolate(x, size=skips[s].shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skips[s]], dim=1) if self.skip else x)
        return x


def clamp_st(x: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Clamp in the forward pass, identity gradient in the backward pass (straight-through)."""
    return x + (x.clamp(low, high) - x).detach()


def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    """The output activation over the channel dimension 1."""
    if activation == "sigmoid":
        return torch.sigmoid(x)
    if activation == "clamp":
        return clamp_st(x)
    if activation == "softmax":
        return torch.softmax(x, dim=1)
    return x


class OutputHead(nn.Module):
    """Features (N, F, H, W) and the reference frame (N, C_out, H, W) -> output (N, C_out, H, W).

    mode "blend": m * ref + (1 - m) * act(gen); "residual": act(ref + gen); "direct": act(gen).
    The last convolutions start at zero so blend and residual start as a copy of the reference.
    """

    def __init__(self, features: int, out_channels: int, mode: str = "blend", activation: str = "sigmoid"):
        super().__init__()
        self.mode, self.activation = mode, activation
        self.gen = nn.Conv2d(features, out_channels, 1)
        self.mask = nn.Conv2d(features, 1, 1) if mode == "blend" else None
        if mode != "direct":
            nn.init.zeros_(self.gen.weight)
            nn.init.zeros_(self.gen.bias)
        if self.mask is not None:
            nn.init.zeros_(self.mask.weight)
            nn.init.constant_(self.mask.bias, BLEND_INIT_LOGIT)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        gen = self.gen(x)
        if self.mode == "blend":
            m = torch.sigmoid(self.mask(x))  # (N, 1, H, W), broadcast over channels
            return m * ref + (1 - m) * activate(gen, self.activation)
        if self.mode == "residual":
            return activate(ref + gen, self.activation)
        return activate(gen, self.activation)


def _int_list(value, what: str) -> List[int]:
    values = [value] if isinstance(value, int) else list(value)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{what} must be a positive int or a non-empty list of them, got {value!r}")
    return values


@register_model("reconstructor", train_script="SSL_convLSTM_Reconstructor/train_reconstructor.py")
class Reconstructor(nn.Module):
    """Frames 1-11 -> frame 22 (and the frames between), RGB in [0, 1] at full resolution.

    Arguments (all recorded in `self.config`, plain data; `Reconstructor.from_config` rebuilds the
    model from a checkpoint's model_config). The defaults are DEFAULT = PRESETS["small"] (the CPU quickstart;
    train_reconstructor.py's flags default to them); PRESETS["large"] is for a GPU.
    in_channels, out_channels: 3 and 3 for RGB (49 and 49 for masks).
    enc_channels: encoder widths per level; len - 1 = number of 2x downsamplings, so [16, 32, 64]
        puts the ConvLSTM at 1/4 resolution (40 x 60 for 160 x 240) and [8, 16, 32, 32] at 1/8.
    hidden_channels: ConvLSTM widths, one per layer, at the bottleneck.
    kernel_size: the ConvLSTM's (odd) kernel; a larger one sees faster motion per step.
    future_steps: ConvLSTM steps rolled forward after the last input frame, with zero input; the
        last one is the target. 11 = one step per frame (frames 12..22, so 12-21 can be
        supervised); 1 = jump straight from frame 11 to frame 22 (the original design).
    skip: give the decoder the last input frame's encoder features at every scale.
    output_mode, output_activation: see the module docstring. Both "residual" and "blend" start
        as a copy of frame 11, the right answer for the static background (most of every frame),
        where "direct" must first learn to draw it. "residual" is the default because it learns
        faster from the start: its output moves linearly with delta, while blend's is a product
        (mask times generated image) that first has to leave the copy.
        "blend" + "softmax" suits class probabilities (masks).
    norm: "group" (GroupNorm, independent of the batch size) or "none".
    reference: what the output's change is relative to. "frame11" (default): the last input frame.
        "extrapolated": a reference frame per predicted frame that the caller passes as forward's
        `ref`, the last frame with its objects moved along their velocities (made by the pipeline from
        the U-Net's masks of frames 10-11). The network then starts from
        objects at their expected place and learns what that misses, instead of having to draw
        moved objects itself (at CPU budgets it only learns to fade them). Not with "direct".
    motion: the config of the motion that made `ref` (plain data, see forecasting/motion.py), recorded so that
        inference makes the same `ref`; the model itself never reads it, and computes no reference (the pipeline
        does: pipeline/references.py, pipeline/predictors.py).
    downsample: run the network on frames area-averaged by this factor (4: 40 x 60 for 160 x 240,
        16 times less compute, what makes CPU training learn motion in minutes). The output stays at
        full resolution: frame 11 plus the network's change bilinearly upsampled (clamped to [0, 1]
        unless output_activation is "none"), so what does not move keeps its full-resolution pixels;
        "direct" output is upsampled as it is.

    forward(frames (B, T, in_channels, H, W) float, num_future=1) -> (B, num_future, out_channels, H, W):
    the last num_future of the future_steps predicted frames, the last being the target (frame 22).
    Any H, W: the frames are padded (replicate) to a multiple of 2**(levels - 1) and the output cropped.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, enc_channels=tuple(DEFAULT["enc_channels"]),
                 hidden_channels=tuple(DEFAULT["hidden_channels"]), kernel_size: int = DEFAULT["kernel_size"], future_steps: int = 11, skip: bool = True,
                 output_mode: str = "residual", output_activation: str = "clamp", norm: str = "group",
                 downsample: int = 1, reference: str = "frame11", motion: dict = None):
        super().__init__()
        downsample = positive_int(downsample, "downsample")
        in_channels = positive_int(in_channels, "in_channels")
        out_channels = positive_int(out_channels, "out_channels")
        enc_channels = _int_list(enc_channels, "enc_channels")
        hidden_channels = _int_list(hidden_channels, "hidden_channels")
        future_steps = positive_int(future_steps, "future_steps")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode {output_mode!r} is not one of {OUTPUT_MODES}")
        if output_activation not in _ALLOWED[output_mode]:
            raise ValueError(
                f"output_activation {output_activation!r} does not go with output_mode {output_mode!r}: "
                f"use one of {_ALLOWED[output_mode]}"
            )
        if output_mode != "direct" and in_channels != out_channels:
            raise ValueError(
                f"output_mode {output_mode!r} refers to the last input frame, so in_channels ({in_channels}) "
                f"must equal out_channels ({out_channels}); use output_mode 'direct' otherwise"
            )
        if norm not in NORMS:
            raise ValueError(f"norm {norm!r} is not one of {NORMS}")
        if reference not in REFERENCES or (reference != "frame11" and output_mode == "direct"):
            raise ValueError(f"reference {reference!r} must be one of {REFERENCES} (and 'frame11' with output_mode 'direct')")
        if motion is not None and not isinstance(motion, dict):
            raise ValueError(f"motion must be a config dict (forecasting/motion.py: Motion.to_config) or None, got {motion!r}")
        if not isinstance(skip, bool):
            raise ValueError(f"skip must be True or False, got {skip!r}")
        if not isinstance(kernel_size, int):  # plain int: the config stays plain data
            raise ValueError(f"kernel_size must be an odd int, got {kernel_size!r}")
        self.config = {
            "in_channels": in_channels, "out_channels": out_channels,
            "enc_channels": enc_channels, "hidden_channels": hidden_channels, "kernel_size": kernel_size,
            "future_steps": future_steps, "skip": skip, "output_mode": output_mode,
            "output_activation": output_activation, "norm": norm, "downsample": downsample, "reference": reference,
            "motion": dict(motion) if motion is not None else None,
        }
        self.downsample = downsample
        self.future_steps = future_steps
        self.multiple = 2 ** (len(enc_channels) - 1)  # H and W must divide by this inside the network
        self.encoder = Encoder(in_channels, enc_channels, norm=norm)
        self.convlstm = ConvLSTM(enc_channels[-1], hidden_channels, kernel_size=kernel_size)
        self.decoder = Decoder(enc_channels, hidden_channels[-1], skip=skip, norm=norm)
        self.head = OutputHead(enc_channels[0], out_channels, output_mode, output_activation)

    @classmethod
    def from_config(cls, config: dict) -> "Reconstructor":
        """Rebuild from a checkpoint's model_config ({"name", "kwargs"}, what engine.model_config writes)."""
        return build_model(config, cls)

    def shrink(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., H, W) frames -> the network's resolution, ceil(H / downsample) x ceil(W / downsample), by area
        averaging: what forward feeds the network, and the targets of a low_res training loss."""
        if self.downsample == 1:
            return frames
        H, W = frames.shape[-2:]
        d = self.downsample
        small = F.interpolate(frames.reshape(-1, *frames.shape[-3:]), size=(-(-H // d), -(-W // d)), mode="area")
        return small.reshape(*frames.shape[:-2], *small.shape[-2:])

    def forward(self, frames: torch.Tensor, num_future: int = 1, low_res: bool = False,
                ref: torch.Tensor = None) -> torch.Tensor:
        """low_res=True: the network's own output, at 1/downsample resolution (B, K, C_out, h, w), compared
        in training with shrink(target): the full-resolution upsampling then costs nothing.
        ref (B, K, C, H, W) float: with reference "extrapolated" (only), the frame each of the K
        predicted frames is a change of."""
        if not frames.is_floating_point():
            raise TypeError(f"frames are {frames.dtype}: convert uint8 frames with data.readers.to_float first")
        if frames.dim() != 5 or frames.shape[2] != self.config["in_channels"]:
            raise ValueError(
                f"frames must be (B, T, {self.config['in_channels']}, H, W), got {tuple(frames.shape)}"
            )
        if not 1 <= num_future <= self.future_steps:
            raise ValueError(f"num_future must be in 1..{self.future_steps} (future_steps), got {num_future}")
        extrapolated = self.config["reference"] == "extrapolated"
        if extrapolated != (ref is not None):
            raise ValueError("this reconstructor's reference is 'extrapolated': pass ref, the extrapolated frames"
                             if extrapolated else "ref is for reconstructors with reference 'extrapolated'")
        B, T, C, H, W = frames.shape
        if ref is not None and tuple(ref.shape) != (B, num_future, C, H, W):
            raise ValueError(f"ref must be (B, num_future, C, H, W) = {(B, num_future, C, H, W)}, got {tuple(ref.shape)}")
        if self.downsample == 1:
            return self._network(frames, num_future, ref)
        small = self.shrink(frames)  # (B, T, C, h, w)
        small_ref = self.shrink(ref) if ref is not None else small[:, -1:]  # (B, K or 1, C, h, w)
        out = self._network(small, num_future, small_ref if ref is not None else None)  # (B, K, C_out, h, w)
        if low_res:
            return out
        direct = self.config["output_mode"] == "direct"
        change = out if direct else out - small_ref  # what the network changed, at its resolution
        up = F.interpolate(change.flatten(0, 1), size=(H, W), mode="bilinear", align_corners=False)
        up = up.reshape(B, num_future, -1, H, W)  # (B*K, C_out, H, W) -> (B, K, C_out, H, W)
        if direct:
            return up
        out = (ref if ref is not None else frames[:, -1:]) + up  # the reference at full resolution plus the change
        return out if self.config["output_activation"] == "none" else clamp_st(out)

    def _network(self, frames: torch.Tensor, num_future: int, ref: torch.Tensor = None) -> torch.Tensor:
        """ref: None (frame 11) or (B, K, C, H, W), the output head's reference for each predicted frame."""
        B, T, C, H, W = frames.shape
        pad_h, pad_w = (-H) % self.multiple, (-W) % self.multiple

        x = frames.reshape(B * T, C, H, W)  # (B*T, C, H, W): the encoder sees frames one by one
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        features = self.encoder(x)  # [(B*T, C_s, H_s, W_s)] for s = 0..levels-1
        bottom = features[-1]
        seq = bottom.reshape(B, T, *bottom.shape[1:])  # (B, T, C_enc, h, w)
        skips = [f.reshape(B, T, *f.shape[1:])[:, -1] for f in features]  # frame 11 at every scale: (B, C_s, H_s, W_s)
        ref11 = x.reshape(B, T, C, *x.shape[-2:])[:, -1]  # padded frame 11: (B, C, H', W')

        _, state = self.convlstm(seq)
        future = []
        for k in range(self.future_steps):
            h, state = self.convlstm.step(None, state)  # no input after the last frame: the state carries the motion
            if k >= self.future_steps - num_future:
                future.append(h)
        h = torch.stack(future, dim=1)  # (B, K, hidden, h, w)
        K = num_future
        h = h.reshape(B * K, *h.shape[2:])  # (B*K, hidden, h, w): decode the K steps as one batch
        skips = [s.repeat_interleave(K, dim=0) for s in skips]  # (B*K, C_s, H_s, W_s)
        if ref is None:
            ref = ref11.repeat_interleave(K, dim=0)  # (B*K, C, H', W')
        else:
            ref = ref.flatten(0, 1)
            if pad_h or pad_w:
                ref = F.pad(ref, (0, pad_w, 0, pad_h), mode="replicate")
        out = self.head(self.decoder(h, skips), ref)  # (B*K, C_out, H', W')
        out = out[..., :H, :W]
        return out.reshape(B, K, *out.shape[1:])  # (B, K, C_out, H, W)
