"""Train the reconstructor to predict frame 22 (and frames 12-21) from frames 1-11, self-supervised.

    python SSL_convLSTM_Reconstructor/train_reconstructor.py --root_dir Dataset_Student \
        --checkpoint_dir checkpoints/reconstructor
    python SSL_convLSTM_Reconstructor/train_reconstructor.py ... --resume        # continue from last.pt
    torchrun --nproc_per_node=4 SSL_convLSTM_Reconstructor/train_reconstructor.py ...   # DDP, --batch_size per process

Data: every video of the unlabeled split (--use_train_frames adds the train split's frames, never
its masks); the val split is only scored. Validation: PSNR and SSIM (torchmetrics) of the predicted
frame 22 on the val videos, printed beside the naive prediction "frame 22 = frame 11"; best.pt keeps
the best val PSNR. PSNR is the split's: 10 log10(1 / mean squared error over all its pixels).

Recipe (defaults, for a 2-core CPU): the network runs at 1/4 resolution (--downsample 4; the output
is frame 11 plus the upsampled change, see model.py), one ConvLSTM step per future frame, and frames
12-21 are supervised too (--intermediate_weight): small motions first, a curriculum that makes the
prediction move objects rather than fade them. Loss: L1 (or MSE) per frame at the network's
resolution, + optional 1-SSIM and image-gradient terms. AdamW, warm-up + cosine per batch, gradient
clipping, random left-right flips of whole videos. On a loaded CPU, OMP_NUM_THREADS=1 can be several
times faster than 2 threads.
At CPU budgets the gain over the frame-11 copy comes from fading what is about to move more than from
drawing it at its new place (see the --visualize grids of Unets/inference_val_with_reconstructor.py); MSE
raises the PSNR but leaves a halo that costs the U-Net more than L1's sharper frames.
Motion-compensated reference (--reference extrapolated): each predicted frame is a change of frame
11 with its objects moved along their velocities (pipeline/references.py, with forecasting/motion.py), the objects
found by the U-Net (--pseudo_labels: scripts/make_pseudo_labels.py's store of the unlabeled videos;
the train split's true masks with --use_train_frames; the val inputs segmented once with
--saved_seg_model_dir). The model then starts with objects at their expected place, which a U-Net
can segment there; Unets/inference_*_with_reconstructor.py make the same frames at inference.
For a GPU: --enc_channels 32 64 128 128 --hidden_channels 128 128 --kernel_size 5 --downsample 1
(model.PRESETS["large"]), a larger --batch_size, and the split converted once with
scripts/convert_to_memmap.py so PNG decoding does not starve it.
"""
import argparse
import sys

import torch
import torch.distributed as dist
from torch.utils.data import ConcatDataset, Subset
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from tqdm import tqdm

from data.format import LAST_INPUT_INDEX, NUM_FRAMES, NUM_FUTURE_FRAMES, NUM_INPUT_FRAMES, TARGET_INDEX
from data.pseudo_labels import StoredMaskVideos, TrueMaskVideos
from data.readers import VideoDataset, add_exclude_args, check_before_training, read_exclusions, to_float
from SSL_convLSTM_Reconstructor.model import DEFAULT, OUTPUT_MODES, REFERENCES, Reconstructor
from pipeline.references import MOTION_RULES, WithExtrapolatedFrames, add_motion_args, resolve_motion
from pipeline.val_inputs import STORE_VOTE, prepare_val_inputs
from engine import (
    OPTIMIZER_RULES, RUN_RULES, add_optimizer_args, at_least, check_flags, resume_guard,
    add_run_args, count_parameters, start_run, RandomFlips, RunState, autocast, fit, print0, run_cli, setup_distributed,
    teardown_distributed, unwrap, prepare_optimization, wrap_ddp,
)

