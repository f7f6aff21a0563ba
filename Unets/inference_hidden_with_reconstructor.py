"""Write a submission with the two-stage pipeline: the reconstructor predicts frame 22 of every hidden
video as an image, the U-Net segments it.

    python Unets/inference_hidden_with_reconstructor.py --root_dir Dataset_Student \
        --saved_recon_model_dir R/best.pt --saved_seg_model_dir U/best.pt --output submission.pt

The submission is a uint8 tensor (hidden videos, 160, 240), rows in numeric video order, checked
and then written atomically; an unwritable --output fails before any inference, and a checkpoint
of the wrong kind is refused with the flag named.
"""
import sys

from engine import run_cli
from pipeline.cli import script_main

main = script_main("reconstructor", "hidden", __doc__.split("\n\n")[0])

if __name__ == "__main__":
    sys.exit(run_cli(main))
