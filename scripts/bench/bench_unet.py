"""Benchmark of the U-Net on a synthetic dataset: quality of the default recipe, and speed.

    python scripts/bench/bench_unet.py --out /tmp/bench_unet                    # everything, default recipe
    python scripts/bench/bench_unet.py --out /tmp/b --train 40 --val 10 --epochs 4   # a quick look

Stages (the recipe pipeline/recipes.py: bench_unet_recipe, run by pipeline/stages.py; a stage whose output
exists is skipped, so re-running continues, and the table is read from the scores the stages wrote as JSON):
1. makes a synthetic dataset with scripts/make_synthetic_dataset.py (unless --root_dir);
2. trains the U-Net with Unets/train.py into OUT/unet (the default recipe, or the overrides given; unless
   --checkpoint_dir or --skip_quality);
3. scores on val with the competition's metric:
     oracle     the U-Net segmenting the TRUE frame 22 (segmentation quality alone; target >= 0.90), also
                without the per-object vote and without the crop refinement (scripts/analysis/oracle_scores.py --ablations),
     frame 11   the U-Net segmenting frame 11 as its frame-22 prediction (inference_val_without_reconstructor),
     copy mask  the true mask of frame 11 as frame 22 (scripts/analysis/reference_scores.py --motion none);
4. measures training throughput (samples/s of forward+backward+AdamW step, on the recipe's crops and on
   whole frames) and hidden inference throughput (videos/s, end to end: PNG decoding, batching,
   segmentation) for each width in --speed_widths (scripts/bench/speed_unet.py);
and prints both tables, the training's epochs, time and best val Jaccard (from the run's log.jsonl), and
writes OUT/results.json.
"""
import argparse
import json
import sys
from pathlib import Path

from engine import atomic_write, read_log, run_cli
from pipeline.recipes import add_world_arg, bench_unet_recipe
from pipeline.speed import speed_table
from pipeline.stages import StageFailed, run_recipe


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="bench_unet", help="work folder: dataset (unless --root_dir), the run (OUT/unet), scores, results.json")
    p.add_argument("--root_dir", default=None, help="use this dataset instead of generating one in OUT/data")
    p.add_argument("--train", type=int, default=200, help="synthetic train videos to generate")
    p.add_argument("--val", type=int, default=30, help="synthetic val videos to generate")
    p.add_argument("--hidden", type=int, default=50, help="synthetic hidden videos to generate (inference speed)")
    p.add_argument("--unlabeled", type=int, default=0,
                   help="synthetic unlabeled videos to generate too (so that scripts/bench/bench_field.py --root_dir can reuse the set)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed")
    add_world_arg(p)
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
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (torch threads on a CPU) of every stage")
    p.add_argument("--num_workers", type=int, default=2, help="data-loading workers (training and inference)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA if present)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        rows = run_recipe(bench_unet_recipe(args), args.out, args.device)
    except StageFailed as e:
        sys.exit(f"\n{e}")
    out = Path(args.out).resolve()
    results = {"rows": {label: value for label, value, _ in rows}}
    if not args.skip_quality:  # the training run's own record: its log.jsonl
        run = Path(args.checkpoint_dir).resolve() if args.checkpoint_dir else out / "unet"
        log = read_log(run)
        results["train"] = {"run": str(run), "epochs": len(log),
                            "train_minutes": round(sum(r["train_seconds"] + r["val_seconds"] for r in log) / 60, 1),
                            "best_val_frames_jaccard": max(r["val_jaccard"] for r in log if "val_jaccard" in r)}
        t = results["train"]
        print(f"training ({run}): {t['epochs']} epochs in {t['train_minutes']} min; best val Jaccard over all frames "
              f"(train log): {t['best_val_frames_jaccard']:.4f}")
    if args.speed_widths:
        results["speed"] = json.loads((out / "scores" / "speed.json").read_text())
        print(f"\ndevice {results['speed']['device']}, {results['speed']['threads']} torch threads\n"
              + speed_table(results["speed"]))
    atomic_write(out / "results.json", lambda f: f.write(json.dumps(results, indent=2).encode()))
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
