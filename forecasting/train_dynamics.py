"""Train the learned object dynamics: tracks of frames 1-11 -> each object's move, size and visibility in 12-22.

    python scripts/make_pseudo_labels.py --root_dir D --saved_seg_model_dir U/best.pt --split unlabeled --out P
    python forecasting/train_dynamics.py --root_dir D --pseudo_labels P --saved_seg_model_dir U/best.pt \
        --checkpoint_dir checkpoints/dynamics
    ... --resume                                              # continue from last.pt
    torchrun --nproc_per_node=2 forecasting/train_dynamics.py ...   # DDP, --batch_size per process

Pre-trained on synthetic videos, then fine-tuned on your own videos' pseudo-labels:

    python forecasting/train_dynamics.py --root_dir SYN --val_inputs true --unlabeled_videos 0 \
        --checkpoint_dir checkpoints/dynamics_synthetic
    python forecasting/train_dynamics.py --root_dir Dataset_Student --pseudo_labels P --saved_seg_model_dir U/best.pt \
        --train_videos 0 --init_from checkpoints/dynamics_synthetic/best.pt --checkpoint_dir checkpoints/dynamics

Training videos: the unlabeled split's pseudo-labels (P/unlabeled, all 22 frames segmented by the U-Net)
plus the train split's true masks, each turned once into object tracks (forecasting/tracks.py) held in
memory. Validation: the val split as inference sees it, the U-Net's masks of frames 1-11 (segmented
once into P/val) as inputs, each frame-11 object moved and painted, scored against the true mask of
frame 22 with the competition's metric; best.pt keeps the best val Jaccard.
Loss (forecasting/dynamics.py: dynamics_loss): the moves of frames 12-22 (frame 22 weighted up), size
ratios and visibility. The rollout runs on the model's own predictions; --teacher_prob feeds it the true
state instead with that probability per video and step (scheduled sampling). Random left-right flips;
AdamW with warm-up and cosine decay per batch; gradient clipping.
"""
import argparse
import sys
from functools import partial

import numpy as np
import torch.distributed as dist
from torch.utils.data import ConcatDataset, Dataset
from tqdm import tqdm

