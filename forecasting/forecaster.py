"""The mask forecaster: the Reconstructor family (model.py) reused in mask space.

    masks 1..11 (class ids) --one-hot, avg-pooled by `downsample`--> Reconstructor (49 in, 49 out,
        output_mode "direct", logits) --bilinear up to H x W--> delta
    logits of frames 12..22 = input_scale x one-hot(start mask of that frame) + delta
                                                                              (residual, at full resolution)
    start mask: start="extrapolate" (default) the objects of mask 11 moved along their last velocity,
        slowing down and bouncing off each other (forecasting/motion.py, `motion` as there); start="copy"
        mask 11 itself.

Why this shape:
- Cross-entropy over the 49 classes on logits, never a regression of class ids.
- The residual is taken at full resolution, outside the Reconstructor: at initialisation (the
  head's last convolution is zero) the forecaster predicts exactly its start mask, with
  probability softmax(input_scale) ~ 0.99 on its class, so training starts from that baseline and
  only learns what it misses (collisions, exits, slowing down). Sharp edges survive the reduced
  resolution inside. The extrapolated start is the stronger baseline on synthetic data (the README's
  tables, scripts/reference_scores.py: the copy against the motion model, with true masks).
- `downsample` (2 = 80 x 120) divides the cost by downsample**2; objects move ~2 px per frame, so
  little is lost, and the ConvLSTM sits at 1/(downsample * 2**(levels-1)) of the frame.
- feedback=True: after the first future step the ConvLSTM is fed the encoding of the frame
  before (the truth when training with teacher forcing, its own predicted class probabilities in
  a rollout, a mix under scheduled sampling: see `forward`); feedback=False rolls forward with no
  input, exactly as the Reconstructor does.

The model is a Reconstructor inside (`self.net`); nothing of the encoder, ConvLSTM or decoder is
copied here. `config` holds the constructor's arguments; its registered kind "forecaster" is checked when a
checkpoint is loaded, so a U-Net or reconstructor checkpoint passed by mistake is refused.
"""
import torch
import torch.nn.functional as F
from torch import nn

from data.classes import NUM_CLASSES
from forecasting.motion import Motion, extrapolate_sequence, future_horizons
from engine.registry import register_model
from SSL_convLSTM_Reconstructor.convlstm import positive_int
from SSL_convLSTM_Reconstructor.model import Reconstructor

# Constructor arguments of tested sizes; DEFAULT is what MaskForecaster() builds and what
# forecasting/train_forecaster.py's flags default to (one source of the model's defaults).
PRESETS = {
    # ConvLSTM at 1/16 of the frame (10 x 15 cells for 160 x 240): the CPU quickstart and benchmark.
    "small": {"enc_channels": [8, 16, 32], "hidden_channels": [32], "kernel_size": 3, "downsample": 4},
    # ConvLSTM at 1/8 (20 x 30) with 5 x 5 kernels (16 px a step): for a GPU.
    "medium": {"enc_channels": [16, 32, 64], "hidden_channels": [64], "kernel_size": 5, "downsample": 2},
}
DEFAULT = PRESETS["medium"]


def class_fractions(masks: torch.Tensor, num_classes: int = NUM_CLASSES, downsample: int = 1) -> torch.Tensor:
    """(B, T, H, W) class ids -> (B, T, C, H/d, W/d) float: the fraction of each d x d cell in each class
    (the one-hot masks, average-pooled), counted without building the full-resolution one-hot."""
    B, T, H, W = masks.shape
    d = downsample
    h, w = H // d, W // d
    ids = masks.long().reshape(B * T, h, d, w, d).permute(0, 1, 3, 2, 4).reshape(B * T, h * w, d * d)
    index = ids * (h * w) + torch.arange(h * w, device=masks.device).unsqueeze(1)  # class * cells + cell
    out = torch.zeros(B * T, num_classes * h * w, device=masks.device)
    out.scatter_add_(1, index.reshape(B * T, -1), torch.full(index.shape, 1.0 / (d * d), device=masks.device).reshape(B * T, -1))
    return out.reshape(B, T, num_classes, h, w)


STARTS = ("extrapolate", "copy")


