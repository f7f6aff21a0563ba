"""Train SimVP (gSTA translator) in mask space: masks of frames 1-11 -> class logits of frames 12-22, cross-entropy.

    python scripts/make_pseudo_labels.py --root_dir D --saved_seg_model_dir U/best.pt --split unlabeled --out P
    python forecasting/train_simvp.py --root_dir D --pseudo_labels P --saved_seg_model_dir U/best.pt \
        --preset cpu --checkpoint_dir checkpoints/simvp          # quarter resolution, a few CPU-minutes
    ... --preset published --batch_size 16                        # the published gSTA configuration, a GPU
    ... --resume                                                  # continue from last.pt
    torchrun --nproc_per_node=4 forecasting/train_simvp.py ...    # DDP, --batch_size per process
    ... --init_from checkpoints/simvp/best.pt --iou_weight 1 --checkpoint_dir checkpoints/simvp_iou  # IoU fine-tune

Training videos: the unlabeled split's pseudo-labels (P/unlabeled, all 22 frames segmented by the U-Net) plus
the train split's true masks. Validation: the val split as inference sees it, the U-Net's masks of frames 1-11
(segmented once into P/val) as inputs (or, --val_inputs true, the true masks), the true mask of frame 22 as
target, the competition's metric; best.pt keeps the best val Jaccard.

Loss: cross-entropy of every predicted frame against its class fractions at the network's resolution (soft
targets; plain cross-entropy at --downsample 1), plus --final_weight x the cross-entropy of the window's last
frame (frame 22 in one shot) at full resolution as inference makes it (upsampled, plus the copy prior's
full-resolution detail of frame 11), plus --iou_weight x (1 - its soft Jaccard), the optional IoU fine-tuning.
The model starts as "copy frame 11" (--copy_prior, forecasting/simvp.py), so the loss starts at the copy's. Random left-right flips; AdamW with warm-up and cosine decay per batch; gradient
clipping; autocast on CUDA.

Scheduled sampling (--sampling_max, for --out_frames < 11, which roll forward on their own predictions at
inference), as the competition's second-place entry did it: a video is, with probability p, first rolled
forward s steps by the model itself (no gradient; each predicted frame fed back as the one-hot of its argmax)
and then trained to predict the out_frames frames after those s steps from that partly self-made window; with
probability 1 - p it is trained from frames 1-11. p rises linearly from 0 in the first epoch to --sampling_max
in the last; s is uniform in 1..--sampling_steps (at most as many steps as stay inside frame 22). Both are
drawn per video from (seed, epoch, video index), so resuming and torchrun take the same steps. With
--out_frames 11 (one shot) the model never sees its own output, and the flag is refused.
"""
import argparse
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.utils.data import ConcatDataset, Dataset
from tqdm import tqdm

from data.format import LAST_INPUT_INDEX, NUM_INPUT_FRAMES
from data.metric import SegmentationScore
from data.pseudo_labels import StoredMaskVideos, TrueMaskVideos
from data.readers import add_exclude_args, read_exclusions
from engine import (
    OPTIMIZER_RULES, RUN_RULES, at_least, between, check_flags, RandomFlips, add_optimizer_args, add_run_args, autocast, count_parameters, fit, prepare_optimization, print0,
    resume_guard, run_cli, setup_distributed, start_run, teardown_distributed, unwrap, wrap_ddp,
)
from forecasting.simvp import DEFAULT, FUTURE_FRAMES, NORMS, PRESETS, SimVP
from pipeline.models import load_for_flag
from pipeline.val_inputs import (
    STORE_VOTE, TrueValInputs, ValInputs, add_mask_video_args, check_mask_video_args, prepare_val_inputs,
)

