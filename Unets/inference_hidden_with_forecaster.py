"""Write a submission with the mask forecaster: the U-Net segments frames 1-11 of every hidden video,
the forecaster predicts frame 22's mask.

    python Unets/inference_hidden_with_forecaster.py --root_dir Dataset_Student \
        --saved_seg_model_dir U/best.pt --saved_forecaster_model_dir F/best.pt --output submission.pt

The submission is a uint8 tensor (hidden videos, 160, 240), rows in numeric video order, checked
and then written atomically; an unwritable --output fails before any inference.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import run_cli  # noqa: E402
from pipeline.cli import script_main  # noqa: E402

main = script_main("forecaster", "hidden", __doc__.split("\n\n")[0])

if __name__ == "__main__":
    sys.exit(run_cli(main))
