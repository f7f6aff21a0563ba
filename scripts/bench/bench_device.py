"""Every trainer for a few epochs on one device (CUDA: bf16 autocast, channels_last), timed, its results checked.

    python scripts/bench/bench_device.py --root_dir D --out runs/device [--device cuda] [--epochs 2]

For each model (U-Net, reconstructor, SimVP, learned dynamics) it runs the model's train script on D
(which needs train, val and unlabeled videos), then the val inference script of the U-Net and of the dynamics,
each as a stage of the one stage runner (pipeline/stages.py), and writes OUT/results.json: seconds of each
command, training samples/s of the last epoch, the validation figures, and whether the checkpoint loads with
finite weights. A GPU check in one command: D is small, so the figures say that the CUDA paths run and how fast
a step is, not how good the models get. A stage that fails is recorded and the others still run.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

import pipeline.models  # noqa: F401  (registers every model kind, for load_model by name)
from engine import CheckpointError, load_model, read_log
from pipeline.recipes import pseudo_labels, train, val
from pipeline.stages import StageFailed, expand, run_stage

UNET = "{out}/unet"


def stages(epochs: int) -> list:
    run = ["--epochs", str(epochs), "--num_workers", "2"]
    pl = ["--pseudo_labels", "{out}/pseudo_labels", "--saved_seg_model_dir", UNET]
    return [
        train("unet", "Unets/train.py", UNET, "--batch_size", "32", *run),
        pseudo_labels(UNET),
        train("reconstructor", "SSL_convLSTM_Reconstructor/train_reconstructor.py", "{out}/reconstructor",
              "--batch_size", "4", *run),
        train("simvp", "forecasting/train_simvp.py", "{out}/simvp", *pl, "--preset", "published", "--batch_size", "4",
              *run),
        train("dynamics", "forecasting/train_dynamics.py", "{out}/dynamics", *pl, "--batch_size", "8", *run),
        val("val U-Net frame 11", "Unets/inference_val_without_reconstructor.py", "unet", "--saved_seg_model_dir",
            UNET),
        val("val dynamics", "Unets/inference_val_with_dynamics.py", "dynamics", "--saved_seg_model_dir", UNET,
            "--saved_dynamics_model_dir", "{out}/dynamics"),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", required=True, help="a small dataset root with train, val, unlabeled and hidden")
    parser.add_argument("--out", required=True, help="folder for the runs, their logs and results.json")
    parser.add_argument("--device", default="cuda", help="the device every command runs on")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trainer")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = {"out": str(out), "data": str(Path(args.root_dir).resolve()), "py": sys.executable}
    results = {"device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "torch": torch.__version__}
    for stage in stages(args.epochs):
        record = {}
        try:
            record["seconds"] = round(run_stage(stage, names, out, args.device), 1)
        except StageFailed as e:
            record["failed"] = str(e)
        try:  # what a stage left behind: a run that cannot be read is recorded as failed, the others go on
            if stage.get("resume") and "failed" not in record:  # a training stage: its log and checkpoint
                run = Path(expand(stage["resume"], names)[0])
                text = (out / "logs" / f"{stage['name']}.log").read_text()
                record["on_device"] = f"device: {args.device}" in text
                line = read_log(run)[-1]
                record.update(samples_per_s=line.get("samples_per_s"), train_loss=line.get("train_loss"),
                              val={k: v for k, v in line.items() if k.startswith("val_") and k != "val_seconds"})
                load_model(run)  # raises on unreadable or non-finite weights
                record["checkpoint_loads"] = True
            if stage.get("scores") and "failed" not in record:
                record["val"] = json.loads(Path(expand(stage["scores"], names)[0]).read_text())
        except (OSError, ValueError, CheckpointError) as e:
            record["failed"] = f"{type(e).__name__}: {e}"
        results[stage["name"]] = record
        print(f"{stage['name']}: {record}", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return 1 if any(isinstance(r, dict) and "failed" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
