"""Predict frame 22 with any registered method (pipeline/predictors.py): score it on val, or write a submission.

    python scripts/predict.py --method motion --root_dir D --saved_seg_model_dir runs/unet --scores_json s.json
    python scripts/predict.py --method simvp --split hidden --root_dir D --saved_seg_model_dir runs/unet \
        --saved_simvp_model_dir runs/simvp --output submission.pt
    python scripts/predict.py --method motion --help       # the method's own flags too

Methods: copy (the U-Net's mask of frame 11, also named unet), motion (frame 11's objects moved by the motion
model), reconstructor (two stages), dynamics (learned object dynamics), simvp (SimVP in mask space). The
Unets/inference_* scripts are this command with the method fixed.
"""
import argparse
import sys

from engine import run_cli
from pipeline.cli import hidden_main, val_main
from pipeline.predictors import PREDICTORS


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argparse.ArgumentParser(add_help=False)  # the method and split pick the rest of the flags
    first.add_argument("--method", choices=sorted(PREDICTORS), required="-h" not in argv and "--help" not in argv)
    first.add_argument("--split", choices=("val", "hidden"), default="val")
    known, rest = first.parse_known_args(argv)
    if known.method is None:
        print(__doc__)
        return None
    description = f"--method {known.method}: {PREDICTORS[known.method].help}"
    return (val_main if known.split == "val" else hidden_main)(known.method, description, rest)


if __name__ == "__main__":
    sys.exit(run_cli(main))
