"""Benchmark of the U-Net on a synthetic dataset: quality of the default recipe, and speed.

    python scripts/bench_unet.py --out /tmp/bench_unet                    # everything, default recipe
    python scripts/bench_unet.py --out /tmp/b --train 40 --val 10 --epochs 4   # a quick look

1. makes (or reuses) a synthetic dataset with scripts/make_synthetic_dataset.py;
2. trains the U-Net with Unets/train.py (the default recipe, or the overrides given) and times it;
3. scores on val with the competition's metric:
     oracle     the U-Net segmenting the TRUE frame 22 (segmentation quality alone; target >= 0.90), also
                without the per-object vote and without the crop refinement (Unets/segment.py: segment),
     frame 11   the U-Net segmenting frame 11 as its frame-22 prediction (inference_val_without_reconstructor),
     copy mask  the true mask of frame 11 as frame 22 (what a perfect segmenter without motion scores);
4. measures training throughput (samples/s of forward+backward+AdamW step, on the recipe's crops and on
   whole frames) and hidden inference throughput (videos/s, end to end: PNG decoding, batching,
   segmentation) for each width in --speed_widths;
and prints both tables.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from data.format import TARGET_INDEX  # noqa: E402
from data.metric import SegmentationScore, copy_last_input_prediction  # noqa: E402
from data.readers import LabeledFrameDataset, SplitIndex, to_float  # noqa: E402
from pipeline.evaluate import evaluate, predict, video_loader  # noqa: E402
from pipeline.submission import predict_hidden  # noqa: E402
from pipeline.predictors import segmentation_predictor  # noqa: E402
from engine import choose_device, load_model, run_cli  # noqa: E402
from Unets.crops import ObjectCrops  # noqa: E402
from Unets.unet import UNet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# train.py flags this script can override, and that it reports as the recipe
RECIPE_FLAGS = ("epochs", "base_channels", "batch_size", "learning_rate", "crop_size", "head", "val_every")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="bench_unet", help="work folder: dataset (unless --root_dir), checkpoints, results.json")
    p.add_argument("--root_dir", default=None, help="use this dataset instead of generating one in OUT/data")
    p.add_argument("--train", type=int, default=200, help="synthetic train videos to generate")
    p.add_argument("--val", type=int, default=30, help="synthetic val videos to generate")
    p.add_argument("--hidden", type=int, default=50, help="synthetic hidden videos to generate (inference speed)")
    p.add_argument("--unlabeled", type=int, default=0,
                   help="synthetic unlabeled videos to generate too (so that scripts/bench_forecaster.py --root_dir can reuse the set)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed")
    p.add_argument("--epochs", type=int, default=None, help="override train.py's --epochs (default: its default)")
    p.add_argument("--base_channels", type=int, default=None, help="override train.py's --base_channels")
    p.add_argument("--batch_size", type=int, default=None, help="override train.py's --batch_size")
    p.add_argument("--learning_rate", type=float, default=None, help="override train.py's --learning_rate")
    p.add_argument("--crop_size", type=int, default=None, help="override train.py's --crop_size")
    p.add_argument("--head", default=None, help="override train.py's --head")
    p.add_argument("--val_every", type=int, default=None, help="override train.py's --val_every")
    p.add_argument("--skip_quality", action="store_true", help="measure speed only (no training run)")
    p.add_argument("--checkpoint_dir", default=None,
                   help="score this finished train.py run (its best.pt; its log.jsonl gives the training time) instead of training")
    p.add_argument("--speed_widths", type=int, nargs="*", default=[16, 8],
                   help="base_channels to time (train.py's default and the quickstart's)")
    p.add_argument("--speed_batch", type=int, default=16, help="batch size of the speed measurements")
    p.add_argument("--speed_crop", type=int, default=64, help="crop size of the training speed measurement (train.py's default)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (CPU), also for the training run")
    p.add_argument("--num_workers", type=int, default=2, help="data-loading workers (training and inference)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA if present)")
    return p.parse_args()


def make_dataset(args) -> Path:
    if args.root_dir:
        return Path(args.root_dir)
    root = Path(args.out) / "data"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_synthetic_dataset.py"), "--out", str(root),
                    "--train", str(args.train), "--val", str(args.val), "--unlabeled", str(args.unlabeled),
                    "--hidden", str(args.hidden), "--seed", str(args.seed)], check=True)
    return root


def train(args, root: Path, env) -> tuple:
    """Run Unets/train.py with its defaults plus the overrides; (checkpoint dir, seconds, command)."""
    ckpt = Path(args.out) / f"ckpt_{time.strftime('%Y%m%d_%H%M%S')}"
    cmd = [sys.executable, str(REPO / "Unets" / "train.py"), "--root_dir", str(root), "--checkpoint_dir", str(ckpt),
           "--num_workers", str(args.num_workers)]
    for flag in RECIPE_FLAGS + ("device",):
        if getattr(args, flag) is not None:
            cmd += [f"--{flag}", str(getattr(args, flag))]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return ckpt, time.perf_counter() - start, cmd


def oracle_score(model, root, device, batch_size, num_workers, vote: bool = True, refine: bool = True) -> float:
    """The U-Net on the true frame 22, scored against frame 22's mask (vote, refine: see Unets/segment.py: segment)."""
    loader = video_loader(root, "val", batch_size, num_workers, device, frame_indices=[TARGET_INDEX])
    score = SegmentationScore()
    for batch, preds in predict(segmentation_predictor(model, frame_index=0, vote=vote, refine=refine), loader, device, desc="oracle"):
        score.update(preds, batch["masks"][:, 0])
    return score.compute()


