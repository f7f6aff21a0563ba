"""The predictor registry: every way this repository predicts frame 22's mask, by name.

    python scripts/predict.py --method motion --root_dir D --split val      # any registered method
    python Unets/inference_val_with_simvp.py ...                            # the seed's entries, thin over it

A method is a function that builds a predictor (pipeline/evaluate.py: frames (B, 11, 3, H, W) uint8 ->
frame 22's class ids (B, H, W)) from the parsed arguments, registered with the flags it needs:

    def add_my_args(parser):
        parser.add_argument("--saved_my_model_dir", default="checkpoints/my/best.pt", help="...")

    @register_predictor("mine", add_args=add_my_args, help="what it predicts with")
    def build_mine(args, device):
        model = load_for_flag(args.saved_my_model_dir, "my_kind", "--saved_my_model_dir", device)
        return lambda frames: ...

Every method also gets the shared flags (--root_dir, --saved_seg_model_dir, --batch_size, --device, ...:
pipeline/cli.py); evaluation, submission and --scores_json are the same for all.
"""
import argparse
from dataclasses import dataclass
from typing import Callable

import torch

from data.format import LAST_INPUT_INDEX, NUM_INPUT_FRAMES
from data.readers import to_float
from engine import CheckpointError, autocast
from forecasting.dynamics import ObjectDynamics, ensemble_blend, predict_masks
from forecasting.motion import Motion, extrapolate_frames, extrapolate_mask, future_horizons
from forecasting.motion_args import add_motion_args, resolve_motion
from forecasting.simvp import SimVP
from pipeline.evaluate import Predictor
from pipeline.models import load_for_flag
from SSL_convLSTM_Reconstructor.model import Reconstructor
from Unets.segment import segment, segment_videos
from Unets.unet import UNet


@dataclass(frozen=True)
class PredictorKind:
    name: str
    build: Callable  # build(args, device) -> Predictor
    add_args: Callable  # add_args(parser): the method's own flags
    help: str


PREDICTORS = {}  # method name -> PredictorKind


def register_predictor(name: str, add_args: Callable = None, help: str = ""):
    """Decorator: register build(args, device) -> Predictor as the method `name`, with its own flags."""
    def decorate(build):
        if name in PREDICTORS:
            raise ValueError(f"predictor {name!r} is registered twice")
        PREDICTORS[name] = PredictorKind(name, build, add_args or (lambda parser: None), help)
        return build
    return decorate


def predictor_kind(name: str) -> PredictorKind:
    if name not in PREDICTORS:
        raise ValueError(f"--method {name!r} is not a predictor; choose one of {sorted(PREDICTORS)}")
    return PREDICTORS[name]


def load_unet(args, device):
    return load_for_flag(args.saved_seg_model_dir, UNet, "--saved_seg_model_dir", device)


# ---------------------------------------------------------------------------------------------
# copy: the U-Net's segmentation of frame 11, copied forward (no motion model)


def segmentation_predictor(model, frame_index: int = LAST_INPUT_INDEX, vote: bool = True,
                           refine: bool = True) -> Predictor:
    """Frame 22 predicted as the segmentation of one input frame (frame 11 by default): no motion model."""
    if not 0 <= frame_index < NUM_INPUT_FRAMES:
        raise ValueError(f"frame_index must be an input frame 0..{NUM_INPUT_FRAMES - 1}, got {frame_index}")
    model.eval()
    return lambda frames: segment(model, frames[:, frame_index], vote, refine)  # (B, 11, 3, H, W) -> (B, 3, H, W)




@register_predictor("copy", help="the U-Net's mask of frame 11 as frame 22's (no motion model)")
def build_copy_predictor(args, device) -> Predictor:
    return segmentation_predictor(load_unet(args, device))


# The seed's name for the same method: the U-Net alone, without a model of motion.
PREDICTORS["unet"] = PredictorKind("unet", build_copy_predictor, lambda parser: None, PREDICTORS["copy"].help)


