"""The learned object dynamics against the hand-written motion model and the copy, on frame 22.

    python scripts/bench/bench_dynamics.py --root_dir D --saved_dynamics_model_dir DYN/best.pt --motion M.json \
        [--pseudo_labels P] [--real_root ../shared/real_samples/Dataset_Student] [--scores_json S.json]
    ... --saved_dynamics_model_dir DYN_A/best.pt DYN_B/best.pt DYN_C/best.pt   # an ensemble (several --seed)

Rows, each a dataset-level Jaccard of frame 22:
- on the val split of D, from the true masks of frames 1-11: copy frame 11, the motion model, the learned model
  alone, and its blend with the motion model (each object's frame-22 centroid and size a weighted mean of the two
  forecasts: --motion_blend with --motion's model, or by default the checkpoint's own blend, as the inference
  scripts forecast, else 0.5 with --motion's model);
- from the U-Net's masks of frames 1-11 (P/val, as the dynamics train script stores them), the same four;
- on the labeled real videos under --real_root (train and val together, true masks of frames 1-11), the same
  four: a measurement only (nothing here fits on them);
- with --real_unet U.pt: the same six videos as the U-Net segments them, its masks of frames 1-11 (voted per video
  on their own, as inference sees them) in and its frame 22 (of all 22 frames segmented together) as the truth (how unlabeled real videos can be scored; a U-Net trained on synthetic
  frames only keeps the row free of real labels);
the median distance between each object's predicted and true centroid at frame 22 (objects wholly inside the
frame in frames 11 and 22), and the learned model's speed from masks to painted frame 22 (the U-Net excluded), in videos per second.
"""
import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from data.classes import NUM_CLASSES
from data.format import LAST_INPUT_INDEX, NUM_FRAMES, NUM_INPUT_FRAMES, TARGET_INDEX
from data.metric import SegmentationScore
from data.pseudo_labels import StoredMaskVideos
from forecasting.dynamics import ObjectDynamics, blend_weight, ensemble_blend, ensemble_outputs, paint_masks
from forecasting.floor import fit_floor_view
from forecasting.motion import Motion, extrapolate_mask
from forecasting.tracks import extract_tracks
from engine import load_model, run_cli
from pipeline.cli import add_scores_json_arg, check_scores_json, write_scores
from pipeline.evaluate import video_loader
from pipeline.field import true_inputs
from Unets.postprocess import vote_per_video
from Unets.segment import segment
from Unets.unet import UNet

BATCH = 16


def inputs_view(dynamics, inputs: list, name: str, how: str = "inputs"):
    """For a model of the floor (or an ensemble, a list, with one), the camera of the videos it is scored on, as
    inference would have it: fitted on their input frames 1-11 (forecasting/floor.py: fit_floor_view; a physical
    constant of their camera, not a fit to what is scored), or the model's own when they show no depth travel.
    None for a model of the image, and with how "model" for an ensemble (each member then uses its own)."""
    models = dynamics if isinstance(dynamics, list) else [dynamics]
    floor = [m for m in models if m.view is not None]
    if not floor or (how == "model" and len(models) > 1):
        return None
    dynamics = floor[0]
    if how == "model":
        return dynamics.view
    try:
        view = fit_floor_view([m.numpy() for m in inputs])
    except ValueError as err:
        print(f"{name}: no floor view fitted ({err}); the model's own is used: horizon row "
              f"{dynamics.view.horizon_row:g}, size slope {dynamics.view.size_slope:.4f}")
        return dynamics.view
    print(f"{name}: floor view fitted on the inputs: horizon row {view.horizon_row:g}, size slope "
          f"{view.size_slope:.4f} (the model's: {dynamics.view.horizon_row:g}, {dynamics.view.size_slope:.4f})")
    return view


