"""Write a submission with the U-Net alone: frame 22 of every hidden video predicted as the
segmentation of its frame 11 (no motion model).

    python Unets/inference_hidden_without_reconstructor.py --root_dir Dataset_Student \
        --saved_seg_model_dir C/best.pt --output submission.pt

The submission is a uint8 tensor (hidden videos, 160, 240), rows in numeric video order, checked
and then written atomically; an unwritable --output fails before any inference.
"""
import sys

from engine import run_cli
from pipeline.cli import script_main

main = script_main("copy", "hidden", __doc__.split("\n\n")[0])

if __name__ == "__main__":
    sys.exit(run_cli(main))