def copy_mask_score(root) -> float:
    index = SplitIndex(root, "val", frame_indices=[], need_mask=True)
    score = SegmentationScore()
    for i in range(len(index)):
        masks = index.masks(i, range(TARGET_INDEX + 1))
        score.update(copy_last_input_prediction(masks)[None], masks[TARGET_INDEX][None])
    return score.compute()


def train_speed(width: int, root, device, batch: int, crop: int = 0, steps: int = 5) -> float:
    """Samples/s of forward + cross-entropy + backward + AdamW step on frames, or on crop x crop crops
    of them when crop > 0 (data loading excluded)."""
    data = LabeledFrameDataset(root, "train")
    if crop:
        data = ObjectCrops(data, crop, seed=0)
    frames = torch.stack([data[i][0] for i in range(batch)]).to(device)
    masks = torch.stack([data[i][1] for i in range(batch)]).to(device).long()
    torch.manual_seed(0)
    model = UNet(base_channels=width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        loss = F.cross_entropy(model(to_float(frames)), masks)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, kernel selection)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def hidden_speed(width: int, root, device, batch: int, num_workers: int, trained=None) -> float:
    """Videos/s of the hidden split end to end (PNG decoding of 11 frames per video, batching, segmentation).
    trained: the trained U-Net, timed when its width is `width` (its segmentation re-segments each object it
    finds in a crop, Unets/segment.py: refine_with_crops); otherwise random weights, which find no object,
    so only the whole-frame pass is timed."""
    torch.manual_seed(0)
    model = trained if trained is not None and trained.config["base_channels"] == width else UNet(base_channels=width)
    model = model.to(device).eval()
    start = time.perf_counter()
    submission, _, _ = predict_hidden(segmentation_predictor(model), root, batch_size=batch, device=device,
                                      num_workers=num_workers)
    return len(submission) / (time.perf_counter() - start)


