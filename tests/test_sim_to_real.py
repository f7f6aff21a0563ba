"""scripts/analysis/sim_to_real.py: a U-Net scored on every frame of the real labeled videos."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "analysis" / "sim_to_real.py"
REAL = Path(__file__).resolve().parents[2] / "shared" / "real_samples" / "Dataset_Student"


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
    # every object of every frame gets one outcome: 4.5 objects a frame over 66 frames
    assert 250 < sum(results["real val"]["objects"].values()) < 350
    assert len(list((tmp_path / "grids").glob("*.png"))) == 6  # frames 1, 11, 22 of one video per split


def test_object_outcomes_name_what_is_wrong():
    from data.classes import class_id
    truth = torch.zeros(1, 10, 10, dtype=torch.uint8)
    truth[0, :2] = class_id("cube", "metal", "red")
    truth[0, 2:4] = class_id("sphere", "rubber", "blue")
    truth[0, 4:6] = class_id("cylinder", "metal", "green")
    pred = truth.clone()
    pred[0, 2:4] = class_id("sphere", "metal", "blue")
    pred[0, 4:6] = 0
    outcomes = load_script().object_outcomes(pred, truth)
    assert outcomes == {"right": 1, "material": 1, "background": 1}


def test_a_root_without_labeled_videos_is_a_one_line_error(unet_ckpt, tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--saved_seg_model_dir", str(unet_ckpt),
                             "--real_root", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: no labeled split (train/ or val/) under --real_root {tmp_path}: "
                                                  "point it at the real data's root"]


def test_class_presence_counts_classes_only_predicted_as_zeros_of_the_mean():
    from data.classes import class_id
    from data.metric import SegmentationScore
    truth = torch.zeros(1, 10, 10, dtype=torch.uint8)
    truth[0, :2] = class_id("cube", "metal", "red")
    pred = truth.clone()
    pred[0, 9, :3] = class_id("sphere", "rubber", "blue")  # 3 stray pixels of a class the targets lack
    score = SegmentationScore()
    score.update(pred, truth)
    c = load_script().class_presence(score)
    assert c["target classes"] == 2 and c["predicted only"] == {"rubber blue sphere": 3}
    assert abs(c["jaccard over target classes"] - (1.0 + 77 / 80) / 2) < 1e-6
    assert abs(score.compute() - (1.0 + 77 / 80 + 0.0) / 3) < 1e-6
