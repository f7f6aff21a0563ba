"""Write a submission with SimVP: the U-Net segments frames 1-11 of every hidden video, SimVP forecasts frame
22's mask from their masks.

    python Unets/inference_hidden_with_simvp.py --root_dir Dataset_Student \
        --saved_seg_model_dir U/best.pt --saved_simvp_model_dir S/best.pt --output submission.pt

The submission is a uint8 tensor (hidden videos, 160, 240), rows in numeric video order, checked
and then written atomically; an unwritable --output fails before any inference.
"""
import sys

from engine import run_cli
from pipeline.cli import script_main

main = script_main("simvp", "hidden", __doc__.split("\n\n")[0])

if __name__ == "__main__":
    sys.exit(run_cli(main))
