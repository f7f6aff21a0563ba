"""Shared fixtures: a tiny synthetic dataset made once per test session by the repository's generator, and
an untrained U-Net checkpoint."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A synthetic dataset root with 2 videos in each split (train, val, unlabeled, hidden); read-only by convention."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    cmd = [sys.executable, str(REPO / "scripts" / "make_synthetic_dataset.py"), "--out", str(root),
           "--train", "2", "--val", "2", "--unlabeled", "2", "--hidden", "2", "--seed", "0", "--workers", "1"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"generator failed:\n{result.stderr[-2000:]}"
    return root


@pytest.fixture(scope="module")
def unet_ckpt(tmp_path_factory) -> Path:
    """An (untrained) U-Net checkpoint as train.py writes it; its predictions are deterministic. One per
    test module, so a module that damages its copy harms no other."""
    from engine import atomic_save, make_checkpoint
    from Unets.unet import UNet

    torch.manual_seed(0)
    model = UNet(base_channels=4)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    atomic_save(make_checkpoint(model, torch.optim.AdamW(model.parameters()), None, 1, 0.0, {"base_channels": 4}), path)
    return path
