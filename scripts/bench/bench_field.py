"""The field table: copy, the motion model, the learned dynamics and SimVP on the same val videos, each learned
model trained with the same budget.

    python scripts/bench/bench_field.py --preset smoke --out /tmp/field_smoke                 # proves it end to end
    python scripts/bench/bench_field.py --preset cpu_mid --out runs/field_mid --real_root ../shared/real_samples/Dataset_Student
    python scripts/bench/bench_field.py --preset cpu --out runs/field --real_root ../shared/real_samples/Dataset_Student
    python scripts/bench/bench_field.py --preset gpu --out runs/field_gpu --root_dir D         # competition scale, a GPU

Stages (pipeline/recipes.py: field_data_stages, field_train_stage; run by pipeline/stages.py, so a re-run skips
what finished and resumes a cut training):
 1. a synthetic dataset in OUT/data (unless --root_dir), the motion model fitted on its train masks, a U-Net
    (unless --unet_checkpoint), its pseudo-labels of the unlabeled videos and its masks of val frames 1-11;
 2. each learned model (forecasting/train_dynamics.py, forecasting/train_simvp.py) for one epoch in
    OUT/calibrate/ on --calibrate_share of the train and unlabeled videos, whose cost (CPU time on a CPU, wall time
    on a GPU) sets the epochs that fit --budget_min: (budget - the run's one-off cost: start, tracks, validation) /
    one epoch's training, scaled from the share to all the videos (the table gives the cost each training really
    had: the one-off part that grows with the videos, the tracks, is not scaled);
 3. each learned model trained for those epochs on the same pseudo-labels and train masks, validated after its
    last epoch only (nothing is chosen on the val videos the table scores);
 4. every method scored here, from the same masks of frames 1-11, the U-Net left out: the U-Net's masks of the val
    videos (as inference sees them), their true masks, and the labeled real videos under --real_root (train and
    val, true masks; a measurement only, skipped when the folder is absent).

Columns: parameters (the motion model: its fitted numbers), training cost (CPU-minutes of the training command
with --threads 1 on a CPU; wall-minutes on a GPU), inference videos/s from masks to frame 22 (one process,
--threads), and the three Jaccards. Writes OUT/scores/field.json and OUT/results.md.

The limit rows (data/predictability.py, as scripts/analysis/predictability.py): when the dataset is the generator's (its
manifest: OUT/data, or a --root_dir it made with this generator version), each val video is drawn again from the
manifest's seed and world and its own id (the stored frames 11 and 22 must come out equal, or the run stops), and
frame 22 is re-simulated in the generator's engine from the exact frame-11 state of the bodies frames 1-11 show,
from that state nudged by up to 1e-3, and drawn with each of those objects at its true frame-22 place (perfect
motion); with the ceiling, they bound every method above from true masks. Another --root_dir (real videos, a
dataset without a manifest) leaves them out, said so. Kept in OUT/scores/limits.json.
"""
import argparse
import json
import os
import resource
import sys
from pathlib import Path

import torch

from data.predictability import dataset_world
from data.synthetic import GENERATOR_VERSION
from engine import atomic_write, read_log, run_cli
from pipeline.cli import write_scores
from pipeline.field import (
    field_methods, field_table, jaccard_of, limit_rows, limit_scores, score, true_inputs, unet_inputs,
)
from pipeline.recipes import (
    FIELD_MODELS, FIELD_PRESETS, add_world_arg, field_calibration_videos, field_data_stages, field_train_stage,
    threads_env, user_path,
)
from pipeline.stages import StageFailed, run_stage
from engine.flags import add_old_spellings