# The output activation that goes with each output mode (model.py: residual starts as a copy of frame 11).
ACTIVATION = {"residual": "clamp", "blend": "sigmoid", "direct": "sigmoid"}
NUM_FUTURE = NUM_FUTURE_FRAMES  # frames 12..22


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", default="Dataset_Student", help="dataset root holding unlabeled/ and val/ (and train/)")
    add_optimizer_args(p, epochs=20, batch_size=8, learning_rate=3e-3, unit="videos")
    p.add_argument("--loss", default="l1", choices=("l1", "mse"), help="pixel loss per predicted frame")
    p.add_argument("--ssim_weight", type=float, default=0.0, help="+ this x (1 - SSIM) per predicted frame (0: off)")
    p.add_argument("--gradient_weight", type=float, default=0.0,
                   help="+ this x L1 between the image gradients of prediction and truth (0: off)")
    p.add_argument("--intermediate_weight", type=float, default=1.0,
                   help="loss = frame 22's + this x the mean of frames 12-21's (0: frame 22 only, one decoder pass)")
    p.add_argument("--use_train_frames", action="store_true",
                   help="also train on the train split's frames (never its masks; val is never trained on)")
    p.add_argument("--val_videos", type=int, default=0, help="score the first N val videos only (0: all)")
    p.add_argument("--enc_channels", type=int, nargs="+", default=list(DEFAULT["enc_channels"]),
                   help="encoder widths per level (len - 1 downsamplings inside the network)")
    p.add_argument("--hidden_channels", type=int, nargs="+", default=list(DEFAULT["hidden_channels"]),
                   help="ConvLSTM widths, one per layer")
    p.add_argument("--kernel_size", type=int, default=DEFAULT["kernel_size"], help="ConvLSTM kernel (odd)")
    p.add_argument("--downsample", type=int, default=4,
                   help="the network runs at 1/this resolution (4 for a CPU, 1 or 2 for a GPU); output at full resolution")
    p.add_argument("--output_mode", default="residual", choices=OUTPUT_MODES,
                   help="residual: frame 11 + change (starts as the copy); blend; direct (see model.py)")
    p.add_argument("--reference", default="frame11", choices=REFERENCES,
                   help="what the output changes: frame 11, or frame 11 with its objects moved along their "
                        "velocities (needs --pseudo_labels and --saved_seg_model_dir; see above)")
    p.add_argument("--pseudo_labels", default=None, metavar="DIR",
                   help="with --reference extrapolated: the U-Net's masks of the unlabeled videos "
                        "(scripts/make_pseudo_labels.py --out DIR); DIR/val is made here for validation")
    p.add_argument("--saved_seg_model_dir", default=None, metavar="PATH",
                   help="with --reference extrapolated: the U-Net that segments the val inputs (as at inference)")
    add_motion_args(p)  # with --reference extrapolated: how the reference's objects move
    add_exclude_args(p)
    add_run_args(p, checkpoint_default="checkpoints/reconstructor")
    args = p.parse_args(argv)
    check_flags(p, args, {**RUN_RULES, **OPTIMIZER_RULES, **MOTION_RULES, "kernel_size": at_least(1),
                          "downsample": at_least(1), "ssim_weight": at_least(0), "gradient_weight": at_least(0),
                          "intermediate_weight": at_least(0), "val_videos": at_least(0)})
    if (args.reference == "extrapolated") != bool(args.pseudo_labels and args.saved_seg_model_dir):
        p.error("--reference extrapolated needs --pseudo_labels and --saved_seg_model_dir, and they are for it alone")
    if args.reference == "extrapolated" and args.output_mode == "direct":
        p.error("--reference extrapolated needs --output_mode residual or blend (direct has no reference)")
    return args


