"""Speed of the U-Net on a dataset (pipeline/speed.py): training samples/s on crops and on whole frames, and
hidden inference videos/s end to end, for each width; a stage of scripts/bench/bench_unet.py.

    python scripts/bench/speed_unet.py --root_dir D [--widths 16 8] [--saved_seg_model_dir U/best.pt] [--scores_json S]

--saved_seg_model_dir: the trained U-Net, timed on hidden at its own width (crop refinement included); other
widths use random weights, which find no object, so only the whole-frame pass is timed.
"""
import argparse
import sys

import torch

from engine import choose_device, run_cli
from pipeline.models import load_for_flag
from pipeline.cli import add_scores_json_arg, check_scores_json, write_scores
from pipeline.speed import measure, speed_table
from Unets.unet import UNet
from engine.flags import add_old_spellings


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root_dir", required=True, help="dataset root holding train/ and hidden/")
    p.add_argument("--widths", type=int, nargs="+", default=[16, 8], help="base_channels to time")
    p.add_argument("--batch_size", dest="batch", type=int, default=16, help="batch size of the measurements")
    p.add_argument("--crop_size", dest="crop", type=int, default=64, help="crop size of the training speed measurement")
    p.add_argument("--saved_seg_model_dir", default=None, help="the trained U-Net (checkpoint or run folder), optional")
    p.add_argument("--num_workers", type=int, default=2, help="data-loading workers of the hidden inference")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA if present)")
    add_scores_json_arg(p)
    add_old_spellings(p, {'--batch': '--batch_size', '--crop': '--crop_size'})  # kept for one release
    args = p.parse_args(argv)
    check_scores_json(args)  # before any work: never over a checkpoint, a mask or an input
    device = choose_device(args.device)
    trained = load_for_flag(args.saved_seg_model_dir, UNet, "--saved_seg_model_dir", device) if args.saved_seg_model_dir else None
    speed = {"device": str(device), "threads": torch.get_num_threads(), "batch": args.batch, "crop": args.crop,
             "rows": measure(args.widths, args.root_dir, device, args.batch, args.crop, args.num_workers, trained)}
    print(f"device {speed['device']}, {speed['threads']} torch threads\n" + speed_table(speed))
    write_scores(args.scores_json, speed)
    return speed


if __name__ == "__main__":
    sys.exit(run_cli(main))
