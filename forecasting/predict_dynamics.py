"""The learned dynamics as a predictor of frame 22 (placed in the pipeline's registry at merge)."""
import argparse

import torch

from data.format import NUM_INPUT_FRAMES
from forecasting.dynamics import ObjectDynamics, predict_masks
from Unets.inference import Predictor, load_for_flag, segment
from Unets.unet import UNet


def dynamics_predictor(unet, dynamics) -> Predictor:
    """Frame 22 from object motion: the U-Net segments frames 1-11, their objects are rolled forward by the
    learned dynamics and painted (forecasting/dynamics.py)."""
    unet.eval()

    @torch.no_grad()
    def predictor(frames: torch.Tensor) -> torch.Tensor:
        B, T, _, H, W = frames.shape
        masks = segment(unet, frames.flatten(0, 1)).reshape(B, T, H, W)  # (B*T, H, W) -> (B, T, H, W)
        return predict_masks(dynamics, masks[:, :NUM_INPUT_FRAMES]).to(frames.device)

    return predictor


def add_dynamics_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--saved_dynamics_model_dir", default="checkpoints/dynamics/best.pt",
                        help="learned dynamics checkpoint (forecasting/train_dynamics.py)")


def build_dynamics_predictor(args, device) -> Predictor:
    unet = load_for_flag(args.saved_seg_model_dir, UNet, "--saved_seg_model_dir", device)
    dynamics = load_for_flag(args.saved_dynamics_model_dir, ObjectDynamics, "--saved_dynamics_model_dir", device)
    return dynamics_predictor(unet, dynamics)
