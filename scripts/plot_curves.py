"""Training curves of runs: one PNG per run from its log.jsonl (train loss, and every val_ figure it logged).

    python scripts/plot_curves.py RUN_DIR [RUN_DIR ...] [--out DIR]

Each RUN_DIR is a --checkpoint_dir of a train script; its curve is written to DIR/curve_<run name>.png
(default: into the run folder itself, as curve.png).
"""
import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt

from engine import atomic_write, check_output, check_output_folder, read_log, run_cli
from engine.flags import add_old_spellings


def plot_run(run_dir, png, title: str = None) -> Path:
    """Train loss per epoch (left axis) and the validation figures (right axis) of one run, into png."""
    records = read_log(run_dir)
    if not records:
        raise ValueError(f"{run_dir}/log.jsonl is empty: the run has not finished an epoch")
    epochs = [r["epoch"] for r in records]
    fig, loss_ax = plt.subplots(figsize=(6, 4), dpi=100)
    loss_ax.plot(epochs, [r["train_loss"] for r in records], color="tab:blue", marker=".", label="train loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("train loss", color="tab:blue")
    val_keys = sorted({k for r in records for k in r if k.startswith("val_") and k != "val_seconds"})
    handles = loss_ax.get_legend_handles_labels()
    if val_keys:
        val_ax = loss_ax.twinx()
        colors = ["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:gray"]  # not the loss's blue
        for key, color in zip(val_keys, colors * len(val_keys)):
            points = [(r["epoch"], r[key]) for r in records if key in r]
            val_ax.plot(*zip(*points), marker="o", color=color, label=key)
        val_ax.set_ylabel("validation")
        more = val_ax.get_legend_handles_labels()
        handles = (handles[0] + more[0], handles[1] + more[1])
    loss_ax.legend(*handles, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    loss_ax.set_title(title or Path(run_dir).name)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(png, lambda f: fig.savefig(f, format="png"))  # a reader never sees half a picture
    finally:
        plt.close(fig)
    return png


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (each holding log.jsonl)")
    parser.add_argument("--out", dest="out_dir", default=None, help="write curve_<run>.png here (default: curve.png in each run)")
    add_old_spellings(parser, {'--out_dir': '--out'})  # kept for one release
    args = parser.parse_args(argv)
    if args.out_dir:
        check_output_folder(args.out_dir, "--out", args)
    for run in map(Path, args.runs):  # every run checked before the first picture
        if not (run / "log.jsonl").is_file():
            raise FileNotFoundError(f"run {run}: no {run / 'log.jsonl'} (pass a --checkpoint_dir of a train script "
                                    f"that finished an epoch)")
    for run in map(Path, args.runs):
        png = Path(args.out_dir) / f"curve_{run.name}.png" if args.out_dir else run / "curve.png"
        check_output(png, "--out" if args.out_dir else "the run folder's curve.png", "png")
        print(f"{plot_run(run, png)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
