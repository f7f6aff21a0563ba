"""Score the two-stage pipeline on val: the reconstructor predicts frame 22 as an image, the U-Net segments it.

    python Unets/inference_val_with_reconstructor.py --root_dir Dataset_Student \
        --saved_recon_model_dir R/best.pt --saved_seg_model_dir U/best.pt [--visualize DIR]

Prints `Jaccard: 0.xxxx` (the competition's dataset-level score of frame 22) and the per-class IoU
table; --visualize DIR draws frame 11 | predicted frame 22 | prediction | true frame 22 for a few
videos. Both models are rebuilt from their checkpoints alone; a checkpoint of the wrong kind (a
U-Net given as the reconstructor or the other way round) is refused with the flag named.
"""
import sys

from engine import run_cli
from pipeline.cli import script_main

main = script_main("reconstructor", "val", __doc__.split("\n\n")[0])

if __name__ == "__main__":
    sys.exit(run_cli(main))
