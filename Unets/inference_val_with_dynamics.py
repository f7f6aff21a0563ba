"""Score the learned object dynamics on val: the U-Net segments frames 1-11, each object is rolled forward
to frame 22 by the dynamics model and painted.

    python Unets/inference_val_with_dynamics.py --root_dir Dataset_Student \
        --saved_seg_model_dir U/best.pt --saved_dynamics_model_dir DYN/best.pt
    ... --saved_dynamics_model_dir DYN_0/best.pt DYN_1/best.pt DYN_2/best.pt   # an ensemble (--seed 0, 1, 2)

Prints `Jaccard: 0.xxxx` (the competition's dataset-level score of frame 22) and the per-class IoU
table; --visualize DIR draws frame 11 | prediction | true frame 22 for a few videos.
"""
import sys

from engine import run_cli
from pipeline.cli import script_main

main = script_main("dynamics", "val", __doc__.split("\n\n")[0])

if __name__ == "__main__":
    sys.exit(run_cli(main))
