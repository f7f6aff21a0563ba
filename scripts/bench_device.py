"""Every trainer for a few epochs on one device (CUDA: bf16 autocast, channels_last), timed, its results checked.

    python scripts/bench_device.py --root_dir D --out runs/device [--device cuda] [--epochs 2]

For each model (U-Net, reconstructor, mask forecaster, learned dynamics) it runs the model's train script on D
(which needs train, val and unlabeled videos), then the val inference script of the U-Net and of the dynamics,
and prints one table: seconds of the whole command, training samples/s of the last epoch, the validation
figure, and whether the checkpoint loads with finite weights. A GPU check in one command: D is small, so the
figures say that the CUDA paths run and how fast a step is, not how good the models get.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PY = sys.executable

import torch  # noqa: E402

from engine import load_model  # noqa: E402
import pipeline.models  # noqa: E402,F401  (registers every model kind)


def run(cmd: list, log: Path) -> tuple:
    """(seconds, exit code) of a command, its output into log."""
    start = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.run([str(c) for c in cmd], cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - start, code


def last_log_line(ckpt: Path) -> dict:
    path = ckpt / "log.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else {}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", required=True, help="a small dataset root with train, val, unlabeled and hidden")
    parser.add_argument("--out", required=True, help="folder for the runs, their logs and results.json")
    parser.add_argument("--device", default="cuda", help="the device every command runs on")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trainer")
    args = parser.parse_args()
    out, root, dev = Path(args.out).resolve(), Path(args.root_dir).resolve(), ["--device", args.device]
    out.mkdir(parents=True, exist_ok=True)
    unet, pl = out / "unet", out / "pseudo_labels"
    epochs = ["--epochs", args.epochs, "--num_workers", 2]
    stages = [
        ("unet", [PY, "Unets/train.py", "--root_dir", root, "--checkpoint_dir", unet, "--batch_size", 32, *epochs, *dev]),
        ("pseudo-labels", [PY, "scripts/make_pseudo_labels.py", "--root_dir", root, "--saved_seg_model_dir",
                           unet / "best.pt", "--split", "unlabeled", "--out", pl, *dev]),
        ("reconstructor", [PY, "SSL_convLSTM_Reconstructor/train_reconstructor.py", "--root_dir", root, "--checkpoint_dir",
                           out / "reconstructor", "--batch_size", 4, *epochs, *dev]),
        ("forecaster", [PY, "forecasting/train_forecaster.py", "--root_dir", root, "--pseudo_labels", pl,
                        "--saved_seg_model_dir", unet / "best.pt", "--checkpoint_dir", out / "forecaster",
                        "--batch_size", 4, *epochs, *dev]),
        ("dynamics", [PY, "forecasting/train_dynamics.py", "--root_dir", root, "--pseudo_labels", pl,
                      "--saved_seg_model_dir", unet / "best.pt", "--checkpoint_dir", out / "dynamics",
                      "--batch_size", 8, *epochs, *dev]),
        ("val U-Net frame 11", [PY, "Unets/inference_val_without_reconstructor.py", "--root_dir", root,
                                "--saved_seg_model_dir", unet, "--scores_json", out / "val_unet.json", *dev]),
        ("val dynamics", [PY, "Unets/inference_val_with_dynamics.py", "--root_dir", root, "--saved_seg_model_dir",
                          unet, "--saved_dynamics_model_dir", out / "dynamics", "--scores_json",
                          out / "val_dynamics.json", *dev]),
    ]
    results = {}
    for name, cmd in stages:
        log = out / f"{name.replace(' ', '_')}.log"
        seconds, code = run(cmd, log)
        text = log.read_text()
        ckpt = next((Path(c) for c, flag in zip(cmd[1:], cmd) if flag == "--checkpoint_dir"), None)
        record = {"seconds": round(seconds, 1), "exit": code}
        if ckpt is not None:
            record["on_device"] = f"device: {args.device}" in text
        if ckpt is not None:
            line = last_log_line(ckpt)
            record.update({k: line.get(k) for k in ("samples_per_s", "train_loss")})
            record["val"] = {k: v for k, v in line.items() if k.startswith("val_") and k != "val_seconds"}
            if code == 0:
                model = load_model(ckpt / "best.pt", device="cpu")  # refuses non-finite weights
                record["checkpoint_loads"] = model is not None
        scores = next((Path(c) for c, flag in zip(cmd[1:], cmd) if flag == "--scores_json"), None)
        if scores is not None and scores.exists():
            record["val"] = json.loads(scores.read_text())
        results[name] = record
        print(f"{name}: {record}", flush=True)
        if code != 0:
            print(text[-3000:])
    results["device_name"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    results["torch"] = torch.__version__
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return 0 if all(r["exit"] == 0 for r in results.values() if isinstance(r, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