def score_inputs(inputs: list, targets: list, dynamics, motion: Motion, name: str = "inputs", how: str = "inputs",
                 blend: float = 0.5, blend_motion: Motion = None, mirror: bool = True) -> dict:
    """Frames 1-11 masks (11, H, W) and frame-22 truths (H, W) -> {copy, motion, dynamics (the learned model alone),
    blend (its blend with the motion model, the learned share `blend`): Jaccard} and the dynamics' seconds; how: the
    view a floor model sees them through (inputs_view). dynamics: a model or a list (an ensemble: predict_masks);
    mirror: each forecast the mean of the video's and its mirror image's."""
    models = list(dynamics) if isinstance(dynamics, (list, tuple)) else [dynamics]
    view = inputs_view(models, inputs, name, how)
    scores = {name: SegmentationScore() for name in ("copy", "motion", "dynamics", "blend")}
    errors = {name: [] for name in scores}
    seconds = 0.0
    for i in range(0, len(inputs), BATCH):
        masks, truth = torch.stack(inputs[i:i + BATCH]), torch.stack(targets[i:i + BATCH])
        start = time.perf_counter()
        outputs = ensemble_outputs(models, masks, view, mirror)  # once for both: alone and blended
        preds = {"dynamics": paint_masks(masks, outputs)}
        seconds += time.perf_counter() - start
        preds["blend"] = paint_masks(masks, outputs, motion=blend_motion or motion, weight=blend)
        preds["copy"] = masks[:, LAST_INPUT_INDEX]
        preds["motion"] = torch.stack([extrapolate_mask(m, motion) for m in masks])
        for k, pred in preds.items():
            scores[k].update(pred, truth)
            for m, p, t in zip(masks, pred, truth):
                errors[k] += centroid_errors(m[LAST_INPUT_INDEX], p, t)
    out = {k: round(v.compute(), 4) for k, v in scores.items()}
    out.update({f"{k}_centroid_px": round(float(np.median(v)), 2) if v else None for k, v in errors.items()})
    out.update(objects=len(errors["copy"]), videos=len(inputs), dynamics_videos_per_s=round(len(inputs) / max(seconds, 1e-9), 1))
    return out


def _centroids(mask: torch.Tensor) -> dict:
    """{class id: (row, column)} of every object of at least MIN_PIXELS pixels in an (H, W) mask."""
    tracks = extract_tracks(mask[None].numpy(), max_objects=NUM_CLASSES)
    return {int(c): tracks.centroid[0, k] for k, c in enumerate(tracks.classes)}


def centroid_errors(frame11: torch.Tensor, pred: torch.Tensor, truth: torch.Tensor) -> list:
    """Pixels between the predicted and the true frame-22 centroid of each object wholly inside the frame in
    frames 11 and 22 (one the prediction dropped counts at its frame-11 centroid: where it was left)."""
    pair = extract_tracks(np.stack([frame11.numpy(), truth.numpy()]), max_objects=NUM_CLASSES)
    got = _centroids(pred)
    errors = []
    for k, c in enumerate(pair.classes):
        if pair.present[:, k].all() and not pair.cut[:, k].any():
            errors.append(float(np.hypot(*(got.get(int(c), pair.centroid[0, k]) - pair.centroid[1, k]))))
    return errors


