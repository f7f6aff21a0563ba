"""Quality benchmark of the mask forecaster against the references, through the repository's own commands.

    python scripts/bench_forecaster.py --out /tmp/bench_forecaster                          # both parts
    python scripts/bench_forecaster.py --out /tmp/bench_forecaster --segmentation oracle     # motion model alone

Stages (each a command of the repository, printed before it runs; a stage whose output exists is
skipped, so re-running continues):
 1. synthetic dataset (--train/--val/--unlabeled/--hidden, --seed);
 2. reference scores of val: copy the true frame-11 mask, and the ceiling;
 3. U-Net (Unets/train.py) and its score on frame 11 (inference_val_without_reconstructor.py);
 4. pseudo-labels of the unlabeled videos (scripts/make_pseudo_labels.py);
 5. forecaster (forecasting/train_forecaster.py), then inference_val_with_forecaster.py
    plain and with each post-processing flag;
 6. --segmentation oracle/both: the forecaster trained and scored with perfect segmentation (the
    generator re-renders the true masks of the unlabeled and val videos into pseudo-label stores,
    OUT/pseudo_labels_true): what the motion model does without the U-Net's errors, and an upper
    bound of the U-Net pipeline. Its post-processing rows are scored here, in-process.
The two-stage RGB pipeline's rows come from scripts/bench_pipeline.py on the same dataset.
Prints the table (val Jaccard; the target: the forecaster closes at least half of the gap between
copying the frame-11 mask and the ceiling) and the CPU time of all commands.

Measured (2-core CPU, 2 threads): on bench_unet.py's dataset (--seed 1, 300 train, 30 val) with its U-Net
(oracle 0.9527): --unet_checkpoint ... --segmentation unet --pseudo_videos 100 --forecaster_args "--epochs 3
--batch_size 4 --learning_rate 3e-3 --enc_channels 8 16 32 --hidden_channels 32 --kernel_size 3
--downsample 4": copy 0.3918, U-Net on frame 11 0.3843, forecaster 0.6701 (the motion model with collisions
on the U-Net's masks, 0.6701 alone; 0.6384 without collisions), motion model on the true masks 0.6945, ceiling 0.9254,
target 0.6586: reached; 9.4 min. --segmentation oracle with the same flags: 0.6946.
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from engine import run_cli  # noqa: E402
PY = sys.executable



def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="bench_forecaster", help="work folder: dataset, checkpoints, pseudo-labels, logs, results")
    p.add_argument("--train", type=int, default=80, help="synthetic train videos")
    p.add_argument("--val", type=int, default=40, help="synthetic val videos")
    p.add_argument("--unlabeled", type=int, default=300, help="synthetic unlabeled videos")
    p.add_argument("--hidden", type=int, default=10, help="synthetic hidden videos")
    p.add_argument("--seed", type=int, default=1, help="dataset seed")
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
                   help="inputs and pseudo-labels from the trained U-Net, from the true masks, or both")
    p.add_argument("--threads", type=int, default=1,
                   help="OMP/torch threads per command (1 is fastest on a shared 2-core machine)")
    p.add_argument("--device", default="cpu", help="device of every command")
    return p.parse_args()


class Bench:
    def __init__(self, out: Path, threads: int):
        self.out = out
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def run(self, name: str, cmd: list, done_when: Path = None) -> str:
        log = self.out / "logs" / f"{name}.log"
        if done_when is not None and done_when.exists() and log.exists():
            print(f"== {name}: done already, skipped", flush=True)
            return log.read_text()
        print(f"== {name}\n$ {' '.join(str(c) for c in cmd)}", flush=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.time()
        proc = subprocess.run([str(c) for c in cmd], cwd=REPO, env=self.env, capture_output=True, text=True)
        text = proc.stdout + proc.stderr
        if proc.returncode != 0:
            sys.exit(f"stage {name!r} failed (exit {proc.returncode}):\n{text[-3000:]}")
        log.write_text(text)
        print(f"   {time.time() - start:.0f}s", flush=True)
        return text


def jaccard(output: str) -> float:
    m = re.search(r"^Jaccard: ([0-9.]+)$", output, re.M)
    if m is None:
        sys.exit("no 'Jaccard:' line in the output")
    return float(m.group(1))


def oracle_stores(data: Path, out: Path, seed: int) -> None:
    """True masks as pseudo-labels (unlabeled, 22 frames) and as val inputs (frames 1-11), re-rendered by the
    generator from (seed, video id): the stores a perfect U-Net would write."""
    import numpy as np
    from data.pseudo_labels import DONE, IDS, MASKS, META, STORE_FRAMES
    from data.readers import SplitIndex, dataset_fingerprint
    from data.synthetic import render_video
    for split in ("unlabeled", "val"):
        d = out / split
        if (d / META).is_file():
            continue
        index = SplitIndex(data, split, frame_indices=[0])
        T = STORE_FRAMES[split]
        d.mkdir(parents=True, exist_ok=True)
        masks = np.lib.format.open_memmap(d / MASKS, mode="w+", dtype=np.uint8, shape=(len(index), T, 160, 240))
        for i, vid in enumerate(index.video_ids):
            frames, true = render_video(seed, vid)
            if i == 0 and not np.array_equal(frames[0], index.frames(0, [0])[0]):
                sys.exit(f"--seed {seed} does not re-render {data}: pass the dataset's seed")
            masks[i] = true[:T]
        masks.flush()
        np.save(d / IDS, np.asarray(index.video_ids, dtype=np.int64))
        np.save(d / DONE, np.ones(len(index), dtype=bool))
        (d / META).write_text(json.dumps({"split": split, "frames": T, "segmenter": "true masks (bench oracle)",
                                          "segmenter_sha256": "-", "root": str(data.resolve()),
                                          "dataset": dataset_fingerprint(index.paths, split, index.video_ids)}))


def oracle_rows(data: Path, stores: Path, checkpoint: Path, min_blob_size: int) -> dict:
    """Val Jaccard of the forecaster on true input masks, plain and with each post-processing."""
    import numpy as np
    import torch
    from data.metric import SegmentationScore
    from Unets.postprocess import remove_small_blobs, restrict_to_input_classes
    from data.pseudo_labels import open_store
    from data.readers import SplitIndex
    from forecasting.forecaster import MaskForecaster
    from engine import load_model
    model = load_model(checkpoint, MaskForecaster)
    inputs, ids, _ = open_store(stores, "val", data)
    truth = SplitIndex(data, "val", frame_indices=[], need_mask=True)
    names = ("", " --restrict_classes", f" --min_blob_size {min_blob_size}")
    scores = {n: SegmentationScore() for n in names}
    with torch.no_grad():
        for s in range(0, len(ids), 8):
            x = torch.from_numpy(np.array(inputs[s:s + 8]))
            y = torch.from_numpy(np.stack([truth.masks(i, [21])[0] for i in range(s, s + len(x))]))
            logits = model(x)[:, -1]
            scores[names[0]].update(logits.argmax(1), y)
            scores[names[1]].update(restrict_to_input_classes(logits, x).argmax(1), y)
            scores[names[2]].update(remove_small_blobs(logits.argmax(1), min_blob_size), y)
    return {f"forecaster, perfect segmentation{n}": sc.compute() for n, sc in scores.items()}


def start_rows(data: Path, stores: Path, motion_file: Path, what: str) -> dict:
    """Val Jaccard of the forecaster's start alone (the motion model on the val input masks in `stores`, no
    learning), with and without collisions: what the ConvLSTM's change is measured against."""
    import dataclasses

    import numpy as np
    from data.metric import SegmentationScore
    from forecasting.motion import Motion, extrapolate_mask
    from data.pseudo_labels import open_store
    from data.readers import SplitIndex
    motion = Motion.from_config(json.loads(motion_file.read_text()))
    inputs, ids, _ = open_store(stores, "val", data)
    truth = SplitIndex(data, "val", frame_indices=[], need_mask=True)
    rows = {}
    for name, m in ((f"motion model on {what} (the forecaster's start, no learning)", motion),
                    (f"motion model on {what}, without collisions", dataclasses.replace(motion, contact=0.0))):
        score = SegmentationScore()
        for i in range(len(ids)):
            score.update(extrapolate_mask(np.array(inputs[i]), m)[None], truth.masks(i, [21]))  # a copy: memmaps are read-only
        rows[name] = score.compute()
    return rows


