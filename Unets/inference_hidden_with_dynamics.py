"""Write a submission with the learned object dynamics: the U-Net segments frames 1-11 of every hidden
video, each object is rolled forward to frame 22 by the dynamics model and painted.

    python Unets/inference_hidden_with_dynamics.py --root_dir Dataset_Student \
        --saved_seg_model_dir U/best.pt --saved_dynamics_model_dir DYN/best.pt --output submission.pt
    ... --saved_dynamics_model_dir DYN_0/best.pt DYN_1/best.pt DYN_2/best.pt   # an ensemble (--seed 0, 1, 2)

The submission is a uint8 tensor (hidden videos, 160, 240), rows in numeric video order, checked
and then written atomically; an unwritable --output fails before any inference.
"""
import sys

from engine import run_cli
from pipeline.cli import script_main

main = script_main("dynamics", "hidden", __doc__.split("\n\n")[0])

if __name__ == "__main__":
    sys.exit(run_cli(main))
