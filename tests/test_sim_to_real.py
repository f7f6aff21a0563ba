"""scripts/sim_to_real.py: a U-Net scored on every frame of the real labeled videos."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from Unets.training import atomic_save, make_checkpoint
from Unets.unet import UNet

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "sim_to_real.py"
REAL = Path(__file__).resolve().parents[2] / "shared" / "real_samples" / "Dataset_Student"


@pytest.fixture(scope="module")
def unet_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    atomic_save(make_checkpoint(model, torch.optim.AdamW(model.parameters()), None, 1, 0.0, {"base_channels": 4}), path)
    return path


def load_script():
    spec = importlib.util.spec_from_file_location("sim_to_real", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real samples not found at {REAL}")
def test_scores_all_132_real_frames_and_a_synthetic_val(unet_ckpt, tiny_root, tmp_path):
    results = load_script().main(["--saved_seg_model_dir", str(unet_ckpt), "--real_root", str(REAL),
                                  "--synthetic_root", str(tiny_root), "--visualize", str(tmp_path / "grids")])
    assert results["real train"]["frames"] == results["real val"]["frames"] == 66
    assert results["real, all labeled frames"]["frames"] == 132
    assert results["synthetic val"]["frames"] == 2 * 22
    assert all(0.0 <= r["jaccard"] <= 1.0 for r in results.values())
    assert len(list((tmp_path / "grids").glob("*.png"))) == 6  # frames 1, 11, 22 of one video per split


def test_a_root_without_labeled_videos_is_a_one_line_error(unet_ckpt, tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--saved_seg_model_dir", str(unet_ckpt),
                             "--real_root", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: no labeled split (train/ or val/) under --real_root {tmp_path}: "
                                                  "point it at the real data's root"]