LABELS = {"copy": "copy the frame-11 mask", "motion": "motion model (fitted, no learning)",
          "dynamics": "learned object dynamics", "simvp": "SimVP (gSTA), mask space"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", choices=sorted(FIELD_PRESETS), default="smoke",
                   help="defaults of the flags below: " + "; ".join(
                       f"{k}: " + ", ".join(f"{f} {v}" for f, v in d.items()) for k, d in FIELD_PRESETS.items()))
    p.add_argument("--out", default="bench_field", help="work folder: dataset, checkpoints, logs, scores, results.md")
    p.add_argument("--root_dir", default=None, help="use this dataset (train, val, unlabeled) instead of making OUT/data")
    p.add_argument("--train", type=int, default=None, help="train videos (made, and trained on: U-Net, both models)")
    p.add_argument("--val", type=int, default=None, help="val videos made (all are scored)")
    p.add_argument("--unlabeled", type=int, default=None, help="unlabeled videos made, pseudo-labelled and trained on")
    p.add_argument("--seed", type=int, default=3, help="dataset seed")
    add_world_arg(p)
    p.add_argument("--budget_min", type=float, default=None,
                   help="training budget of each learned model: CPU-minutes (wall-minutes on a GPU)")
    p.add_argument("--calibrate_share", type=float, default=None,
                   help="share of the train and unlabeled videos each model's one-epoch calibration run trains on")
    p.add_argument("--saved_seg_model_dir", dest="unet_checkpoint", default=None, help="use this trained U-Net instead of training one here")
    p.add_argument("--unet_epochs", type=int, default=None, help="Unets/train.py --epochs")
    p.add_argument("--unet_args", default=None, help="other Unets/train.py flags")
    p.add_argument("--simvp_args", default=None, help="forecasting/train_simvp.py flags (model preset, batch, ...)")
    p.add_argument("--dynamics_args", default="", help="forecasting/train_dynamics.py flags")
    p.add_argument("--real_root", default="../shared/real_samples/Dataset_Student",
                   help="labeled real videos (train/, val/): a measurement column, skipped when absent")
    p.add_argument("--threads", type=int, default=None, help="OMP/torch threads of every command (0: leave as is)")
    p.add_argument("--device", default=None, help="device of every command and of the scoring")
    preset = p.parse_known_args(argv)[0].preset
    p.set_defaults(**FIELD_PRESETS[preset])
    add_old_spellings(p, {'--unet_checkpoint': '--saved_seg_model_dir'})  # kept for one release
    args = p.parse_args(argv)
    if min(args.train, args.val, args.unlabeled, args.unet_epochs) < 1 or args.budget_min <= 0 \
            or not 0 < args.calibrate_share <= 1:
        p.error("--train, --val, --unlabeled and --unet_epochs must be >= 1, --budget_min > 0, "
                "0 < --calibrate_share <= 1")
    return args