from data.format import LAST_INPUT_INDEX, NUM_INPUT_FRAMES, WIDTH
from data.metric import SegmentationScore
from data.pseudo_labels import StoredMaskVideos, TrueMaskVideos
from data.readers import SplitIndex, add_exclude_args, check_before_training, read_exclusions
from forecasting.floor import fit_floor_view
from forecasting.motion_args import MOTION_RULES, add_motion_args, resolve_motion
from forecasting.tracks import segmenter_errors
from forecasting.dynamics import ObjectDynamics, dynamics_loss, flip_sample, predict_masks, track_sample, video_tracks  # noqa:E501
from engine import (
    OPTIMIZER_RULES, RUN_RULES, add_optimizer_args, add_run_args, at_least, between, check_flags, count_parameters, fit, prepare_optimization, print0, resume_guard, run_cli,
    RandomFlips, load_for_flag, setup_distributed, start_run, teardown_distributed, wrap_ddp,
)
from engine.flags import add_old_spellings
from pipeline.val_inputs import (
    STORE_VOTE, TrueValInputs, ValInputs, add_mask_video_args, check_mask_video_args, prepare_val_inputs,
)

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_mask_video_args(p)
    p.add_argument("--val_inputs", choices=("unet", "true"), default="unet",
                   help="validate from the U-Net's masks of val frames 1-11 (as inference sees them) or from the true "
                        "masks (synthetic experiments: no U-Net needed)")
    add_optimizer_args(p, epochs=10, batch_size=16, learning_rate=2e-3, unit="videos")
    p.add_argument("--teacher_prob", type=float, default=0.0,
                   help="probability per video and future step of continuing from the true state instead of the "
                        "predicted one (scheduled sampling; 0: always its own rollout, as at inference)")
    p.add_argument("--windows", type=int, default=3,
                   help="training windows per video: the one ending at frame 11 and those ending 1, 2, ... frames "
                        "earlier (each predicts the 11 frames after its end): more motion to learn from per video")
    p.add_argument("--coords", choices=("image", "floor"), default="floor",
                   help="what the model reads and predicts tracks in: floor coordinates through the camera fitted on "
                        "the training masks (forecasting/floor.py), which carry to another camera, or image pixels")
    p.add_argument("--init_from", default=None, metavar="PATH",
                   help="start from this dynamics checkpoint's weights (its model_config rebuilds the model: --coords, "
                        "--velocity_keep and the width flags are then unused; a model of the floor takes the view of the masks it is "
                        "now trained on): fine-tuning a model pre-trained on synthetic videos on your own pseudo-labels")
    p.add_argument("--velocity_keep", type=float, default=None,
                   help="a learned share of its velocity that an object keeps per future frame, starting here "
                        "(objects slide with friction; 0.93 per frame covers about the two thirds of the "
                        "constant-velocity way in 11 frames that the motion model's damping fits on synthetic train "
                        "splits); default: no such factor, the model starts at constant velocity")
    p.add_argument("--segmenter_errors", type=float, default=0.0,
                   help="for half the train split's videos, the input frames carry a segmenter's errors: each object "
                        "in each frame with this probability left out, its class flipped, or its boundary moved by a "
                        "pixel (forecasting/tracks.py: segmenter_errors); the pseudo-labels have their own, so it "
                        "needs train videos (not with --train_videos 0)")
    add_motion_args(p)
    p.set_defaults(motion=None)  # no blend unless asked for
    p.add_argument("--motion_blend", type=float, default=None,
                   help="with --motion: the learned model's share of each object's frame-22 centroid and size, the "
                        "rest the motion model's; stored in the checkpoint, so validation and every inference script "
                        "forecast the blend (forecasting/dynamics.py: set_blend; 1: the learned model alone; "
                        "default with --motion: 0.5)")
    p.add_argument("--guided", action="store_true",
                   help="with --motion: the network corrects the motion model's forecast instead of rolling objects on "
                        "at constant velocity (each object at the motion model's place plus a learned offset that "
                        "starts at zero: untrained, it forecasts as the motion model); stored in the checkpoint")
    p.add_argument("--final_weight", type=float, default=2.0, help="extra weight of frame 22's moves in the loss")
    p.add_argument("--state_width", dest="hidden", type=int, default=96, help="width of each object's recurrent state")
    p.add_argument("--message_width", dest="message", type=int, default=96, help="width of the messages between two objects")
    add_exclude_args(p)
    add_run_args(p, checkpoint_default="checkpoints/dynamics")
    p.set_defaults(num_workers=0)  # tracks are held in memory: workers would only copy them
    add_old_spellings(p, {'--hidden': '--state_width', '--message': '--message_width'})  # kept for one release
    args = p.parse_args(argv)
    check_flags(p, args, {**RUN_RULES, **OPTIMIZER_RULES, "windows": between(1, NUM_INPUT_FRAMES),
                          "hidden": at_least(1), "message": at_least(1), "val_videos": at_least(0),
                          "final_weight": at_least(0), "teacher_prob": between(0, 1),
                          "segmenter_errors": between(0, 1), "motion_blend": between(0, 1), **MOTION_RULES})
    check_mask_video_args(p, args)
    if args.velocity_keep is not None and not 0 < args.velocity_keep < 1:
        p.error(f"--velocity_keep must be in (0, 1), got {args.velocity_keep}")
    if args.guided and ((args.motion is None and args.init_from is None) or args.velocity_keep is not None
                        or args.teacher_prob > 0):
        p.error("--guided corrects the motion model: it needs --motion FILE or fit (or an --init_from model that was "
                "guided), and takes neither --velocity_keep (the motion model slows objects down) nor --teacher_prob")
    if args.motion is None:
        given = [f"--{k}" for k in ("motion_blend", "damping", "horizon_row", "contact", "focal")
                 if getattr(args, k) is not None]
        if given:
            p.error(f"{', '.join(given)} set the blend with the motion model, which needs --motion FILE or fit")
    elif args.motion_blend is None:
        args.motion_blend = 0.5
    if args.segmenter_errors > 0 and args.train_videos == 0:
        p.error("--segmenter_errors puts errors into train videos' inputs, but --train_videos 0 trains on none")
    return args


