"""Train the U-Net to segment frames: every frame of the train split with its mask, validated on the
val split's frames with the competition's metric (dataset-level Jaccard); best.pt keeps the best.

    python Unets/train.py --root_dir Dataset_Student --checkpoint_dir checkpoints/unet
    python Unets/train.py ... --resume                                  # continue from last.pt
    torchrun --nproc_per_node=4 Unets/train.py ...                      # DDP, --batch_size per process

Recipe: cross-entropy (+ --dice_weight x soft Dice), AdamW, learning rate warmed up over 5% of the
steps then cosine-decayed (stepped per batch), gradient clipping, random left-right flips (geometry
only: color is the class). Each frame is trained on as one --crop_size crop centred near an object
(Unets/crops.py: ObjectCrops; validation and inference segment whole frames, then each object again
in such a crop, as training saw it: Unets/segment.py: refine_with_crops), and the network's head
scores a class as background, or object + its shape + material + color (Unets/unet.py:
FactoredOutConv). Both make the default recipe much faster to a given val Jaccard on CPU;
scripts/bench/bench_unet.py measures it.
--object_head W (the small preset's): the pixels learn background and color only (cross-entropy over
the 9 color logits), and an object head learns each object's shape and material from a window around
it, cut from the step's whole frames (Unets/objects.py); segmentation gives each piece of one color
its class from the head.
--batch_size is per process: under torchrun the global batch is nproc x batch_size, and N processes
take the same steps as one process with N times the batch (tested on CPU).

--init_from fine-tunes from a U-Net checkpoint (its model_config rebuilds the model; optimizer and schedule
start fresh).
"""
import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.nn import functional as F
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from data.classes import NUM_CLASSES
from data.format import HEIGHT, NUM_FRAMES
from data.metric import SegmentationScore
from data.readers import LabeledFrameDataset, add_exclude_args, check_before_training, read_exclusions, to_float
from Unets.segment import segment
from engine import (
    load_for_flag,
    OPTIMIZER_RULES, RUN_RULES, add_optimizer_args, at_least, between, check_flags, resume_guard,
    RandomFlips, RunState, add_run_args, fit, memory_format, prepare_optimization, print0, run_cli,
    setup_distributed, start_run, teardown_distributed, wrap_ddp,
)
from Unets.crops import ObjectCrops
from Unets.objects import training_objects
from Unets.postprocess import CLASS_COLOR
from Unets.unet import DEFAULT, HEADS, NORMS, UNet


OBJECTS_PER_STEP = 64  # the object head's batch: the first objects of the step's whole frames
MIN_CROP = 16  # the U-Net halves its input 4 times (Unets/unet.py: down1..down4); a smaller crop vanishes

