"""Score SimVP on val: the U-Net segments frames 1-11, SimVP forecasts frame 22's mask from their masks.

    python Unets/inference_val_with_simvp.py --root_dir Dataset_Student \
        --saved_seg_model_dir U/best.pt --saved_simvp_model_dir S/best.pt

Prints `Jaccard: 0.xxxx` (the competition's dataset-level score of frame 22) and the per-class IoU
table; --visualize DIR draws frame 11 | prediction | true frame 22 for a few videos.
"""
import sys

from engine import run_cli
from pipeline.cli import script_main

main = script_main("simvp", "val", __doc__.split("\n\n")[0])

if __name__ == "__main__":
    sys.exit(run_cli(main))