class TrackSamples(Dataset):
    """Mask videos (items {"masks": (22, H, W)}) turned once into track samples (forecasting/dynamics.py:
    track_sample; `windows` of them per video, ending at frame 11, 10, ...)."""

    def __init__(self, videos: Dataset, desc: str = "tracks", show: bool = True, windows: int = 1, view=None,
                 errors: float = 0.0, seed: int = 0, guide=None):
        ends = [LAST_INPUT_INDEX - k for k in range(windows)]
        self.samples = []
        for i in tqdm(range(len(videos)), desc=desc, disable=not show, dynamic_ncols=True):
            masks = videos[i]["masks"].numpy()
            whole = video_tracks(masks)  # shared by the video's windows; targets from the masks as they are
            if errors > 0:  # inputs with a segmenter's errors, for half the videos (the same ones every run)
                rng = np.random.default_rng([seed, i])
                if rng.random() < 0.5:
                    masks = masks.copy()
                    masks[:NUM_INPUT_FRAMES] = segmenter_errors(masks[:NUM_INPUT_FRAMES], rng, errors)
            self.samples += [track_sample(masks, end=end, whole=whole, view=view, guide=guide) for end in ends]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]


VIEW_VIDEOS = 200  # training videos the floor view is fitted on: plenty for two numbers


def mask_sources(args, exclude) -> list:
    """(description, mask videos, segmenter error rate of their inputs) of what the model trains on: the
    pseudo-labels (a segmenter's masks already: no errors added), the train masks, or both."""
    sources = []
    if args.unlabeled_videos != 0:
        sources.append(("tracks of pseudo-labels", StoredMaskVideos(args.pseudo_labels, "unlabeled", args.root_dir,
                                                                     max(args.unlabeled_videos, 0), exclude=exclude,
                                                                     per_video=STORE_VOTE), 0.0))
    if args.train_videos != 0:
        sources.append(("tracks of train masks", TrueMaskVideos(args.root_dir, "train", max(args.train_videos, 0),
                                                                exclude=exclude), args.segmenter_errors))
    return sources


def training_view(sources: list):
    """The FloorView of the training masks (forecasting/floor.py), from the first VIEW_VIDEOS of them."""
    videos = []
    for _, masks, _ in sources:
        videos += [masks[i]["masks"].numpy() for i in range(min(len(masks), VIEW_VIDEOS - len(videos)))]
    return fit_floor_view(videos)


def training_videos(args, sources: list, show: bool, view=None, guide=None) -> Dataset:
    """The track samples of the pseudo-labels and the train masks, each mirrored left-right with probability
    1/2 per epoch (RandomFlips: the same flips whatever the processes or resumes). guide: the motion model a
    guided model corrects."""
    parts = [TrackSamples(videos, desc, show, args.windows, view, errors=errors, seed=args.seed, guide=guide)
             for desc, videos, errors in sources]
    return RandomFlips(ConcatDataset(parts) if len(parts) > 1 else parts[0], args.seed,
                       flip=partial(flip_sample, width=WIDTH))  # a partial, not a lambda: workers pickle it