# --preset NAME: another set of defaults (flags given on the command line still win). "small" is for a
# CPU budget of a few minutes on a small split (the quickstart: 300 train videos, 2 cores).
PRESETS = {
    "small": dict(base_channels=8, norm="batch", scale=2, crop_size=96, batch_size=16, learning_rate=1e-2,
                  epochs=20, cache_frames=True, num_workers=0, object_head=16),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", default="Dataset_Student", help="dataset root holding train/ and val/")
    add_optimizer_args(p, epochs=20, batch_size=16, learning_rate=5e-3, unit="frames")
    p.add_argument("--dice_weight", type=float, default=0.0, help="loss = cross-entropy + this x soft Dice over each process's batch (0: CE only; "
                   "Dice is not a mean over frames, so under torchrun it differs slightly from 1 process)")
    p.add_argument("--base_channels", type=int, default=DEFAULT["base_channels"],
                   help="U-Net width: channels of the first level")
    p.add_argument("--head", choices=HEADS, default=DEFAULT["head"],
                   help="class logits: 'factored' (background | object + shape + material + color) or 'flat' (one per class)")
    p.add_argument("--crop_size", type=int, default=64,
                   help="train on one crop of this size per frame, centred near an object (0: whole frames); "
                        "recorded in the model's config: segmentation re-segments each object in such a crop")
    p.add_argument("--norm", choices=NORMS, default="group",
                   help="normalisation layers: 'group' (GroupNorm) or 'batch' (BatchNorm)")
    p.add_argument("--scale", type=int, default=1,
                   help="the U-Net runs at 1/scale of the frames' resolution, its logits upsampled back (bilinear)")
    p.add_argument("--object_head", type=int, default=0,
                   help="width of the object head that decides each object's shape and material from a window "
                        "around it (Unets/objects.py; 0: none, the pixel head decides)")
    p.add_argument("--cache_frames", action="store_true",
                   help="decode the train frames and masks once and keep them in memory (153 KB a frame: "
                        "small splits only); saves a PNG decode per sample and step")
    p.add_argument("--train_videos", type=int, default=0,
                   help="train on the frames of the first N train videos only (0: all)")
    p.add_argument("--val_videos", type=int, default=0,
                   help="validate on the frames of the first N val videos only (0: all, the honest score)")
    p.add_argument("--init_from", default=None, metavar="PATH",
                   help="fine-tune: start from this U-Net checkpoint's weights (model rebuilt from it, --base_channels unused)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="start from this preset's defaults (" + "; ".join(
                       f"{k}: " + " ".join(f"--{f} {v}" for f, v in d.items()) for k, d in PRESETS.items()) + ")")
    add_exclude_args(p)
    add_run_args(p, checkpoint_default="checkpoints/unet")
    preset = p.parse_known_args(argv)[0].preset
    if preset:
        p.set_defaults(**PRESETS[preset])
    args = p.parse_args(argv)
    max_scale = HEIGHT // MIN_CROP  # the frame at 1/scale must still be halved 4 times
    scale = args.scale if 1 <= args.scale <= max_scale else 1
    crop_ok = args.crop_size == 0 or MIN_CROP * scale <= args.crop_size <= HEIGHT
    check_flags(p, args, {
        **RUN_RULES, **OPTIMIZER_RULES, "base_channels": at_least(1), "train_videos": at_least(0),
        "val_videos": at_least(0), "dice_weight": at_least(0), "object_head": at_least(0),
        "scale": between(1, max_scale),
    }, more=[
        None if crop_ok else (f"--crop_size must be 0 (whole frames) or >= {MIN_CROP * scale} (the U-Net halves its "
                              f"input 4 times, at 1/--scale of its resolution) and <= {HEIGHT}, the frame's height; "
                              f"got {args.crop_size}"),
        "--object_head: a U-Net with one learns colors, not classes, by pixel: no --dice_weight"
        if args.object_head > 0 and args.dice_weight else None,
    ])
    return args


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice averaged over the 49 classes, over the whole batch: logits (B, C, H, W), target (B, H, W)."""
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(target, NUM_CLASSES).permute(0, 3, 1, 2).to(probs.dtype)  # (B, H, W, C) -> (B, C, H, W)
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    return 1 - ((2 * inter + eps) / (total + eps)).mean()


class FramePairs(Dataset):
    """(frame (3, H, W) uint8, mask (H, W) uint8) pairs held in memory, items like LabeledFrameDataset's."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor):
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.masks[i]


