"""Score the U-Net alone on val: frame 22 predicted as the segmentation of frame 11 (no motion model).

    python Unets/inference_val_without_reconstructor.py --root_dir Dataset_Student --saved_seg_model_dir C/best.pt

Prints `Jaccard: 0.xxxx` (the competition's dataset-level score of frame 22) and the per-class IoU
table; --visualize DIR draws frame 11 | prediction | true frame 22 for a few videos.
"""
import sys

from engine import run_cli
from pipeline.cli import script_main

main = script_main("copy", "val", __doc__.split("\n\n")[0])

if __name__ == "__main__":
    sys.exit(run_cli(main))