def score_masks(model, loader, device, show: bool = True) -> dict:
    """The model's and the copy's val Jaccard from (frames 1-11 masks (B, 11, H, W), true frame 22 (B, H, W)), the
    model forecasting as inference does (predict_masks: its blend, and the mean with the mirror image's forecast,
    since d3f6c08; a run validated before then kept its best.pt by the forecast of the video alone)."""
    score, copy = SegmentationScore(device), SegmentationScore(device)
    for inputs, truth in tqdm(loader, desc="val", disable=not show, leave=False, dynamic_ncols=True):
        truth = truth.to(device)
        score.update(predict_masks(model, inputs).to(device), truth)
        copy.update(inputs[:, LAST_INPUT_INDEX].to(device), truth)
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
        # every file this run reads, by header, before the tracks are made and before epoch 1
        train_masks = TrueMaskVideos(args.root_dir, "train", exclude=exclude) if args.train_videos != 0 else None
        if train_masks is not None:
            print0(f"train: {train_masks.index.describe()}", ctx=ctx)
        check_before_training(train_masks, SplitIndex(args.root_dir, "val", frame_indices=range(NUM_INPUT_FRAMES),
                                                      need_mask=True, exclude=exclude), progress=ctx.is_main)
        init = load_for_flag(args.init_from, ObjectDynamics, "--init_from") if args.init_from else None
        if init is not None:  # the checkpoint decides what the model works in
            args.coords = "image" if init.view is None else "floor"
            if args.guided and init.guide is None:
                raise ValueError(f"--guided: {args.init_from} was trained unguided; its weights correct no motion model")
            if init.guide is not None and args.teacher_prob > 0:
                raise ValueError(f"--teacher_prob: {args.init_from} is guided, and a guided model rolls out on its "
                                 f"own offsets: leave --teacher_prob at 0")
        sources = mask_sources(args, exclude)
        view = None
        if args.coords == "floor":
            try:
                view = training_view(sources)
            except ValueError as err:
                if init is None:
                    raise ValueError(f"--coords floor: {err}; train with --coords image") from None
                view = init.view  # the masks do not show the camera: keep the one it was trained through
                print0(f"floor view: {err}; keeping {args.init_from}'s", ctx=ctx)
        if view is not None:
            print0(f"floor view of the training masks: horizon row {view.horizon_row:g}, size slope "
                   f"{view.size_slope:.4f} px per row, nominal focal {view.focal:g} px", ctx=ctx)
        motion = None if args.motion is None else resolve_motion(args, args.root_dir, print_fn=lambda m: print0(m, ctx=ctx),
                                                                  exclude=exclude)
        # the motion model a guided model corrects: an --init_from model's own, else --motion's with --guided
        guide = (init.guide if init is not None else motion if args.guided else None)
        if init is not None and guide is not None:
            print0(f"--init_from's guide is kept: its weights correct that motion model ({guide.describe()})", ctx=ctx)
        train_set = training_videos(args, sources, show=ctx.is_main, view=view, guide=guide)
        val_set = (ValInputs(args.root_dir, args.pseudo_labels, args.val_videos, exclude) if args.val_inputs == "unet"
                   else TrueValInputs(args.root_dir, args.val_videos, exclude))
        if init is not None:
            model = init.train()
            if view is not None:
                model.set_view(view)  # the camera of the data it now learns from
            print0(f"initialised from {args.init_from}", ctx=ctx)
        else:
            model = ObjectDynamics(hidden=args.hidden, message=args.message,
                                   view=None if view is None else view.to_config(),
                                   keep=args.velocity_keep, guide=None if guide is None else guide.to_config())
        if motion is not None:  # an --init_from model keeps its own blend unless given one
            model.set_blend(motion, args.motion_blend)
        elif model.blend is not None:
            print0(f"--init_from's blend is kept: {model.blend[0]:g} of the learned model, the rest its motion model "
                   f"({model.blend[1].describe()}), fitted on its own training data: give --motion FILE or fit for "
                   f"this data's", ctx=ctx)
        model = model.to(ctx.device)
        print0(f"model: {count_parameters(model) / 1e6:.3f}M parameters, {model.config}; "
               f"{len(train_set)} training videos, {len(val_set)} val videos ({val_set.truth.describe()})", ctx=ctx)
        # runs from before --coords were of the image; those from before --motion had no blend (the defaults)
        setup = prepare_optimization(args, run_args, ctx, model, train_set, val_set,
                                     resume_guard(run_args, before={"coords": "image", "motion_videos": 200, "guided": False}), unit="training videos")

        def compute_loss(model, batch):
            batch = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
            pred = model(batch, teacher=batch, teacher_prob=args.teacher_prob)  # teacher_prob 0: its own rollout
            return dynamics_loss(pred, batch, final_weight=args.final_weight), len(batch["obs"])

        def validate(model):
            return score_masks(model, setup.val_loader, ctx.device, show=ctx.is_main)

        return fit(setup, wrap_ddp(model, ctx), compute_loss, validate, ctx, epochs=args.epochs, args=run_args,
                   grad_clip=args.grad_clip, score_name="val_jaccard", val_every=args.val_every)
    finally:
        teardown_distributed(ctx)


if __name__ == "__main__":
    sys.exit(run_cli(main))