# ---------------------------------------------------------------------------------------------
# motion: the U-Net's masks of frames 10-11, objects moved by the motion model (forecasting/motion.py)


def motion_predictor(unet, motion: Motion) -> Predictor:
    """Frame 22 as the U-Net's frame-11 mask with each object moved by the motion model (its velocity from
    the U-Net's masks of frames 10-11): no learning beyond the segmenter and the motion's fitted parameters."""
    unet.eval()

    @torch.no_grad()
    def predictor(frames: torch.Tensor) -> torch.Tensor:
        # frames 10-11 as the forecasters see them: segmented with the rest of frames 1-11 and voted per video
        masks = segment_videos(unet, frames[:, :LAST_INPUT_INDEX + 1])[:, -2:].cpu()  # (B, 2, H, W)
        return torch.stack([extrapolate_mask(m, motion) for m in masks]).long()

    return predictor


@register_predictor("motion", add_args=add_motion_args,
                    help="the U-Net's frame-11 objects moved by the fitted motion model (no learning)")
def build_motion_predictor(args, device) -> Predictor:
    return motion_predictor(load_unet(args, device), resolve_motion(args, args.root_dir))


# ---------------------------------------------------------------------------------------------
# simvp: the U-Net's masks of frames 1-11 forecast in mask space by SimVP (the field's method)


def simvp_predictor(unet, simvp) -> Predictor:
    """Frame 22 forecast in mask space: the U-Net segments frames 1-11, SimVP maps their masks to frame 22's
    class logits (forecasting/simvp.py)."""
    unet.eval()
    simvp.eval()
    device = next(simvp.parameters()).device

    @torch.no_grad()
    def predictor(frames: torch.Tensor) -> torch.Tensor:
        masks = segment_videos(unet, frames).to(device)  # (B, T, H, W)
        with autocast(device):
            return simvp.predict(masks)

    return predictor


def add_simvp_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--saved_simvp_model_dir", default="checkpoints/simvp/best.pt",
                        help="SimVP checkpoint or run folder (forecasting/train_simvp.py)")


@register_predictor("simvp", add_args=add_simvp_args,
                    help="the U-Net's masks of frames 1-11 forecast in mask space by SimVP (gSTA)")
def build_simvp_predictor(args, device) -> Predictor:
    """U-Net (--saved_seg_model_dir) + SimVP (--saved_simvp_model_dir), each rebuilt from its checkpoint."""
    simvp = load_for_flag(args.saved_simvp_model_dir, SimVP, "--saved_simvp_model_dir", device)
    return simvp_predictor(load_unet(args, device), simvp)


# ---------------------------------------------------------------------------------------------
# dynamics: the U-Net's masks of frames 1-11, each object rolled forward by the learned dynamics


def dynamics_predictor(unet, dynamics) -> Predictor:
    """Frame 22 from object motion: the U-Net segments frames 1-11, their objects are rolled forward by the
    learned dynamics (a model, or a list: an ensemble) and painted (forecasting/dynamics.py)."""
    unet.eval()

    @torch.no_grad()
    def predictor(frames: torch.Tensor) -> torch.Tensor:
        masks = segment_videos(unet, frames)  # (B, T, H, W)
        return predict_masks(dynamics, masks).to(frames.device)

    return predictor


def add_dynamics_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--saved_dynamics_model_dir", default="checkpoints/dynamics/best.pt", nargs="+",
                        metavar="CKPT",
                        help="learned dynamics checkpoint or run folder (forecasting/train_dynamics.py); several: "
                             "their ensemble (the same recipe trained with several --seed), each object's forecast "
                             "the mean of theirs")


@register_predictor("dynamics", add_args=add_dynamics_args,
                    help="the U-Net's masks of frames 1-11, each object rolled forward by the learned dynamics")