MODEL_FLAGS = ("downsample", "hid_S", "hid_T", "N_S", "N_T", "out_frames", "embed", "translator_norm", "copy_prior")
# --preset NAME: the model's preset (forecasting/simvp.py: PRESETS) and the schedule it was meant with; flags given
# on the command line still win.
# cpu: --iou_weight 1 because cross-entropy alone, from the copy prior, shrinks objects (argmax of hedged
# probabilities is background where an object may have moved): on 10 held-out synthetic train videos (the smoke
# field's data, 5 epochs of its 110 other training videos) the copy's 0.393 fell to 0.371 (foreground 7.7% -> 6.3%
# of the pixels, truth 7.3%); with the soft-Jaccard term to 0.381 (6.5%). It shrinks less, but it still shrinks.
TRAIN_PRESETS = {"cpu": {"batch_size": 8, "learning_rate": 2e-3, "num_workers": 0, "iou_weight": 1.0},
                 "published": {"batch_size": 16, "learning_rate": 1e-3},
                 "second_place": {"batch_size": 16, "learning_rate": 1e-3, "sampling_max": 1.0, "sampling_steps": 5}}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_mask_video_args(p)
    p.add_argument("--val_inputs", choices=("unet", "true"), default="unet",
                   help="validate from the U-Net's masks of val frames 1-11 (as inference sees them) or from the true "
                        "masks (synthetic experiments: no U-Net needed)")
    add_optimizer_args(p, epochs=10, batch_size=8, learning_rate=2e-3, unit="videos")
    p.add_argument("--final_weight", type=float, default=1.0,
                   help="weight of the full-resolution cross-entropy of each window's last frame (frame 22 in one shot)")
    p.add_argument("--iou_weight", type=float, default=0.0,
                   help="weight of 1 - soft Jaccard of that frame (IoU fine-tuning, e.g. with --init_from; computed "
                        "over each process's batch, so under torchrun it differs slightly from 1 process)")
    p.add_argument("--sampling_max", type=float, default=0.0,
                   help="scheduled sampling (--out_frames < 11): the probability, reached in the last epoch, that a "
                        "video is first rolled forward on the model's own predictions (0: off)")
    p.add_argument("--sampling_steps", type=int, default=5,
                   help="the most steps a video is rolled forward on its own predictions under scheduled sampling")
    p.add_argument("--init_from", default=None, metavar="PATH",
                   help="start from this SimVP checkpoint's weights (its model_config rebuilds the model; the model "
                        "flags are then unused): the IoU fine-tune")
    # Model (recorded in the checkpoint's model_config: inference never repeats them). Paper names.
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="model and schedule defaults: " + "; ".join(
                       f"{k}: " + " ".join(f"--{f} {v}" for f, v in {**PRESETS[k], **TRAIN_PRESETS[k]}.items())
                       for k in sorted(PRESETS)))
    p.add_argument("--downsample", type=int, default=DEFAULT["downsample"], help="the network runs at H/d x W/d")
    p.add_argument("--hid_S", type=int, default=DEFAULT["hid_S"], help="width of the spatial encoder and decoder")
    p.add_argument("--hid_T", type=int, default=DEFAULT["hid_T"], help="width of the translator")
    p.add_argument("--N_S", type=int, default=DEFAULT["N_S"], help="layers of the encoder (and of the decoder)")
    p.add_argument("--N_T", type=int, default=DEFAULT["N_T"], help="gSTA blocks of the translator (>= 2)")
    p.add_argument("--out_frames", type=int, default=DEFAULT["out_frames"],
                   help="frames predicted per step: 11 (frames 12-22 at once) or fewer, rolled forward to frame 22")
    p.add_argument("--embed", type=int, default=DEFAULT["embed"],
                   help="width of a learned embedding of the 49 classes (0: one-hot class fractions go in)")
    p.add_argument("--translator_norm", choices=NORMS, default=DEFAULT["translator_norm"],
                   help="normalisation in the gSTA blocks: batch (published) or group (small batches)")
    p.add_argument("--copy_prior", type=float, default=DEFAULT["copy_prior"],
                   help="start from 'copy the last input frame': logits = this scale x its class fractions (learned "
                        "from there) + the network's output, whose readout starts at zero (0: no prior, the papers)")
    add_exclude_args(p)
    add_run_args(p, checkpoint_default="checkpoints/simvp")
    preset = p.parse_known_args(argv)[0].preset
    if preset:
        p.set_defaults(**PRESETS[preset], **TRAIN_PRESETS[preset])
    args = p.parse_args(argv)
    # every bad flag at once, one line each (engine/flags.py), as every trainer does
    check_flags(p, args, {**RUN_RULES, **OPTIMIZER_RULES, **{name: at_least(1) for name in (
                    "downsample", "hid_S", "hid_T", "N_S", "out_frames", "sampling_steps")},
                          "N_T": at_least(2), "embed": at_least(0), "out_frames": between(1, NUM_INPUT_FRAMES),
                          "final_weight": at_least(0), "iou_weight": at_least(0), "copy_prior": at_least(0),
                          "sampling_max": between(0, 1)})
    check_mask_video_args(p, args)
    return args