def gradient_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) mean L1 between the horizontal and vertical differences of (N, C, H, W) images: edges in place."""
    dx = lambda x: x[..., :, 1:] - x[..., :, :-1]  # noqa: E731
    dy = lambda x: x[..., 1:, :] - x[..., :-1, :]  # noqa: E731
    return (dx(pred) - dx(target)).abs().mean(dim=(1, 2, 3)) + (dy(pred) - dy(target)).abs().mean(dim=(1, 2, 3))


def frame_losses(pred: torch.Tensor, target: torch.Tensor, args) -> torch.Tensor:
    """(B, K) loss of each predicted frame: pred, target (B, K, 3, H, W) float in [0, 1]."""
    B, K = pred.shape[:2]
    p, t = pred.flatten(0, 1), target.flatten(0, 1)  # (B*K, 3, H, W)
    pixel = (p - t).abs() if args.loss == "l1" else (p - t).square()
    loss = pixel.mean(dim=(1, 2, 3))
    if args.ssim_weight:
        ssim = structural_similarity_index_measure(p, t, data_range=1.0, reduction="none")
        loss = loss + args.ssim_weight * (1 - ssim)
    if args.gradient_weight:
        loss = loss + args.gradient_weight * gradient_l1(p, t)
    return loss.reshape(B, K)


def reconstruction_loss(model, frames: torch.Tensor, args, ref: torch.Tensor = None) -> torch.Tensor:
    """The training loss of a batch of whole videos, frames (B, 22, 3, H, W) float in [0, 1]: frame 22's
    loss + intermediate_weight x the mean loss of frames 12-21 (decoded only when that weight is > 0).
    Taken at the network's resolution (1/downsample; targets area-averaged the same way): the output at
    full resolution is frame 11 plus the upsampled change, so this is the same objective without the
    cost of upsampling 11 frames (1.7 times faster at downsample 4). ref (B, K, 3, H, W) float: the
    extrapolated frames of a reference="extrapolated" model."""
    K = num_future(args)  # future frames decoded and supervised
    pred = model(frames[:, :NUM_INPUT_FRAMES], num_future=K, low_res=True, ref=ref)  # (B, K, 3, h, w): frames 22-K+1 .. 22
    target = unwrap(model).shrink(frames[:, NUM_FRAMES - K:])  # (B, K, 3, h, w)
    losses = frame_losses(pred.float(), target, args)  # (B, K)
    loss = losses[:, -1].mean()
    if K > 1:
        loss = loss + args.intermediate_weight * losses[:, :-1].mean()
    return loss


def num_future(args) -> int:
    return NUM_FUTURE if args.intermediate_weight > 0 else 1


def build_model(args) -> Reconstructor:
    return Reconstructor(enc_channels=args.enc_channels, hidden_channels=args.hidden_channels,
                         kernel_size=args.kernel_size, future_steps=NUM_FUTURE, output_mode=args.output_mode,
                         output_activation=ACTIVATION[args.output_mode], downsample=args.downsample,
                         reference=args.reference, motion=args.motion if args.reference == "extrapolated" else None)


def datasets(args, ctx):
    """(training videos, val videos, names of the training splits); with --reference extrapolated every item
    also holds "ref", its extrapolated frames (the val inputs' from the U-Net, made once on rank 0)."""
    all_frames = range(NUM_FRAMES)
    val_frames = [*range(NUM_INPUT_FRAMES), TARGET_INDEX]  # frames 1-11 and 22
    splits = ["unlabeled"] + (["train"] if args.use_train_frames else [])
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    videos = [VideoDataset(args.root_dir, split, frame_indices=all_frames, mask_indices=[], exclude=exclude)
              for split in splits]
    val_set = VideoDataset(args.root_dir, "val", frame_indices=val_frames, mask_indices=[], exclude=exclude)
    for v in videos + [val_set]:
        print0(f"{v.index.split}: {v.index.describe()}", ctx=ctx)
    check_before_training(*videos, val_set, progress=ctx.is_main)  # every file by header, before epoch 1
    if args.reference == "extrapolated":
        if ctx.is_main:
            prepare_val_inputs(args.root_dir, args.pseudo_labels, args.saved_seg_model_dir, ctx.device,
                               print_fn=lambda m: print0(m, ctx=ctx), exclude=exclude)
        if ctx.distributed:
            dist.barrier()
        masks = {"unlabeled": StoredMaskVideos(args.pseudo_labels, "unlabeled", args.root_dir, exclude=exclude,
                                               per_video=STORE_VOTE),
                 "train": TrueMaskVideos(args.root_dir, "train", exclude=exclude) if args.use_train_frames else None}
        videos = [WithExtrapolatedFrames(v, masks[split], num_future(args), args.motion)
                  for v, split in zip(videos, splits)]
        val_set = WithExtrapolatedFrames(val_set, StoredMaskVideos(args.pseudo_labels, "val", args.root_dir,
                                                                   exclude=exclude), 1, args.motion)
    if args.val_videos:
        val_set = Subset(val_set, range(min(len(val_set), args.val_videos)))
    return ConcatDataset(videos), val_set, splits


def main(argv=None) -> RunState:
    args = parse_args(argv)
    ctx = setup_distributed(args.device)
    try:
        args.motion = (resolve_motion(args, args.root_dir, print_fn=lambda m: print0(m, ctx=ctx),
                                      exclude=read_exclusions(args.exclude_videos, args.root_dir)).to_config()
                       if args.reference == "extrapolated" else None)  # fitted before the run's arguments are recorded
        run_args = start_run(args, ctx)

        train_set, val_set, names = datasets(args, ctx)
        train_set = RandomFlips(train_set, seed=args.seed)
        print0(f"data: {len(train_set)} training videos ({' + '.join(names)}), {len(val_set)} val videos"
               f"{', with extrapolated reference frames' if args.reference == 'extrapolated' else ''}", ctx=ctx)

        model = build_model(args).to(ctx.device)
        print0(f"model: {count_parameters(model) / 1e6:.3f}M parameters, {model.config}", ctx=ctx)
        setup = prepare_optimization(args, run_args, ctx, model, train_set, val_set,
                                     resume_guard(run_args),
                                     unit="training videos")

        def compute_loss(model, batch):
            frames = to_float(batch["frames"].to(ctx.device, non_blocking=True))  # (B, 22, 3, H, W)
            ref = to_float(batch["ref"].to(ctx.device, non_blocking=True)) if "ref" in batch else None
            return reconstruction_loss(model, frames, args, ref), len(frames)

        naive = {}  # the frame-11 copy's figures: the same every epoch, computed once

        @torch.no_grad()
        def validate(model):
            model.eval()
            metrics = {name: (PeakSignalNoiseRatio(data_range=1.0).to(ctx.device),
                              StructuralSimilarityIndexMeasure(data_range=1.0).to(ctx.device))
                       for name in (("val",) if naive else ("val", "copy11"))}
            for batch in tqdm(setup.val_loader, desc="val", disable=not ctx.is_main, leave=False, dynamic_ncols=True):
                frames = to_float(batch["frames"].to(ctx.device, non_blocking=True))  # (B, 12, 3, H, W)
                ref = to_float(batch["ref"].to(ctx.device, non_blocking=True)) if "ref" in batch else None
                target = frames[:, -1]
                with autocast(ctx.device):
                    pred = model(frames[:, :NUM_INPUT_FRAMES], ref=ref)[:, -1]  # (B, 3, H, W): frame 22
                for name, x in (("val", pred.float().clamp(0, 1)), ("copy11", frames[:, LAST_INPUT_INDEX])):
                    if name in metrics:
                        for metric in metrics[name]:
                            metric.update(x, target)
            # compute() sums the states of all ranks under torch.distributed
            figures = {f"{name}_{kind}": float(m.compute()) for name, pair in metrics.items()
                       for kind, m in zip(("psnr", "ssim"), pair)}
            naive.update({k: v for k, v in figures.items() if k.startswith("copy11")})
            figures.update(naive)
            print0(f"val frame 22: PSNR {figures['val_psnr']:.2f} dB, SSIM {figures['val_ssim']:.4f} | frame 11 "
                   f"copied: PSNR {figures['copy11_psnr']:.2f} dB, SSIM {figures['copy11_ssim']:.4f}", ctx=ctx)
            return figures

        return fit(setup, wrap_ddp(model, ctx), compute_loss, validate, ctx, epochs=args.epochs, args=run_args,
                   grad_clip=args.grad_clip, score_name="val_psnr", val_every=args.val_every)
    finally:
        teardown_distributed(ctx)


if __name__ == "__main__":
    sys.exit(run_cli(main))