def build_dynamics_predictor(args, device) -> Predictor:
    paths = args.saved_dynamics_model_dir
    paths = [paths] if isinstance(paths, str) else paths
    dynamics = [load_for_flag(path, ObjectDynamics, "--saved_dynamics_model_dir", device) for path in paths]
    try:
        ensemble_blend(dynamics, [str(p) for p in paths])
    except ValueError as err:
        raise CheckpointError(f"--saved_dynamics_model_dir: {err}") from None
    return dynamics_predictor(load_unet(args, device), dynamics)


# ---------------------------------------------------------------------------------------------
# reconstructor: frame 22 predicted as an image, then segmented by the U-Net


def needs_segmenter(reconstructor) -> bool:
    """A reconstructor with reference "extrapolated" needs the U-Net's masks of frames 10-11 (model.py)."""
    return reconstructor.config["reference"] == "extrapolated"


@torch.no_grad()
def extrapolated_reference(unet, frames: torch.Tensor, motion: Motion = None) -> torch.Tensor:
    """Frames 1-11 (B, 11, 3, H, W) uint8 -> (B, 1, 3, H, W) uint8: frame 11 with the objects the U-Net
    finds in frames 10-11 moved to where their velocity takes them by frame 22 (forecasting/motion.py)."""
    masks = segment_videos(unet, frames[:, :LAST_INPUT_INDEX + 1])[:, -2:]  # (B, 2, H, W), as the pseudo-labels are voted
    return torch.stack([extrapolate_frames(f, m.to(f.device), future_horizons(), motion)
                        for f, m in zip(frames, masks)])


@torch.no_grad()
def reconstruct(reconstructor, frames: torch.Tensor, unet=None) -> torch.Tensor:
    """Frame 22 as an image: frames 1-11 (B, 11, 3, H, W) uint8 -> (B, 3, H, W) uint8, on the reconstructor's
    device. Rounded to uint8 like a real frame, so the U-Net segments what a frame's PNG would hold. unet: the segmenter a reconstructor with reference
    "extrapolated" needs (needs_segmenter)."""
    device = next(reconstructor.parameters()).device
    frames = frames.to(device, non_blocking=True)
    ref = None
    if needs_segmenter(reconstructor):
        if unet is None:
            raise ValueError("this reconstructor's reference is 'extrapolated': it needs the U-Net's masks of frames "
                             "10-11, so pass a U-Net")
        ref = to_float(extrapolated_reference(unet, frames, Motion.from_config(reconstructor.config["motion"])).to(device))
    with autocast(device):
        out = reconstructor(to_float(frames), ref=ref)[:, -1]  # (B, 1, 3, H, W) -> (B, 3, H, W): frame 22
    return out.float().clamp(0, 1).mul(255).round().to(torch.uint8)


def reconstruction_predictor(reconstructor, unet) -> Predictor:
    """Two stages: the reconstructor predicts frame 22 as an image, the U-Net segments it.
    Returns (preds, images) so that --visualize can draw the predicted frame."""
    reconstructor.eval()
    unet.eval()

    def predictor(frames: torch.Tensor):
        images = reconstruct(reconstructor, frames, unet)  # (B, 3, H, W) uint8
        return segment(unet, images), images

    return predictor


def add_reconstructor_args(parser: argparse.ArgumentParser) -> None:
    """The flag of the two inference scripts with the reconstructor."""
    parser.add_argument("--saved_recon_model_dir", default="checkpoints/reconstructor/best.pt",
                        help="reconstructor checkpoint file (SSL_convLSTM_Reconstructor/train_reconstructor.py)")



@register_predictor("reconstructor", add_args=add_reconstructor_args,
                    help="the reconstructor's image of frame 22, segmented by the U-Net")
def build_reconstructor_predictor(args, device) -> Predictor:
    """Reconstructor (--saved_recon_model_dir) then U-Net (--saved_seg_model_dir), each rebuilt from its checkpoint."""
    reconstructor = load_for_flag(args.saved_recon_model_dir, Reconstructor, "--saved_recon_model_dir", device)
    unet = load_unet(args, device)
    return reconstruction_predictor(reconstructor, unet)