def max_own_steps(out_frames: int, wanted: int) -> int:
    """The most steps a training video can be rolled forward on its own predictions with its target still inside
    frames 12-22 (0 for a one-shot model)."""
    return min(wanted, (FUTURE_FRAMES - out_frames) // out_frames)


class ScheduledSampling(Dataset):
    """Adds "own_steps" to each video (a dict item): how many steps the model first rolls it forward on its own
    predictions (0: from the true frames 1-11). Drawn from (seed, epoch, index): probability max_prob x (epoch - 1)
    / (epochs - 1), steps uniform in 1..max_steps. fit() calls set_epoch (passed on to the videos)."""

    def __init__(self, dataset: Dataset, seed: int, epochs: int, max_prob: float, max_steps: int):
        self.dataset, self.seed, self.epochs, self.max_prob, self.max_steps = dataset, seed, epochs, max_prob, max_steps
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def probability(self, epoch: int) -> float:
        return self.max_prob * (epoch - 1) / max(1, self.epochs - 1) if self.max_steps > 0 else 0.0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        rng = np.random.default_rng([self.seed, self.epoch, i, 1])  # its own stream beside the flips' (seed, epoch, i)
        u, steps = rng.random(), int(rng.integers(1, max(self.max_steps, 1) + 1))
        item["own_steps"] = torch.tensor(steps if u < self.probability(self.epoch) else 0)
        return item


def training_videos(args, exclude=()) -> Dataset:
    parts = []
    if args.unlabeled_videos != 0:
        parts.append(StoredMaskVideos(args.pseudo_labels, "unlabeled", args.root_dir, max(args.unlabeled_videos, 0),
                                      exclude=exclude, per_video=STORE_VOTE))
    if args.train_videos != 0:
        parts.append(TrueMaskVideos(args.root_dir, "train", max(args.train_videos, 0), exclude=exclude))
    videos = RandomFlips(ConcatDataset(parts) if len(parts) > 1 else parts[0], seed=args.seed)
    steps = max_own_steps(args.out_frames, args.sampling_steps) if args.sampling_max > 0 else 0
    return ScheduledSampling(videos, args.seed, args.epochs, args.sampling_max, steps)


def soft_jaccard_loss(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """1 - the mean over classes of soft intersection / soft union over the batch, (B, C, H, W) logits against
    (B, H, W) ids: the competition's Jaccard with probabilities for the predicted masks. Classes counted: those
    in the truth or with at least one pixel of predicted probability."""
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(truth.long(), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    union = (probs + onehot).sum(dim=(0, 2, 3)) - inter
    present = (onehot.sum(dim=(0, 2, 3)) > 0) | (probs.sum(dim=(0, 2, 3)) >= 1)
    return 1 - (inter / union.clamp_min(1e-6))[present].mean()


def simvp_loss(model, masks: torch.Tensor, own_steps: torch.Tensor = None, final_weight: float = 1.0,
               iou_weight: float = 0.0) -> torch.Tensor:
    """The training loss of a batch of whole videos, masks (B, 22, H, W) ids; own_steps (B,): steps each video is
    first rolled forward on the model's own predictions (scheduled sampling; None: none). `model` may be
    DDP-wrapped (its forward is called for the step that has gradients)."""
    plain = unwrap(model)
    T, K = plain.in_frames, plain.out_frames
    B = len(masks)
    x = plain.inputs(masks)  # (B, 22, C, h, w) class fractions
    steps = torch.zeros(B, dtype=torch.long, device=masks.device) if own_steps is None else own_steps.long()
    window = x[:, :T]
    if steps.max() > 0:
        with torch.no_grad():  # the model's own rollout: inputs, not something to learn through
            windows = [window]
            for _ in range(int(steps.max())):
                windows.append(plain.advance(windows[-1], plain(windows[-1])))
            window = torch.stack(windows)[steps, torch.arange(B)]  # (B, T, C, h, w): each video after its steps
    logits = model(window)  # (B, K, C, h, w)
    frames = T + steps[:, None] * K + torch.arange(K, device=masks.device)  # (B, K): indices of the target frames
    target = x[torch.arange(B)[:, None], frames]  # (B, K, C, h, w)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(0, 1))
    if final_weight > 0 or iou_weight > 0:
        # (B, C, H, W), as inference makes frame 22 (with the copy prior's full-resolution detail of frame 11)
        last = plain.full_resolution(logits[:, -1], masks[:, T - 1], x[:, T - 1])
        truth = masks[torch.arange(B), frames[:, -1]].long()  # (B, H, W)
        if final_weight > 0:
            loss = loss + final_weight * F.cross_entropy(last, truth)
        if iou_weight > 0:
            loss = loss + iou_weight * soft_jaccard_loss(last, truth)
    return loss


def score_masks(model, loader, device, show: bool = True) -> dict:
    """The model's and the copy's val Jaccard from (frames 1-11 masks (B, 11, H, W), true frame 22 (B, H, W))."""
    score, copy = SegmentationScore(device), SegmentationScore(device)
    for inputs, truth in tqdm(loader, desc="val", disable=not show, leave=False, dynamic_ncols=True):
        inputs, truth = inputs.to(device), truth.to(device)
        with autocast(device):
            score.update(model.predict(inputs), truth)
        copy.update(inputs[:, LAST_INPUT_INDEX], truth)
    return {"val_jaccard": score.compute(), "val_copy_jaccard": copy.compute()}


def main(argv=None):
    args = parse_args(argv)
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    ctx = setup_distributed(args.device)
    try:
        run_args = start_run(args, ctx)
        if ctx.is_main and args.val_inputs == "unet":
            prepare_val_inputs(args.root_dir, args.pseudo_labels, args.saved_seg_model_dir, ctx.device,
                               print_fn=lambda m: print0(m, ctx=ctx), exclude=exclude)
        if ctx.distributed:
            dist.barrier()
        if args.init_from:  # fine-tuning: the architecture comes with the weights
            model = load_for_flag(args.init_from, SimVP, "--init_from").train()
            for name in MODEL_FLAGS:
                setattr(args, name, model.config[name])  # what training_videos reads (out_frames)
            print0(f"initialised from {args.init_from}", ctx=ctx)
        else:
            model = SimVP(**{name: getattr(args, name) for name in MODEL_FLAGS})
        if args.sampling_max > 0 and max_own_steps(model.out_frames, args.sampling_steps) == 0:
            raise ValueError(f"--sampling_max {args.sampling_max}: a model with out_frames {model.out_frames} predicts "
                             f"frames 12-22 at once and never sees its own output; use --out_frames 1 or drop the flag")
        model = model.to(ctx.device)
        if ctx.distributed and ctx.device.type == "cuda" and model.config["translator_norm"] == "batch":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch statistics over every process (same keys)
        train_set = training_videos(args, exclude)
        val_set = (ValInputs(args.root_dir, args.pseudo_labels, args.val_videos, exclude) if args.val_inputs == "unet"
                   else TrueValInputs(args.root_dir, args.val_videos, exclude))
        print0(f"model: {count_parameters(model) / 1e6:.3f}M parameters, {model.config}; {len(train_set)} training "
               f"videos, {len(val_set)} val videos ({val_set.truth.describe()})", ctx=ctx)
        setup = prepare_optimization(args, run_args, ctx, model, train_set, val_set, resume_guard(run_args),
                                     unit="training videos")

        def compute_loss(model, batch):
            masks = batch["masks"].to(ctx.device, non_blocking=True)  # (B, 22, H, W) uint8
            steps = batch["own_steps"].to(ctx.device)
            return simvp_loss(model, masks, steps, args.final_weight, args.iou_weight), len(masks)

        def validate(model):
            model.eval()
            return score_masks(model, setup.val_loader, ctx.device, show=ctx.is_main)

        return fit(setup, wrap_ddp(model, ctx), compute_loss, validate, ctx, epochs=args.epochs, args=run_args,
                   grad_clip=args.grad_clip, score_name="val_jaccard", val_every=args.val_every)
    finally:
        teardown_distributed(ctx)


if __name__ == "__main__":
    sys.exit(run_cli(main))