@register_model("forecaster", train_script="forecasting/train_forecaster.py")
class MaskForecaster(nn.Module):
    """Masks of frames 1-11 (class ids) -> logits of frames 12-22, (B, K, num_classes, H, W).

    num_classes: 49. enc_channels, hidden_channels, kernel_size, future_steps, skip, norm: the inner
    Reconstructor's (see its docstring; future_steps=11 gives one step per frame 12..22).
    downsample: the inner network runs at H/downsample x W/downsample (H/d and W/d must divide by
        2**(len(enc_channels) - 1)).
    input_scale: the logit of the start mask's class in the residual (its confidence at start).
    feedback: feed the ConvLSTM the frame before at each future step (see the module docstring).
    start: "extrapolate" or "copy", the mask each future step's residual starts from; motion: the
        extrapolation's, a forecasting/motion.py Motion or its config (None: Motion(), plain image-space motion).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, enc_channels=tuple(DEFAULT["enc_channels"]),
                 hidden_channels=tuple(DEFAULT["hidden_channels"]), kernel_size: int = DEFAULT["kernel_size"],
                 future_steps: int = 11, skip: bool = True, norm: str = "group", downsample: int = DEFAULT["downsample"], input_scale: float = 5.0, feedback: bool = False, start: str = "extrapolate",
                 motion: dict = None):
        super().__init__()
        num_classes = positive_int(num_classes, "num_classes")
        downsample = positive_int(downsample, "downsample")
        if not isinstance(input_scale, (int, float)) or isinstance(input_scale, bool) or input_scale < 0:
            raise ValueError(f"input_scale must be a number >= 0, got {input_scale!r}")
        if not isinstance(feedback, bool):
            raise ValueError(f"feedback must be True or False, got {feedback!r}")
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        motion = Motion.from_config(motion)
        self.net = Reconstructor(in_channels=num_classes, out_channels=num_classes, enc_channels=enc_channels,
                                 hidden_channels=hidden_channels, kernel_size=kernel_size, future_steps=future_steps,
                                 skip=skip, output_mode="direct", output_activation="none", norm=norm)
        nn.init.zeros_(self.net.head.gen.weight)  # delta = 0 at start: the forecaster copies frame 11
        nn.init.zeros_(self.net.head.gen.bias)
        inner = self.net.config
        self.config = {"num_classes": num_classes, "enc_channels": inner["enc_channels"],
                       "hidden_channels": inner["hidden_channels"], "kernel_size": kernel_size,
                       "future_steps": inner["future_steps"], "skip": skip, "norm": norm, "downsample": downsample,
                       "input_scale": float(input_scale), "feedback": feedback, "start": start,
                       "motion": motion.to_config()}
        self.num_classes, self.downsample, self.input_scale = num_classes, downsample, float(input_scale)
        self.future_steps, self.feedback, self.start, self.motion = inner["future_steps"], feedback, start, motion

    def _check(self, masks: torch.Tensor, what: str = "masks") -> None:
        if masks.dim() != 4 or masks.is_floating_point():
            raise ValueError(f"{what} must be (B, T, H, W) class ids (uint8/int64), got {masks.dtype} {tuple(masks.shape)}")
        H, W = masks.shape[-2:]
        m = self.downsample * self.net.multiple
        if H % m or W % m:
            raise ValueError(f"{what} size {H}x{W} must divide by {m} (downsample x 2**(levels-1))")

    def forward(self, masks: torch.Tensor, num_future: int = 1, teacher: torch.Tensor = None,
                sampling_prob: float = 1.0, low_res: bool = False):
        """masks (B, T, H, W) ids of the input frames -> logits (B, num_future, C, H, W) of the last
        num_future of the future_steps frames (the last one is frame 22), at full resolution, or
        (low_res=True) the pair low_res_logits returns, for training.
        Training calls the model itself (not low_res_logits) so that DDP's gradient hooks run."""
        low, start = self.low_res_logits(masks, num_future, teacher, sampling_prob)
        return (low, start) if low_res else self.upsample(low, start)

    def start_masks(self, masks: torch.Tensor, num_future: int = 1) -> torch.Tensor:
        """(B, T, H, W) input ids -> (B, num_future, H, W): the start mask of each of the last num_future
        future steps (step k of future_steps is (k + 1) x 11 / future_steps frames after frame 11)."""
        if self.start == "copy":
            return masks[:, -1:].expand(-1, num_future, -1, -1)
        horizons = future_horizons(num_future, self.future_steps)
        return torch.stack([extrapolate_sequence(m, horizons, self.motion) for m in masks])

    def low_res_logits(self, masks: torch.Tensor, num_future: int = 1, teacher: torch.Tensor = None,
                       sampling_prob: float = 1.0):
        """(logits (B, K, C, H/d, W/d) at the network's resolution, start masks (B, K, H, W) ids).

        Low-resolution logits are input_scale x the start masks' class fractions + delta; `upsample`
        turns them into full-resolution logits with the start masks' sharp edges. Training supervises
        frames 12-21 here (cheap) and frame 22 at full resolution.
        feedback models only: teacher (B, future_steps - 1, H, W), the true (or pseudo-labelled) masks
        of frames 12..21; at each step each video is fed its own prediction with probability
        sampling_prob (detached: scheduled sampling) and the teacher's frame otherwise. Without a
        teacher the rollout feeds its own predictions (inference).
        """
        self._check(masks)
        if not 1 <= num_future <= self.future_steps:
            raise ValueError(f"num_future must be in 1..{self.future_steps} (future_steps), got {num_future}")
        x = class_fractions(masks, self.num_classes, self.downsample)  # (B, T, C, h, w)
        steps = self.future_steps if self.feedback else num_future
        start = self.start_masks(masks, steps)  # (B, steps, H, W)
        ref_low = self.input_scale * class_fractions(start, self.num_classes, self.downsample)  # (B, steps, C, h, w)
        if not self.feedback:
            if teacher is not None:
                raise ValueError("teacher frames are for feedback=True forecasters only")
            delta = self.net(x, num_future=num_future)  # (B, K, C, h, w)
            return ref_low + delta, start
        return self._rollout(x, ref_low, num_future, teacher, sampling_prob), start[:, -num_future:]

    def upsample(self, low: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """Low-resolution logits (B, K, C, h, w) and start masks (B, K, H, W) -> logits (B, K, C, H, W): the
        delta bilinearly upsampled on top of input_scale x one-hot(start) at full resolution."""
        B, K, C = low.shape[:3]
        H, W = start.shape[-2:]
        ref = F.one_hot(start.long(), C).permute(0, 1, 4, 2, 3).to(low.dtype) * self.input_scale  # (B, K, C, H, W)
        if self.downsample == 1:
            return low  # already input_scale x one-hot(start) + delta at full resolution
        ref_low = F.avg_pool2d(ref.flatten(0, 1), self.downsample)  # (B*K, C, h, w)
        delta = low.flatten(0, 1) - ref_low
        delta = F.interpolate(delta, size=(H, W), mode="bilinear", align_corners=False)
        return ref + delta.reshape(B, K, C, H, W)

    def _rollout(self, x, ref_low, num_future, teacher, sampling_prob):
        """Step by step: ConvLSTM step, decode; the next step's input is the encoded frame just predicted."""
        net = self.net
        B, T, C, h, w = x.shape
        if teacher is not None:
            self._check(teacher, "teacher")
            if teacher.shape[1] < self.future_steps - 1:
                raise ValueError(f"teacher needs {self.future_steps - 1} frames (12..21), got {teacher.shape[1]}")
            teacher_x = class_fractions(teacher[:, :self.future_steps - 1], self.num_classes, self.downsample)
        features = net.encoder(x.reshape(B * T, C, h, w))  # [(B*T, C_s, h_s, w_s)]
        bottom = features[-1]
        skips = [f.reshape(B, T, *f.shape[1:])[:, -1] for f in features]  # frame 11 at every scale
        _, state = net.convlstm(bottom.reshape(B, T, *bottom.shape[1:]))
        outputs, inp = [], None
        for k in range(self.future_steps):
            h_k, state = net.convlstm.step(inp, state)
            logits = ref_low[:, k] + net.head(net.decoder(h_k, skips), None)  # (B, C, h, w); "direct" ignores its ref
            if k >= self.future_steps - num_future:
                outputs.append(logits)
            if k == self.future_steps - 1:
                break
            own = logits.detach().softmax(dim=1)  # its own prediction of this frame, as class fractions
            if teacher is not None and sampling_prob < 1.0:
                use_own = (torch.rand(B, 1, 1, 1, device=own.device) < sampling_prob).to(own.dtype)
                own = use_own * own + (1 - use_own) * teacher_x[:, k]
            inp = net.encoder(own)[-1]
        return torch.stack(outputs, dim=1)  # (B, K, C, h, w)

    @torch.no_grad()
    def predict(self, masks: torch.Tensor) -> torch.Tensor:
        """Frame 22's class ids (B, H, W) from the input masks (B, T, H, W)."""
        return self(masks, num_future=1)[:, -1].argmax(dim=1)