def main(argv=None) -> RunState:
    args = parse_args(argv)
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    ctx = setup_distributed(args.device)
    try:
        run_args = start_run(args, ctx)

        train_set, score_name = LabeledFrameDataset(args.root_dir, "train", exclude=exclude), "val_jaccard"
        # every train and val file by header now: a bad frame in the last val video stops the run before epoch 1
        check_before_training(train_set, LabeledFrameDataset(args.root_dir, "val", exclude=exclude),
                              progress=ctx.is_main)
        print0(f"train: {train_set.index.describe()}"
               + (f"; the first {args.train_videos} used" if args.train_videos else ""), ctx=ctx)
        if args.train_videos:  # items are video-major: a video's 22 frames follow each other
            train_set = Subset(train_set, range(min(len(train_set), args.train_videos * NUM_FRAMES)))
        val_set = LabeledFrameDataset(args.root_dir, "val", exclude=exclude)
        print0(f"val: {val_set.index.describe()}", ctx=ctx)
        if args.val_videos:
            val_set = Subset(val_set, range(min(len(val_set), args.val_videos * NUM_FRAMES)))
        if args.cache_frames:  # every (frame, mask) item decoded once, then served from memory
            # two threads: decoding a PNG releases the GIL, and map keeps the items in order
            with ThreadPoolExecutor(max_workers=2) as pool:
                images, masks = zip(*tqdm(pool.map(train_set.__getitem__, range(len(train_set))), total=len(train_set),
                                          desc="cache train frames", disable=not ctx.is_main, leave=False))
            train_set = FramePairs(torch.stack(images), torch.stack(masks))
        if args.init_from:  # fine-tuning: the architecture comes with the weights
            model = load_for_flag(args.init_from, UNet, "--init_from").train()
            object_head = model.config.get("object_head", 0)
            if args.object_head and args.object_head != object_head:
                raise ValueError(f"--object_head {args.object_head}, but {args.init_from} has "
                                 + (f"an object head of width {object_head}" if object_head else "no object head")
                                 + ": leave --object_head out when fine-tuning (the model brings its own)")
            if object_head and args.dice_weight:
                raise ValueError(f"{args.init_from} has an object head (its pixels learn colors, not classes): "
                                 f"no --dice_weight")
            run_args.update(base_channels=model.config["base_channels"], head=model.config["head"],
                            object_head=object_head)
            print0(f"initialised from {args.init_from}", ctx=ctx)
        else:
            model = UNet(base_channels=args.base_channels, head=args.head, crop_size=args.crop_size, norm=args.norm,
                         scale=args.scale, object_head=args.object_head)
            object_head = args.object_head
        if args.crop_size:  # the object head learns from every object of the whole frames: the crops carry them
            train_set = ObjectCrops(train_set, args.crop_size, seed=args.seed, keep_whole=bool(object_head))
        train_set = RandomFlips(train_set, seed=args.seed)

        model = model.to(ctx.device, memory_format=memory_format(ctx.device))
        print0(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {model.config}", ctx=ctx)
        setup = prepare_optimization(args, run_args, ctx, model, train_set, val_set,
                                     resume_guard(run_args),
                                     unit="training frames")

        def compute_loss(model, batch):
            frames, masks, *rest = batch  # rest: each crop's first row (ObjectCrops), absent for whole frames,
            x = to_float(frames.to(ctx.device, non_blocking=True)).contiguous(memory_format=memory_format(ctx.device))
            target = masks.to(ctx.device, non_blocking=True).long()  # then, for the object head, the whole frames
            top = rest[0] if rest else None
            if not object_head:
                logits = model(x, top)  # (B, 49, H, W)
                loss = F.cross_entropy(logits.float(), target)
            else:  # the pixel head learns where objects are and their color; the object head their shape and material
                whole, whole_masks = rest[1:3] if rest else (frames, masks)  # ObjectCrops(keep_whole) or whole frames
                whole_masks = whole_masks.to(ctx.device, non_blocking=True).long()
                jitter = torch.Generator().manual_seed(args.seed + int(whole_masks.sum()))  # the batch's own draw: resumes alike
                windows, extras, kinds = training_objects(to_float(whole.to(ctx.device, non_blocking=True)), whole_masks,
                                                          OBJECTS_PER_STEP, jitter)
                if not len(kinds):  # no object: one blank window keeps every parameter in the graph (DDP; its loss
                    # counts 0, though it moves the head's BatchNorm statistics a little)
                    windows, extras = windows.new_zeros(1, *windows.shape[1:]), extras.new_zeros(1, 2)
                logits, object_logits = model(x, top, objects=(windows, extras), colors=True)  # (B, 9, H, W), (N, KINDS)
                loss = F.cross_entropy(logits.float(), CLASS_COLOR.to(target.device)[target])
                loss = loss + (F.cross_entropy(object_logits.float(), kinds) if len(kinds) else 0 * object_logits.sum())
            if args.dice_weight:
                loss = loss + args.dice_weight * dice_loss(logits, target)
            return loss, len(frames)

        def validate(model):
            model.eval()
            score = SegmentationScore(ctx.device)
            for frames, masks in tqdm(setup.val_loader, desc="val", disable=not ctx.is_main, leave=False, dynamic_ncols=True):
                score.update(segment(model, frames), masks)
            return score.compute()  # sums the confusion matrices of all ranks under torch.distributed

        return fit(setup, wrap_ddp(model, ctx), compute_loss, validate, ctx, epochs=args.epochs, args=run_args,
                   grad_clip=args.grad_clip, score_name=score_name, val_every=args.val_every)
    finally:
        teardown_distributed(ctx)


if __name__ == "__main__":
    sys.exit(run_cli(main))