def timed_stage(stage, names, out, device, env, record_path) -> dict:
    """Run a stage (skipped when done) and return its cost {"cpu_s", "wall_s"}, kept in record_path so that a
    re-run that skips the stage still has it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = run_stage(stage, names, out, device, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if wall == 0.0 and record_path.is_file():
        return json.loads(record_path.read_text())
    cost = {"cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "wall_s": round(wall, 1)}
    write_scores(record_path, cost)
    return cost


def epochs_in_budget(run_dir: Path, cost: dict, budget_s: float, gpu: bool, scale: float = 1.0) -> int:
    """The epochs a model gets: its calibration run (one epoch) split into one epoch's training (the log's
    train_seconds, as a share of the run's wall time) and the one-off rest; scale: the full epoch's videos over
    the calibration's."""
    spent = cost["wall_s"] if gpu else cost["cpu_s"]
    epoch = spent * read_log(run_dir)[-1]["train_seconds"] / max(cost["wall_s"], 1e-9)
    return max(1, int((budget_s - (spent - epoch)) // max(epoch * scale, 1e-9)))


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = user_path(args.root_dir) if args.root_dir else str(out / "data")
    names = {"out": str(out), "data": data, "py": sys.executable}
    env_vars = threads_env(args.threads, "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    env = {**os.environ, **env_vars}
    gpu = str(args.device).startswith("cuda")
    costs = out / "costs"  # each stage's CPU and wall seconds, kept for a re-run that skips it
    costs.mkdir(exist_ok=True)
    (out / "scores").mkdir(exist_ok=True)
    try:
        motion_cost = None
        for stage in field_data_stages(args):
            cost = timed_stage(stage, names, out, args.device, env, costs / f"{stage['name'].replace(' ', '_')}.json")
            if stage["name"] == "fit motion":
                motion_cost = cost
        trained = {}
        for model in FIELD_MODELS:
            calib = field_train_stage(args, model, 1, calibrate=True)
            cost = timed_stage(calib, names, out, args.device, env, costs / f"calibrate_{model}.json")
            scale = (args.train + args.unlabeled) / sum(field_calibration_videos(args))
            epochs = epochs_in_budget(out / "calibrate" / model, cost, args.budget_min * 60, gpu, scale)
            print(f"{model}: one calibration epoch ({1 / scale:.0%} of the videos) cost {cost}; {epochs} epochs fit "
                  f"{args.budget_min} min", flush=True)
            trained[model] = {"epochs": epochs, **timed_stage(field_train_stage(args, model, epochs), names, out,
                                                              args.device, env, costs / f"train_{model}.json")}
    except StageFailed as e:
        sys.exit(f"\n{e}")

    # 4. every method from the same masks
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    methods = field_methods(out / "motion.json", out / "dynamics", out / "simvp", device)
    inputs = {"unet": unet_inputs(out / "pseudo_labels", data)}
    true_in, true_out, ceilings, val_ids = true_inputs(data, ["val"])
    inputs["true"] = (true_in, true_out)
    real = Path(args.real_root) if args.real_root else None
    if real is not None and real.is_dir():
        inputs["real"] = true_inputs(real, ["train", "val"])[:2]
    else:
        print(f"--real_root {args.real_root}: not a folder, the real column is left out")
    results, rows = {}, []
    for name, (predict, parameters) in methods.items():
        results[name] = {kind: score(predict, *pair) for kind, pair in inputs.items()}
        cost = motion_cost if name == "motion" else trained.get(name)
        minutes = None if cost is None else (cost["wall_s"] if gpu else cost["cpu_s"]) / 60
        results[name].update(parameters=parameters, train=cost)
        rows.append({"method": LABELS[name], "parameters": parameters, "train_cpu_min": minutes,
                     "videos_per_s": results[name]["unet"]["videos_per_s"],
                     **{k: results[name].get(k, {}).get("jaccard") for k in ("unet", "true", "real")}})
    # the limits: the generator's own engine from the exact frame-11 state, on these very val videos
    limits, generator = None, "no limit rows: not a dataset this generator can draw again"
    try:
        seed, _, world = dataset_world(data)
        generator = f"generator version {GENERATOR_VERSION}, {world} world, seed {seed}"
    except ValueError as e:
        print(f"limit rows left out: {e}", flush=True)
    else:
        try:
            limits = limit_scores(data, "val", val_ids, true_out, out / "scores" / "limits.json")
        except ValueError as e:  # a dataset that says it is the generator's but is not drawn so: no table
            sys.exit(f"limit rows: {e}")
        rows += limit_rows(limits)
    ceiling = {"jaccard": jaccard_of(ceilings, true_out)}
    rows.append({"method": "ceiling (true frame 22, objects absent from frame 11 removed)", "parameters": None,
                 "train_cpu_min": None, "videos_per_s": None, "unet": None, "true": ceiling["jaccard"], "real": None})
    table = field_table(rows)
    unit = "wall-minutes on the GPU" if gpu else f"CPU-minutes, {args.threads or 'default'} thread(s) a command"
    header = (f"# The field on {data} ({generator}; val: {len(true_out)} videos; budget {args.budget_min} min per "
              f"learned model, {unit}; epochs: " + ", ".join(f"{m} {t['epochs']}" for m, t in trained.items())
              + ")\n\n")
    write_scores(out / "scores" / "field.json", {"methods": results, "limits": limits, "ceiling": ceiling,
                                                "args": vars(args), "val_videos": len(true_out)})
    atomic_write(out / "results.md", lambda f: f.write((header + table).encode()))
    print("\n" + header + table + f"\nscores: {out}/scores/field.json; table: {out}/results.md")


if __name__ == "__main__":
    sys.exit(run_cli(main))