def main():
    args = parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.threads:
        torch.set_num_threads(args.threads)
        env["OMP_NUM_THREADS"] = str(args.threads)
    device = choose_device(args.device)
    root = make_dataset(args)
    results = {"device": str(device), "threads": torch.get_num_threads(), "root": str(root),
               "cpu_count": os.cpu_count()}

    if not args.skip_quality:
        if args.checkpoint_dir:  # a run made before (e.g. by this script, stopped after training)
            ckpt = Path(args.checkpoint_dir)
            log = [json.loads(line) for line in (ckpt / "log.jsonl").read_text().splitlines()]
            seconds = sum(r["train_seconds"] + r["val_seconds"] for r in log)
            run_args = torch.load(ckpt / "best.pt", map_location="cpu", weights_only=True)["args"]
            cmd = ["", "Unets/train.py"] + [f"--{k} {run_args[k]}" for k in RECIPE_FLAGS if k in run_args]
        else:
            ckpt, seconds, cmd = train(args, root, env)
        model = load_model(ckpt / "best.pt", UNet, device)
        log = [json.loads(line) for line in (ckpt / "log.jsonl").read_text().splitlines()]
        results["quality"] = {
            "command": " ".join(cmd[1:]), "train_minutes": round(seconds / 60, 1), "epochs": len(log),
            "model": model.config, "best_val_frames_jaccard": max(r["val_jaccard"] for r in log if "val_jaccard" in r),
            "oracle_frame22": oracle_score(model, root, device, 8, args.num_workers),
            "oracle_frame22_no_vote": oracle_score(model, root, device, 8, args.num_workers, vote=False),
            "oracle_frame22_no_refine": oracle_score(model, root, device, 8, args.num_workers, refine=False),
            "unet_frame11": evaluate(segmentation_predictor(model), root, batch_size=8, device=device,
                                     num_workers=args.num_workers).compute(),
            "copy_true_mask_frame11": copy_mask_score(root),
        }
    trained = model if "quality" in results else None
    results["speed"] = [
        {"base_channels": w, "params_M": round(sum(p.numel() for p in UNet(base_channels=w).parameters()) / 1e6, 2),
         "train_crops_per_s": round(train_speed(w, root, device, args.speed_batch, args.speed_crop), 2),
         "train_frames_per_s": round(train_speed(w, root, device, args.speed_batch), 2),
         "hidden_videos_per_s": round(hidden_speed(w, root, device, args.speed_batch, args.num_workers, trained), 2),
         "hidden_model": "trained" if trained is not None and trained.config["base_channels"] == w else "random weights"}
        for w in args.speed_widths
    ]
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2))

    print(f"\ndevice {results['device']}, {results['threads']} torch threads, {results['cpu_count']} CPUs, data {root}")
    if "quality" in results:
        q = results["quality"]
        print(f"\nrecipe: {q['command']}\n{q['epochs']} epochs in {q['train_minutes']} min, model {q['model']}")
        print("| val Jaccard (competition metric)            | score  |\n|---|---|")
        print(f"| U-Net on true frame 22 (oracle, target 0.90) | {q['oracle_frame22']:.4f} |")
        print(f"| the same without the per-object vote         | {q['oracle_frame22_no_vote']:.4f} |")
        print(f"| the same without the crop refinement         | {q['oracle_frame22_no_refine']:.4f} |")
        print(f"| U-Net on frame 11 (no motion)                | {q['unet_frame11']:.4f} |")
        print(f"| true mask of frame 11 (perfect segmenter)    | {q['copy_true_mask_frame11']:.4f} |")
        print(f"| best val Jaccard over all frames (train log) | {q['best_val_frames_jaccard']:.4f} |")
    print(f"\n| base_channels | params (M) | train crops/s ({args.speed_crop}x{args.speed_crop}, batch {args.speed_batch}) "
          f"| train frames/s (whole) | hidden videos/s |\n|---|---|---|---|---|")
    for s in results["speed"]:
        print(f"| {s['base_channels']} | {s['params_M']} | {s['train_crops_per_s']} | {s['train_frames_per_s']} "
              f"| {s['hidden_videos_per_s']} ({s['hidden_model']}) |")
    print(f"\nresults: {Path(args.out) / 'results.json'}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