def main():
    args = parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    b = Bench(out, args.threads)
    data, dev = (Path(args.root_dir).resolve() if args.root_dir else out / "data"), ["--device", args.device]
    t0 = time.time()
    rows = {}
    motion = out / "motion.json"  # fitted once on the train split's true masks, then read by every stage
    train_fc = [PY, "forecasting/train_forecaster.py", "--root_dir", data, *args.forecaster_args.split(),
                "--motion", motion, "--num_workers", 1, *dev]

    if not args.root_dir:
        b.run("dataset", [PY, "scripts/make_synthetic_dataset.py", "--out", data, "--train", args.train, "--val", args.val,
                          "--unlabeled", args.unlabeled, "--hidden", args.hidden, "--seed", args.seed, "--workers", 2],
              done_when=data / "hidden")
    b.run("fit motion", [PY, "scripts/fit_motion.py", "--root_dir", data, "--out", motion], done_when=motion)
    refs = b.run("references", [PY, "scripts/reference_scores.py", "--root_dir", data, "--split", "val", "--motion", motion])
    copy = float(re.search(r"copy frame 11 Jaccard: ([0-9.]+)", refs).group(1))
    ceiling = float(re.search(r"ceiling\s+Jaccard: ([0-9.]+)", refs).group(1))
    rows["motion model on the true frame-11 mask (forecasting/motion.py, no learning)"] = float(
        re.search(r"extrapolate\s+Jaccard: ([0-9.]+)", refs).group(1))
    if re.search(r"no collisions Jaccard", refs):
        rows["motion model on the true frame-11 mask, without collisions"] = float(
            re.search(r"no collisions Jaccard: ([0-9.]+)", refs).group(1))

    if args.segmentation in ("unet", "both"):
        if args.unet_checkpoint:
            unet_best = Path(args.unet_checkpoint).resolve()
        else:
            unet = out / "unet"
            b.run("unet", [PY, "Unets/train.py", "--root_dir", data, "--epochs", args.unet_epochs, "--num_workers", 1,
                           "--checkpoint_dir", unet, *dev], done_when=unet / "best.pt")
            unet_best = unet / "best.pt"
        seg = ["--saved_seg_model_dir", unet_best]
        rows["U-Net on frame 11 (no motion model)"] = jaccard(b.run("val unet", [
            PY, "Unets/inference_val_without_reconstructor.py", "--root_dir", data, *seg, "--num_workers", 1, *dev]))
        pseudo = out / "pseudo_labels"
        b.run("pseudo-labels", [PY, "scripts/make_pseudo_labels.py", "--root_dir", data, *seg, "--split", "unlabeled",
                                "--out", pseudo, "--num_videos", args.pseudo_videos, *dev])
        fc = out / "forecaster"
        b.run("forecaster", train_fc + ["--pseudo_labels", pseudo, *seg, "--checkpoint_dir", fc], done_when=fc / "best.pt")
        fcs = [PY, "Unets/inference_val_with_forecaster.py", "--root_dir", data, *seg, "--saved_forecaster_model_dir",
               fc / "best.pt", "--num_workers", 1, *dev]
        rows["forecaster on the U-Net's masks"] = jaccard(b.run("val forecaster", fcs))
        rows["forecaster on the U-Net's masks --restrict_classes"] = jaccard(
            b.run("val forecaster restrict", fcs + ["--restrict_classes"]))
        rows[f"forecaster on the U-Net's masks --min_blob_size {args.min_blob_size}"] = jaccard(
            b.run("val forecaster blobs", fcs + ["--min_blob_size", args.min_blob_size]))
        rows.update(start_rows(data, pseudo, motion, "the U-Net's masks"))

    if args.segmentation in ("oracle", "both"):
        stores = out / "pseudo_labels_true"
        oracle_stores(data, stores, args.seed)
        fc = out / "forecaster_true"
        b.run("forecaster, perfect segmentation", train_fc + [
            "--pseudo_labels", stores, "--saved_seg_model_dir", "none", "--checkpoint_dir", fc], done_when=fc / "best.pt")
        rows.update(oracle_rows(data, stores, fc / "best.pt", args.min_blob_size))

    target = copy + 0.5 * (ceiling - copy)
    table = ["| prediction of frame 22 (val) | Jaccard |", "|---|---|", f"| copy the true frame-11 mask | {copy:.4f} |"]
    table += [f"| {name} | {v:.4f} |" for name, v in rows.items()]
    table += [f"| ceiling | {ceiling:.4f} |", f"| target: half of the copy-to-ceiling gap | {target:.4f} |"]
    cpu = sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF)))
    text = "\n".join(table)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"rows": rows, "copy": copy, "ceiling": ceiling, "args": vars(args)},
                                                 indent=1))
    print("\n" + text)
    print(f"\nCPU time (commands and this script) of the stages run now: {cpu / 60:.1f} min; wall {(time.time() - t0) / 60:.1f} min "
          f"(skipped stages not counted)")


if __name__ == "__main__":
    sys.exit(run_cli(main))
