"""Benchmark of the two-stage pipeline (reconstructor -> U-Net) against the frame-11 baselines, through the
repository's own commands.

    python scripts/bench/bench_pipeline.py --out /tmp/bench_pipeline                 # the documented recipe
    python scripts/bench/bench_pipeline.py --out /tmp/bp --unlabeled 1000 --recon_epochs 12   # bigger

Stages, each a command printed before it runs (its output in OUT/logs/; a stage whose output exists
is skipped, so re-running continues after a crash, --fresh starts over):
 1. a synthetic dataset (scripts/make_synthetic_dataset.py; or --root_dir), converted to memmap
    (scripts/convert_to_memmap.py) so that no stage waits on PNG decoding;
 2. reference scores (scripts/analysis/reference_scores.py): copying the true frame-11 mask, and the ceiling;
 3. the U-Net on every labeled train frame (Unets/train.py), scored on val segmenting frame 11
    (Unets/inference_val_without_reconstructor.py);
 4. the reconstructor on the unlabeled videos (SSL_convLSTM_Reconstructor/train_reconstructor.py; by default
    --reference extrapolated, from the U-Net's pseudo-labels, scripts/make_pseudo_labels.py): its val
    PSNR/SSIM of frame 22 beside the copy of frame 11 (from its log), and its training videos/s;
 5. the two stages with that same U-Net (Unets/inference_val_with_reconstructor.py);
 6. the oracle: the U-Net segmenting the true frame 22 (scripts/analysis/oracle_scores.py).
The stages are the recipe pipeline/recipes.py: bench_pipeline_recipe, run by pipeline/stages.py; the table is
read from the scores each stage wrote as JSON (OUT/scores/). It prints the val Jaccard table and writes
OUT/results.md, and OUT/results.json with the reconstructor's PSNR/SSIM from its training log.
Every training stage runs with OMP_NUM_THREADS=--threads (1: on a small shared CPU one thread per
process was ~3 times faster than two, measured on the 2-core development machine).
"""
import argparse
import json
import sys
from pathlib import Path

from engine import atomic_write, read_log, run_cli
from pipeline.recipes import add_world_arg, bench_pipeline_recipe
from pipeline.stages import StageFailed, run_recipe
from engine.flags import add_old_spellings


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="bench_pipeline", help="work folder: dataset (unless --root_dir), checkpoints, logs, results")
    p.add_argument("--root_dir", default=None, help="use this dataset instead of generating one in OUT/data")
    p.add_argument("--train", type=int, default=40, help="synthetic train videos")
    p.add_argument("--val", type=int, default=20, help="synthetic val videos")
    p.add_argument("--unlabeled", type=int, default=300, help="synthetic unlabeled videos (the reconstructor's data)")
    p.add_argument("--hidden", type=int, default=10, help="synthetic hidden videos")
    p.add_argument("--seed", type=int, default=1, help="dataset seed")
    add_world_arg(p)
    p.add_argument("--unet_epochs", type=int, default=6, help="U-Net epochs on the train frames (train.py's other flags: defaults)")
    p.add_argument("--saved_seg_model_dir", dest="unet_checkpoint", default=None,
                   help="use this trained U-Net (e.g. scripts/bench/bench_unet.py's best.pt on the same --root_dir) instead of training one")
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
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every stage (0: leave it unset)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA if present, else CPU)")
    p.add_argument("--fresh", action="store_true", help="delete OUT first and run every stage again")
    add_old_spellings(p, {'--unet_checkpoint': '--saved_seg_model_dir'})  # kept for one release
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        rows = run_recipe(bench_pipeline_recipe(args), args.out, args.device, args.fresh)
    except StageFailed as e:
        sys.exit(f"\n{e}")
    out = Path(args.out).resolve()
    log = read_log(out / "reconstructor")
    best = max(log, key=lambda r: r["val_psnr"])
    speeds = sorted(r["samples_per_s"] for r in log)
    r = {"val_psnr": best["val_psnr"], "val_ssim": best["val_ssim"], "copy11_psnr": best["copy11_psnr"],
         "copy11_ssim": best["copy11_ssim"], "best_epoch": best["epoch"], "train_videos_per_s": speeds[len(speeds) // 2]}
    print(f"Reconstructor, val frame 22: PSNR {r['val_psnr']:.2f} dB, SSIM {r['val_ssim']:.4f}; frame 11 copied: PSNR "
          f"{r['copy11_psnr']:.2f} dB, SSIM {r['copy11_ssim']:.4f} (best epoch {r['best_epoch']}; its log.jsonl).\n"
          f"Reconstructor training: {r['train_videos_per_s']:.1f} videos/s (median epoch, "
          f"{'OMP_NUM_THREADS=' + str(args.threads) if args.threads else 'default threads'}, "
          f"{'device ' + args.device if args.device else 'default device'}).")
    results = {"val_jaccard": {label: value for label, value, _ in rows}, "reconstructor": r, "threads": args.threads,
               "args": vars(args)}
    atomic_write(out / "results.json", lambda f: f.write(json.dumps(results, indent=1).encode()))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
