"""Benchmark of the two-stage pipeline (reconstructor -> U-Net) against the frame-11 baselines, through the
repository's own commands.

    python scripts/bench_pipeline.py --out /tmp/bench_pipeline                 # the documented recipe
    python scripts/bench_pipeline.py --out /tmp/bp --unlabeled 1000 --recon_epochs 12   # bigger

Stages, each a command printed before it runs (its output in OUT/logs/; a stage whose output exists
is skipped, so re-running continues after a crash, --fresh starts over):
 1. a synthetic dataset (scripts/make_synthetic_dataset.py; or --root_dir), converted to memmap
    (scripts/convert_to_memmap.py) so that no stage waits on PNG decoding;
 2. reference scores (scripts/reference_scores.py): copying the true frame-11 mask, and the ceiling;
 3. the U-Net on every labeled train frame (Unets/train.py), scored on val segmenting frame 11
    (Unets/inference_val_without_reconstructor.py);
 4. the reconstructor on the unlabeled videos (SSL_convLSTM_Reconstructor/train_reconstructor.py; by default
    --reference extrapolated, from the U-Net's pseudo-labels, scripts/make_pseudo_labels.py): its val
    PSNR/SSIM of frame 22 beside the copy of frame 11 (from its log), and its training videos/s;
 5. the two stages with that same U-Net (Unets/inference_val_with_reconstructor.py);
 6. the U-Net fine-tuned on the reconstructor's frame 22 of the train videos mixed with real frames
    (Unets/train.py --init_from --saved_recon_model_dir), then the two stages with it, and as a control
    the fine-tuned U-Net on frame 11 (its extra epochs alone);
 7. the oracle: the U-Net segmenting the true frame 22 (in this process: no script predicts from frame 22).
It prints the val Jaccard table and writes OUT/results.md and OUT/results.json.
Every training stage runs with OMP_NUM_THREADS=--threads (1: on a small shared CPU one thread per
process was ~3 times faster than two, measured on the 2-core development machine).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from data.metric import SegmentationScore  # noqa: E402
from data.readers import VideoDataset  # noqa: E402
from Unets.segment import segment  # noqa: E402
from engine import choose_device, load_model, run_cli  # noqa: E402
from Unets.unet import UNet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="bench_pipeline", help="work folder: dataset (unless --root_dir), checkpoints, logs, results")
    p.add_argument("--root_dir", default=None, help="use this dataset instead of generating one in OUT/data")
    p.add_argument("--train", type=int, default=40, help="synthetic train videos")
    p.add_argument("--val", type=int, default=20, help="synthetic val videos")
    p.add_argument("--unlabeled", type=int, default=300, help="synthetic unlabeled videos (the reconstructor's data)")
    p.add_argument("--hidden", type=int, default=10, help="synthetic hidden videos")
    p.add_argument("--seed", type=int, default=1, help="dataset seed")
    p.add_argument("--unet_epochs", type=int, default=6, help="U-Net epochs on the train frames (train.py's other flags: defaults)")
    p.add_argument("--unet_checkpoint", default=None,
                   help="use this trained U-Net (e.g. scripts/bench_unet.py's best.pt on the same --root_dir) instead of training one")
    p.add_argument("--recon_epochs", type=int, default=5, help="reconstructor epochs on the unlabeled videos")
    p.add_argument("--reference", default="extrapolated", choices=("extrapolated", "frame11"),
                   help="train_reconstructor.py --reference: extrapolated needs the U-Net's pseudo-labels of the "
                        "unlabeled videos (made here with scripts/make_pseudo_labels.py)")
    p.add_argument("--pseudo_labels", default=None,
                   help="pseudo-label folder to use or make (default OUT/pseudo_labels; a finished one is reused)")
    p.add_argument("--pseudo_videos", type=int, default=0,
                   help="unlabeled videos to pseudo-label, the reconstructor's training videos (0: all)")
    p.add_argument("--recon_flags", default="",
                   help="extra train_reconstructor.py flags (model size, loss), as one string, e.g. '--loss mse'")
    p.add_argument("--finetune_epochs", type=int, default=1, help="epochs of the U-Net fine-tune on predicted frames")
    p.add_argument("--predicted_fraction", type=float, default=0.5, help="train.py --predicted_fraction of the fine-tune")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every stage (0: leave it unset)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA if present, else CPU)")
    p.add_argument("--fresh", action="store_true", help="delete OUT first and run every stage again")
    return p.parse_args(argv)


class Stages:
    """Runs commands as stages: printed, logged to OUT/logs/<name>.log, skipped when their output exists."""

    def __init__(self, out: Path, threads: int):
        self.out, self.times = out, {}
        self.env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}

    def run(self, name: str, cmd: list, done_when: Path = None) -> str:
        log = self.out / "logs" / f"{name.replace(' ', '_')}.log"
        if done_when is not None and done_when.exists() and log.exists():
            print(f"\n== {name}: done already ({done_when}), skipped", flush=True)
            return log.read_text()
        cmd = [str(c) for c in cmd]
        print(f"\n== {name}\n$ {' '.join(cmd)}", flush=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.time()
        result = subprocess.run(cmd, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            sys.exit(f"stage {name!r} failed (exit {result.returncode}):\n{result.stdout[-3000:]}")
        self.times[name] = time.time() - start
        print(f"   {self.times[name]:.0f}s", flush=True)
        tmp = log.with_suffix(".tmp")
        tmp.write_text(result.stdout)
        tmp.replace(log)  # the log's presence marks the stage done
        return result.stdout


def jaccard_line(output: str, stage: str) -> float:
    m = re.search(r"^Jaccard: ([0-9.]+)$", output, re.M)
    if m is None:
        raise ValueError(f"no 'Jaccard:' line in the output of {stage}")
    return float(m.group(1))


def read_log(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


@torch.no_grad()
def oracle_jaccard(root, unet_path, device) -> float:
    """The U-Net segmenting the TRUE frame 22 of each val video: what a perfect reconstructor would give."""
    unet = load_model(unet_path, UNet, device)
    videos = VideoDataset(root, "val", frame_indices=[21])  # frame 22 and its mask
    score = SegmentationScore()
    for batch in DataLoader(videos, batch_size=8):
        score.update(segment(unet, batch["frames"][:, 0]).cpu(), batch["masks"][:, 0])
    return score.compute()


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    s, t0 = Stages(out, args.threads), time.time()
    dev = ["--device", args.device] if args.device else []
    data = Path(args.root_dir).resolve() if args.root_dir else out / "data"
    if not args.root_dir:
        s.run("dataset", [PY, "scripts/make_synthetic_dataset.py", "--out", data, "--train", args.train, "--val",
                          args.val, "--unlabeled", args.unlabeled, "--hidden", args.hidden, "--seed", args.seed,
                          "--workers", 2], done_when=data / "hidden")
    s.run("memmap", [PY, "scripts/convert_to_memmap.py", "--root_dir", data, "--split", "train", "val", "unlabeled"],
          done_when=data / "memmap" / "unlabeled_video_ids.npy")
    motion = out / "motion.json"  # fitted once on the train split's true masks, then read by every stage
    s.run("fit motion", [PY, "scripts/fit_motion.py", "--root_dir", data, "--out", motion], done_when=motion)
    refs = s.run("reference scores", [PY, "scripts/reference_scores.py", "--root_dir", data, "--split", "val",
                                      "--motion", motion])
    rows = {"copy the frame-11 mask": float(re.search(r"copy frame 11 Jaccard: ([0-9.]+)", refs).group(1))}
    ceiling = float(re.search(r"ceiling\s+Jaccard: ([0-9.]+)", refs).group(1))

    recon, tuned = out / "reconstructor", out / "unet_finetuned"
    common = ["--root_dir", data, "--num_workers", 0, *dev]
    if args.unet_checkpoint:
        unet_best = Path(args.unet_checkpoint).resolve()
    else:
        s.run("train U-Net", [PY, "Unets/train.py", *common, "--epochs", args.unet_epochs, "--checkpoint_dir",
                              out / "unet"], done_when=out / "unet" / "best.pt")
        unet_best = out / "unet" / "best.pt"
    rows["U-Net on frame 11"] = jaccard_line(s.run("val U-Net on frame 11", [
        PY, "Unets/inference_val_without_reconstructor.py", *common, "--saved_seg_model_dir", unet_best]),
        "val U-Net on frame 11")

    reference = ["--reference", args.reference]
    if args.reference == "extrapolated":
        labels = Path(args.pseudo_labels).resolve() if args.pseudo_labels else out / "pseudo_labels"
        s.run("pseudo-labels", [PY, "scripts/make_pseudo_labels.py", "--root_dir", data, "--saved_seg_model_dir",
                                unet_best, "--split", "unlabeled", "--out", labels, "--num_videos", args.pseudo_videos, *dev])
        reference += ["--pseudo_labels", labels, "--saved_seg_model_dir", unet_best, "--motion", motion]
    s.run("train reconstructor", [PY, "SSL_convLSTM_Reconstructor/train_reconstructor.py", *common, "--epochs",
                                  args.recon_epochs, "--checkpoint_dir", recon, *reference, *args.recon_flags.split()],
          done_when=recon / "best.pt")
    rows["two stages: reconstructor -> U-Net"] = jaccard_line(s.run("val two stages", [
        PY, "Unets/inference_val_with_reconstructor.py", *common, "--saved_recon_model_dir", recon / "best.pt",
        "--saved_seg_model_dir", unet_best, "--visualize", out / "grids_two_stage"]), "val two stages")

    s.run("fine-tune U-Net", [PY, "Unets/train.py", *common, "--epochs", args.finetune_epochs, "--init_from",
                              unet_best, "--saved_recon_model_dir", recon / "best.pt", "--predicted_fraction",
                              args.predicted_fraction, "--checkpoint_dir", tuned], done_when=tuned / "best.pt")
    rows["two stages, U-Net fine-tuned on predicted frames"] = jaccard_line(s.run("val two stages fine-tuned", [
        PY, "Unets/inference_val_with_reconstructor.py", *common, "--saved_recon_model_dir", recon / "best.pt",
        "--saved_seg_model_dir", tuned / "best.pt", "--visualize", out / "grids_two_stage_finetuned"]),
        "val two stages fine-tuned")
    # control: the fine-tuned U-Net on frame 11 separates the predicted frames' effect from the extra epochs
    rows["control: fine-tuned U-Net on frame 11"] = jaccard_line(s.run("val fine-tuned U-Net on frame 11", [
        PY, "Unets/inference_val_without_reconstructor.py", *common, "--saved_seg_model_dir", tuned / "best.pt"]),
        "val fine-tuned U-Net on frame 11")
    rows["U-Net on the true frame 22 (oracle)"] = oracle_jaccard(data, unet_best, choose_device(args.device))
    rows["ceiling (true frame 22, objects absent from frame 11 removed)"] = ceiling

    log = read_log(recon / "log.jsonl")
    best = max(log, key=lambda r: r["val_psnr"])
    speeds = sorted(r["samples_per_s"] for r in log)
    recon_cfg = torch.load(recon / "best.pt", map_location="cpu", weights_only=True)["model_config"]["kwargs"]
    results = {
        "val_jaccard": rows,
        "reconstructor": {"val_psnr": best["val_psnr"], "val_ssim": best["val_ssim"], "copy11_psnr": best["copy11_psnr"],
                          "copy11_ssim": best["copy11_ssim"], "best_epoch": best["epoch"],
                          "train_videos_per_s": speeds[len(speeds) // 2], "config": recon_cfg},
        "stage_seconds": {k: round(v, 1) for k, v in s.times.items()},
        "dataset": str(data), "threads": args.threads, "args": vars(args),
    }
    r = results["reconstructor"]
    table = ("| prediction of frame 22 | val Jaccard |\n|---|---|\n"
             + "".join(f"| {name} | {v:.4f} |\n" for name, v in rows.items())
             + f"\nReconstructor, val frame 22: PSNR {r['val_psnr']:.2f} dB, SSIM {r['val_ssim']:.4f}; frame 11 "
               f"copied: PSNR {r['copy11_psnr']:.2f} dB, SSIM {r['copy11_ssim']:.4f} (best epoch {r['best_epoch']}).\n"
             + f"Reconstructor training: {r['train_videos_per_s']:.1f} videos/s (median epoch, "
               f"{'OMP_NUM_THREADS=' + str(args.threads) if args.threads else 'default threads'}, "
               f"{'device ' + args.device if args.device else 'default device'}).\n")
    for name, text in (("results.md", table), ("results.json", json.dumps(results, indent=1))):
        tmp = out / f"{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)
    print(f"\n== results on {data} (val)\n{table}")
    print("stage times: " + ", ".join(f"{n} {v:.0f}s" for n, v in s.times.items()) + f"; total {time.time() - t0:.0f}s")
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
