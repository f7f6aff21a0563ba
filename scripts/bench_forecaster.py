"""Quality benchmark of the mask forecaster against the references, through the repository's own commands.

    python scripts/bench_forecaster.py --out /tmp/bench_forecaster                          # every row
    python scripts/bench_forecaster.py --out /tmp/bench_forecaster --segmentation oracle     # true-mask rows alone

Stages (each a command of the repository, printed before it runs; a stage whose output exists is
skipped, so re-running continues); the recipe is pipeline/recipes.py: bench_forecaster_recipe, run by
pipeline/stages.py, and the table is read from the scores each stage wrote as JSON (OUT/scores/):
 1. synthetic dataset (--train/--val/--unlabeled/--hidden, --seed), unless --root_dir;
 2. the motion model fitted on the train split's true masks (scripts/fit_motion.py), and the reference scores
    of val (scripts/reference_scores.py): copy the true frame-11 mask, the motion model on the true frame-11
    mask with and without collisions, and the ceiling;
 3. U-Net (Unets/train.py, unless --unet_checkpoint) and its score on frame 11
    (inference_val_without_reconstructor.py);
 4. pseudo-labels of the unlabeled videos (scripts/make_pseudo_labels.py);
 5. forecaster (forecasting/train_forecaster.py), then inference_val_with_forecaster.py plain and with each
    post-processing flag, and its start alone: the motion model on the U-Net's masks with and without
    collisions (scripts/predict.py --method motion).
--segmentation oracle runs steps 1-2 only. (The forecaster trained on true masks, which this script once
made by writing a pseudo-label store of re-rendered true masks by hand, is gone: it scored as its start, the
motion model on true masks, did; README.)
The two-stage RGB pipeline's rows come from scripts/bench_pipeline.py on the same dataset.
Prints the table (val Jaccard; the target: the forecaster closes at least half of the gap between
copying the frame-11 mask and the ceiling) and the CPU time of the commands run now.
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import atomic_write, run_cli  # noqa: E402
from pipeline.recipes import bench_forecaster_recipe  # noqa: E402
from pipeline.stages import StageFailed, run_recipe  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="bench_forecaster", help="work folder: dataset, checkpoints, pseudo-labels, logs, results")
    p.add_argument("--train", type=int, default=80, help="synthetic train videos")
    p.add_argument("--val", type=int, default=40, help="synthetic val videos")
    p.add_argument("--unlabeled", type=int, default=300, help="synthetic unlabeled videos")
    p.add_argument("--hidden", type=int, default=10, help="synthetic hidden videos")
    p.add_argument("--seed", type=int, default=1, help="dataset seed (of the dataset generated in OUT/data)")
    p.add_argument("--root_dir", default=None,
                   help="use this synthetic dataset (made with --seed, e.g. by scripts/bench_unet.py --unlabeled N) instead of OUT/data")
    p.add_argument("--unet_checkpoint", default=None,
                   help="use this trained U-Net (e.g. scripts/bench_unet.py's) instead of training one here")
    p.add_argument("--unet_epochs", type=int, default=20, help="U-Net epochs (Unets/train.py --epochs; its other flags: defaults)")
    p.add_argument("--pseudo_videos", type=int, default=0, help="unlabeled videos to pseudo-label (0: all)")
    p.add_argument("--forecaster_args", default="--epochs 4 --batch_size 4 --learning_rate 3e-3 --enc_channels 8 16 32 "
                   "--hidden_channels 32 --kernel_size 3 --downsample 4",
                   help="train_forecaster.py flags of the recipe (model size, schedule, options)")
    p.add_argument("--min_blob_size", type=int, default=20, help="the --min_blob_size measured in the post-processing rows")
    p.add_argument("--segmentation", default="both", choices=("unet", "oracle", "both"),
                   help="oracle: only the rows on true masks (the motion model on the true frame-11 mask, from "
                        "scripts/reference_scores.py), no U-Net and no forecaster; unet and both: every row")
    p.add_argument("--threads", type=int, default=1,
                   help="OMP/torch threads per command (1 is fastest on a shared 2-core machine)")
    p.add_argument("--device", default="cpu", help="device of every command")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    try:
        rows = run_recipe(bench_forecaster_recipe(args), args.out, args.device)
    except StageFailed as e:
        sys.exit(f"\n{e}")
    scores = {label: value for label, value, _ in rows}
    copy, ceiling = scores["copy the true frame-11 mask"], scores["ceiling"]
    target = copy + 0.5 * (ceiling - copy)
    print(f"target: half of the copy-to-ceiling gap: {target:.4f}")
    cpu = sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF)))
    print(f"CPU time (commands and this script) of the stages run now: {cpu / 60:.1f} min; wall "
          f"{(time.time() - t0) / 60:.1f} min (skipped stages not counted)")
    out = Path(args.out).resolve()
    atomic_write(out / "results.json", lambda f: f.write(json.dumps(
        {"rows": scores, "copy": copy, "ceiling": ceiling, "target": target, "args": vars(args)}, indent=1).encode()))


if __name__ == "__main__":
    sys.exit(run_cli(main))