@torch.no_grad()
def segmented_videos(root, splits, unet) -> tuple:
    """The U-Net's masks of every video of root's splits, in true_inputs' order: ([frames 1-11 (11, H, W), segmented
    and voted per video on their own, as inference sees them], [frame 22 (H, W) of all 22 frames segmented and voted
    together: the stand-in truth])."""
    inputs, truths = [], []
    for split in splits:
        for batch in video_loader(root, split, 1, 0, "cpu", frame_indices=range(NUM_FRAMES)):
            masks = segment(unet, batch["frames"][0]).cpu()  # (22, H, W), each frame once; then the two votes
            inputs.append(vote_per_video(masks[:NUM_INPUT_FRAMES]).to(torch.uint8))
            truths.append(vote_per_video(masks)[TARGET_INDEX].to(torch.uint8))
    return inputs, truths


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", required=True, help="synthetic dataset root holding val/")
    parser.add_argument("--saved_dynamics_model_dir", required=True, nargs="+", metavar="CKPT",
                        help="checkpoint of forecasting/train_dynamics.py; several: their ensemble (each object's "
                             "forecast the mean of theirs, blended as their shared blend says, or by --motion_blend)")
    parser.add_argument("--no_mirror", dest="mirror", action="store_false",
                        help="each forecast from the video alone, not the mean of the video's and its left-right "
                             "mirror image's (what the inference scripts forecast)")
    parser.add_argument("--motion", required=True, help="the motion model's JSON (scripts/fit_motion.py --out)")
    parser.add_argument("--pseudo_labels", default=None,
                        help="folder whose val/ holds the U-Net's masks of val frames 1-11 (the dynamics train script "
                             "makes it); without it the U-Net rows are left out")
    parser.add_argument("--real_root", default=None, help="a root with labeled real videos (train/, val/); rows left out if absent")
    parser.add_argument("--real_unet", default=None,
                        help="a U-Net checkpoint (Unets/train.py) that segments every frame of the real videos: the "
                             "row with its masks in and out (default: no such row)")
    parser.add_argument("--view", choices=("inputs", "model"), default="inputs",
                        help="the camera a floor model sees each row's videos through: fitted on their frames 1-11, or "
                             "the model's own (what the inference scripts use)")
    parser.add_argument("--motion_blend", type=float, default=None,
                        help="the learned model's share in the blend column (forecasting/dynamics.py: set_blend), with "
                             "--motion's model for the rest (default: the checkpoint's blend, else 0.5)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the speed is quoted per thread count)")
    add_scores_json_arg(parser)  # one flat object, '<inputs>.<row>' keys: 'true.dynamics', 'unet.motion', 'real.copy'
    args = parser.parse_args()
    check_scores_json(args)  # before any work: never over a checkpoint, a mask or an input
    torch.set_num_threads(args.threads)

    models = [load_model(path, ObjectDynamics) for path in args.saved_dynamics_model_dir]
    motion = Motion.from_config(json.loads(Path(args.motion).read_text()))
    try:
        blend = blend_weight(args.motion_blend) if args.motion_blend is not None else None
        own = ensemble_blend(models, args.saved_dynamics_model_dir) if args.motion_blend is None else None
    except ValueError as err:
        parser.error(f"--motion_blend: {err}" if args.motion_blend is not None
                     else f"--saved_dynamics_model_dir: {err}, or give --motion_blend")
    # the checkpoints' own blend, as inference forecasts it (its motion model too), unless told another weight
    blend_motion = own[1] if own and own[1] is not None else motion
    if blend is None:
        blend = own[0] if own[1] is not None else 0.5
    results = {"threads": args.threads, "motion": motion.to_config(), "motion_blend": blend, "models": len(models),
               "mirror": args.mirror}
    score = partial(score_inputs, dynamics=models, motion=motion, how=args.view, blend=blend, blend_motion=blend_motion,
                    mirror=args.mirror)
    inputs, targets, _, ids = true_inputs(args.root_dir, ["val"])
    results["true"] = score(inputs, targets, name="synthetic val")
    if args.pseudo_labels:
        stored = StoredMaskVideos(args.pseudo_labels, "val", args.root_dir)
        by_id = dict(zip(ids, targets))
        unet_inputs = [torch.as_tensor(stored[i]["masks"])[:NUM_INPUT_FRAMES] for i in range(len(stored))]
        results["unet"] = score(unet_inputs, [by_id[v] for v in stored.video_ids], name="synthetic val, U-Net masks")
    if args.real_root and Path(args.real_root).is_dir():
        real_inputs, real_targets, _, _ = true_inputs(args.real_root, ["train", "val"])
        results["real"] = score(real_inputs, real_targets, name="real videos")
        if args.real_unet:
            unet_inputs, unet_truths = segmented_videos(args.real_root, ["train", "val"], load_model(args.real_unet, UNet))
            results["real_unet"] = score(unet_inputs, unet_truths, name="real videos, U-Net masks")
    print(f"| inputs (frames 1-11) | videos | copy frame 11 | motion model | learned dynamics | dynamics {blend:g} + motion "
          f"model {1 - blend:g} | dynamics videos/s | objects | median centroid error at frame 22, px: copy / motion / "
          f"dynamics / blend |")
    print("|---|---|---|---|---|---|---|---|---|")
    labels = {"true": "synthetic val, true masks", "unet": "synthetic val, U-Net masks",
              "real": "real train+val, true masks", "real_unet": "real train+val, U-Net masks in and out"}
    for name, r in results.items():
        if isinstance(r, dict) and "copy" in r:
            print(f"| {labels[name]} | {r['videos']} | {r['copy']:.4f} | {r['motion']:.4f} | {r['dynamics']:.4f} | "
                  f"{r['blend']:.4f} | {r['dynamics_videos_per_s']} | {r['objects']} | {r['copy_centroid_px']} / "
                  f"{r['motion_centroid_px']} / {r['dynamics_centroid_px']} / {r['blend_centroid_px']} |")
    if args.scores_json:
        flat = {f"{inputs}.{k}": v for inputs, r in results.items() if isinstance(r, dict) and "copy" in r
                for k, v in r.items()}
        flat.update(threads=args.threads, motion_blend=blend, models=len(models), mirror=args.mirror)
        write_scores(args.scores_json, flat)
        print(f"wrote {args.scores_json}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
