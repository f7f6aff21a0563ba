"""Train the mask forecaster: masks of frames 1-11 -> class logits of frame 22 (and 12-21), cross-entropy.

    python scripts/make_pseudo_labels.py --root_dir D --saved_seg_model_dir U/best.pt --split unlabeled --out P
    python forecasting/train_forecaster.py --root_dir D --pseudo_labels P \
        --saved_seg_model_dir U/best.pt --checkpoint_dir checkpoints/forecaster
    ... --resume                                       # continue from last.pt
    torchrun --nproc_per_node=4 forecasting/train_forecaster.py ...   # DDP, --batch_size per process

Training videos: the unlabeled split's pseudo-labels (P/unlabeled, all 22 frames segmented by the
U-Net) plus the train split's true masks. Validation: the val split as inference sees it, the
U-Net's masks of frames 1-11 as inputs (segmented once into P/val) and the true mask of frame 22 as
target, scored with the competition's metric; best.pt keeps the best val Jaccard.
Loss: cross-entropy of frame 22 at full resolution, plus --intermediate_weight x the cross-entropy
of frames 12-21 against their class fractions at the network's resolution (rolling out is
supervised at every step). --feedback feeds the ConvLSTM the frame before at each future step:
the true one (teacher forcing) or, with probability --sampling_prob, its own prediction
(scheduled sampling); inference always feeds its own. Random left-right flips; AdamW with warm-up
and cosine decay per batch; gradient clipping.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import ConcatDataset, Dataset  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data.format import LAST_INPUT_INDEX, NUM_INPUT_FRAMES  # noqa: E402
from data.metric import SegmentationScore  # noqa: E402
from data.pseudo_labels import StoredMaskVideos, TrueMaskVideos  # noqa: E402
from data.readers import add_exclude_args, read_exclusions  # noqa: E402
from forecasting.motion_args import add_motion_args, resolve_motion  # noqa: E402
from forecasting.forecaster import DEFAULT, STARTS, MaskForecaster, class_fractions  # noqa: E402
from pipeline.val_inputs import (  # noqa: E402
    ValInputs, add_mask_video_args, check_mask_video_args, prepare_val_inputs,
)
from engine import (  # noqa: E402
    add_optimizer_args, resume_guard,
    add_run_args, count_parameters, start_run, RandomFlips, RunState, fit, print0, run_cli, setup_distributed,
    teardown_distributed, unwrap, prepare_optimization, wrap_ddp,
)



def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_mask_video_args(p)
    add_optimizer_args(p, epochs=20, batch_size=8, learning_rate=2e-3, unit="videos")
    p.add_argument("--intermediate_weight", type=float, default=1.0,
                   help="weight of the loss on frames 12-21 (0: supervise frame 22 only)")
    p.add_argument("--feedback", action="store_true",
                   help="feed the ConvLSTM the frame before at each future step (the model rolls out on its own predictions)")
    p.add_argument("--sampling_prob", type=float, default=0.0,
                   help="with --feedback: probability that a training step feeds the model's own prediction "
                        "instead of the true frame (scheduled sampling; 0: teacher forcing, 1: own rollouts only)")
    # Model size (recorded in the checkpoint's model_config: inference never repeats them).
    p.add_argument("--enc_channels", type=int, nargs="+", default=list(DEFAULT["enc_channels"]),
                   help="encoder widths per level; the ConvLSTM runs at 1/(downsample x 2**(levels-1))")
    p.add_argument("--hidden_channels", type=int, nargs="+", default=list(DEFAULT["hidden_channels"]),
                   help="ConvLSTM widths, one per layer")
    p.add_argument("--kernel_size", type=int, default=DEFAULT["kernel_size"], help="ConvLSTM kernel (odd)")
    p.add_argument("--downsample", type=int, default=DEFAULT["downsample"], help="the network runs at H/d x W/d (1, 2, 4, ...)")
    p.add_argument("--input_scale", type=float, default=5.0, help="logit of the start mask's class in the residual path")
    p.add_argument("--start", choices=STARTS, default="extrapolate",
                   help="what each predicted frame starts from: the frame-11 objects moved along their velocity, or frame 11")
    add_motion_args(p)  # with --start extrapolate: how the start's objects move
    add_exclude_args(p)
    add_run_args(p, checkpoint_default="checkpoints/forecaster")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "kernel_size", "downsample"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.learning_rate <= 0 or args.val_videos < 0 or args.grad_clip < 0 or args.intermediate_weight < 0:
        p.error("--learning_rate must be > 0; --val_videos, --grad_clip and --intermediate_weight >= 0")
    check_mask_video_args(p, args)
    if not 0 <= args.sampling_prob <= 1 or (args.sampling_prob > 0 and not args.feedback):
        p.error("--sampling_prob is in [0, 1] and needs --feedback (without it the model never sees its own frames)")
    return args


def training_videos(args, exclude=()) -> Dataset:
    parts = []
    if args.unlabeled_videos != 0:
        parts.append(StoredMaskVideos(args.pseudo_labels, "unlabeled", args.root_dir, max(args.unlabeled_videos, 0),
                                      exclude=exclude))
    if args.train_videos != 0:
        parts.append(TrueMaskVideos(args.root_dir, "train", max(args.train_videos, 0), exclude=exclude))
        print0(f"train: {parts[-1].index.describe()}")
    return ConcatDataset(parts) if len(parts) > 1 else parts[0]


def forecast_loss(model, masks: torch.Tensor, intermediate_weight: float, sampling_prob: float):
    """Cross-entropy of frame 22 (full resolution) + intermediate_weight x that of frames 12-21 (network resolution).
    masks: (B, 22, H, W) class ids of whole videos. `model` may be DDP-wrapped (its forward is called)."""
    plain = unwrap(model)
    inputs, future = masks[:, :NUM_INPUT_FRAMES], masks[:, NUM_INPUT_FRAMES:]  # (B, 11, H, W) each
    K = plain.future_steps if intermediate_weight > 0 else 1
    teacher = future[:, :-1] if plain.feedback else None
    low, start = model(inputs, num_future=K, teacher=teacher, sampling_prob=sampling_prob, low_res=True)  # (B, K, C, h, w)
    last = plain.upsample(low[:, -1:].float(), start[:, -1:])[:, 0]  # (B, C, H, W)
    loss = F.cross_entropy(last, future[:, -1].long())
    if K > 1:
        soft = class_fractions(future[:, -K:-1], plain.num_classes, plain.downsample)  # (B, K-1, C, h, w)
        loss = loss + intermediate_weight * F.cross_entropy(low[:, :-1].flatten(0, 1).float(), soft.flatten(0, 1))
    return loss


def main(argv=None) -> RunState:
    args = parse_args(argv)
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    ctx = setup_distributed(args.device)
    try:
        args.motion = (resolve_motion(args, args.root_dir, print_fn=lambda m: print0(m, ctx=ctx)).to_config()
                       if args.start == "extrapolate" else None)  # fitted before the run's arguments are recorded
        run_args = start_run(args, ctx)

        if ctx.is_main:
            prepare_val_inputs(args.root_dir, args.pseudo_labels, args.saved_seg_model_dir, ctx.device,
                               print_fn=lambda m: print0(m, ctx=ctx), exclude=exclude)
        if ctx.distributed:
            dist.barrier()
        train_set = RandomFlips(training_videos(args, exclude), seed=args.seed)
        val_set = ValInputs(args.root_dir, args.pseudo_labels, args.val_videos, exclude)
        print0(f"val: {val_set.truth.describe()}", ctx=ctx)

        model = MaskForecaster(enc_channels=args.enc_channels, hidden_channels=args.hidden_channels,
                               kernel_size=args.kernel_size, downsample=args.downsample,
                               input_scale=args.input_scale, feedback=args.feedback,
                               start=args.start, motion=args.motion).to(ctx.device)
        print0(f"model: {count_parameters(model) / 1e6:.2f}M parameters, {model.config}; "
               f"{len(train_set)} training videos, {len(val_set)} val videos", ctx=ctx)
        setup = prepare_optimization(args, run_args, ctx, model, train_set, val_set,
                                     resume_guard(run_args),
                                     unit="training videos")

        def compute_loss(model, batch):
            masks = batch["masks"].to(ctx.device, non_blocking=True)  # (B, 22, H, W) uint8
            return forecast_loss(model, masks, args.intermediate_weight, args.sampling_prob), len(masks)

        def validate(model):
            model.eval()
            score, copy = SegmentationScore(ctx.device), SegmentationScore(ctx.device)
            for inputs, truth in tqdm(setup.val_loader, desc="val", disable=not ctx.is_main, leave=False, dynamic_ncols=True):
                inputs, truth = inputs.to(ctx.device), truth.to(ctx.device)
                score.update(model.predict(inputs), truth)
                copy.update(inputs[:, LAST_INPUT_INDEX], truth)
            # val_copy_jaccard: the U-Net's frame-11 mask as the prediction, the bar to beat
            return {"val_jaccard": score.compute(), "val_copy_jaccard": copy.compute()}

        return fit(setup, wrap_ddp(model, ctx), compute_loss, validate, ctx, epochs=args.epochs, args=run_args,
                   grad_clip=args.grad_clip, score_name="val_jaccard", val_every=args.val_every)
    finally:
        teardown_distributed(ctx)


if __name__ == "__main__":
    sys.exit(run_cli(main))
