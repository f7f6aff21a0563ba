"""The whole pipeline, end to end, on a small synthetic dataset: the README's main-job command.

    python scripts/quickstart.py [--out quickstart] [--device cpu]

Each stage is a command of the repository, printed before it runs, so you can copy any of them.
Everything lands in --out: the dataset, checkpoints, PNG grids (--out/grids_*), submissions
(--out/submission_*.pt), and the comparison table (--out/results.md). A stage whose outputs are
already there is skipped, so re-running after a crash or Ctrl-C continues where it stopped;
--fresh starts over.
"""
import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PY = sys.executable

from engine import run_cli  # noqa: E402


def resume_if_started(checkpoint_dir: Path) -> list:
    """A training stage cut short left last.pt or best.pt behind: continue it exactly rather than start over."""
    return ["--resume"] if any((checkpoint_dir / n).exists() for n in ("last.pt", "best.pt")) else []


class Quickstart:
    def __init__(self, out: Path, device: str):
        self.out, self.device = out, device
        self.scores = {}  # row name -> val Jaccard
        self.timings = []  # (stage, seconds)

    def run(self, name: str, cmd: list, done_when: Path = None) -> str:
        """Run one stage (streaming its output) unless done_when already exists; return its output."""
        log = self.out / "logs" / f"{name}.log"
        if done_when is not None and done_when.exists() and log.exists():
            print(f"\n== {name}: done already ({done_when.relative_to(self.out)}), skipped")
            return log.read_text()
        printable = " ".join(str(c) if " " not in str(c) else repr(str(c)) for c in cmd)
        print(f"\n== {name}\n$ {printable}", flush=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        start, lines = time.time(), []
        proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        for line in proc.stdout:  # tqdm writes \r-updates: pass them through as they come
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
        if proc.wait() != 0:
            sys.exit(f"\nstage {name!r} failed (exit {proc.returncode}); fix the error above and re-run "
                     f"this command: finished stages are kept and skipped")
        self.timings.append((name, time.time() - start))
        text = "".join(lines)
        tmp = log.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(log)  # the log's presence marks the stage done
        return text

    def score(self, row: str, output: str) -> None:
        """Pick the `Jaccard: 0.xxxx` line an inference script printed."""
        m = re.search(r"^Jaccard: ([0-9.]+)$", output, re.M)
        if m is None:
            sys.exit(f"no 'Jaccard:' line in the output of {row!r}")
        self.scores[row] = float(m.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="quickstart", help="folder for everything the run writes (default: quickstart)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... passed to every stage (default: each stage "
                        "takes CUDA if present, else CPU)")
    parser.add_argument("--fresh", action="store_true", help="delete --out first and run every stage again")
    args = parser.parse_args()

    out = Path(args.out).resolve()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    q = Quickstart(out, args.device)
    data, dev = out / "data", (["--device", args.device] if args.device else [])
    t0 = time.time()

    # 1. Data: a small synthetic set in the competition's layout, its statistics and the reference bounds.
    q.run("dataset", [PY, "scripts/make_synthetic_dataset.py", "--out", data, "--train", 40, "--val", 20,
                      "--unlabeled", 60, "--hidden", 10, "--seed", 0, "--workers", 2], done_when=data / "hidden")
    q.run("statistics", [PY, "scripts/data_stats.py", data])
    #    The motion model (data/motion.py) fitted once on the train split's true masks: every stage reads it.
    motion = out / "motion.json"
    q.run("fit motion", [PY, "scripts/fit_motion.py", "--root_dir", data, "--out", motion], done_when=motion)
    refs = q.run("reference scores", [PY, "scripts/reference_scores.py", "--root_dir", data, "--split", "val",
                                      "--motion", motion])
    q.scores["copy the frame-11 mask"] = float(re.search(r"copy frame 11 Jaccard: ([0-9.]+)", refs).group(1))
    ceiling = float(re.search(r"ceiling\s+Jaccard: ([0-9.]+)", refs).group(1))
    extrapolate = float(re.search(r"extrapolate\s+Jaccard: ([0-9.]+)", refs).group(1))
    no_collisions = re.search(r"no collisions Jaccard: ([0-9.]+)", refs)  # absent when the fit found no collisions

    # 2. U-Net on labeled frames, then the frame-11 baseline on val and hidden.
    unet = out / "unet"
    #    The default recipe (object-centred crops, factored head, base 16), for 15 short epochs, validated
    #    once at the end (scoring every val frame costs more than an epoch of crops on a CPU).
    q.run("train U-Net", [PY, "Unets/train.py", "--root_dir", data, "--epochs", 15, "--val_every", 15,
                          "--checkpoint_dir", unet, *resume_if_started(unet), *dev], done_when=unet / "best.pt")
    q.score("U-Net on frame 11", q.run("val, U-Net on frame 11", [
        PY, "Unets/inference_val_without_reconstructor.py", "--root_dir", data, "--saved_seg_model_dir",
        unet / "best.pt", "--visualize", out / "grids_unet", *dev]))
    q.run("hidden, U-Net on frame 11", [
        PY, "Unets/inference_hidden_without_reconstructor.py", "--root_dir", data, "--saved_seg_model_dir",
        unet / "best.pt", "--output", out / "submission_unet.pt", *dev], done_when=out / "submission_unet.pt")

    # 3. The U-Net's pseudo-labels of unlabeled videos: the objects the reconstructor moves and the
    #    forecaster's training masks.
    labels = out / "pseudo_labels"
    q.run("pseudo-labels", [PY, "scripts/make_pseudo_labels.py", "--root_dir", data, "--saved_seg_model_dir",
                            unet / "best.pt", "--split", "unlabeled", "--num_videos", 40, "--out", labels, *dev])

    # 4. Reconstructor: frames 1-11 -> frame 22, as a change of frame 11 with its objects moved along their
    #    velocities; the U-Net segments its prediction, then a copy of the U-Net fine-tuned on predicted frames.
    recon, unet_ft = out / "reconstructor", out / "unet_finetuned"
    q.run("train reconstructor", [PY, "SSL_convLSTM_Reconstructor/train_reconstructor.py", "--root_dir", data,
                                  "--epochs", 10, "--batch_size", 4, "--downsample", 4, "--intermediate_weight", 0,
                                  "--reference", "extrapolated", "--pseudo_labels", labels, "--saved_seg_model_dir",
                                  unet / "best.pt", "--motion", motion, "--checkpoint_dir", recon,
                                  *resume_if_started(recon), *dev],
          done_when=recon / "best.pt")
    two_stage = ["--root_dir", data, "--saved_recon_model_dir", recon / "best.pt"]
    q.score("two-stage: reconstructor -> U-Net", q.run("val, two-stage", [
        PY, "Unets/inference_val_with_reconstructor.py", *two_stage, "--saved_seg_model_dir", unet / "best.pt",
        "--visualize", out / "grids_two_stage", *dev]))
    q.run("fine-tune U-Net on predicted frames", [
        PY, "Unets/train.py", "--root_dir", data, "--init_from", unet / "best.pt", *two_stage[2:], "--epochs", 1,
        "--batch_size", 16, "--checkpoint_dir", unet_ft, *resume_if_started(unet_ft), *dev],
        done_when=unet_ft / "best.pt")
    q.score("two-stage with the fine-tuned U-Net", q.run("val, two-stage fine-tuned", [
        PY, "Unets/inference_val_with_reconstructor.py", *two_stage, "--saved_seg_model_dir", unet_ft / "best.pt",
        *dev]))
    q.run("hidden, two-stage", [
        PY, "Unets/inference_hidden_with_reconstructor.py", *two_stage, "--saved_seg_model_dir", unet_ft / "best.pt",
        "--output", out / "submission_two_stage.pt", *dev], done_when=out / "submission_two_stage.pt")

    # 5. Mask forecaster: a ConvLSTM from the U-Net's masks 1-11 to mask 22, trained on the pseudo-labels.
    forecaster = out / "forecaster"
    q.run("train forecaster", [PY, "SSL_convLSTM_Reconstructor/train_forecaster.py", "--root_dir", data,
                               "--pseudo_labels", labels, "--saved_seg_model_dir", unet / "best.pt", "--epochs", 1,
                               "--batch_size", 4, "--learning_rate", 3e-3, "--downsample", 4, "--motion", motion,
                               "--checkpoint_dir", forecaster, *resume_if_started(forecaster), *dev],
          done_when=forecaster / "best.pt")
    fc = ["--root_dir", data, "--saved_seg_model_dir", unet / "best.pt", "--saved_forecaster_model_dir",
          forecaster / "best.pt"]
    q.score("mask forecaster", q.run("val, forecaster", [
        PY, "Unets/inference_val_with_forecaster.py", *fc, "--visualize", out / "grids_forecaster", *dev]))
    q.run("hidden, forecaster", [PY, "Unets/inference_hidden_with_forecaster.py", *fc, "--output",
                                 out / "submission_forecaster.pt", *dev], done_when=out / "submission_forecaster.pt")

    rows = [("copy the frame-11 mask", q.scores["copy the frame-11 mask"])]
    rows += [(name, v) for name, v in q.scores.items() if name != "copy the frame-11 mask"]
    rows.append(("true frame-11 mask moved by the motion model (data/motion.py, no learning)", extrapolate))
    if no_collisions:
        rows.append(("the same without collisions", float(no_collisions.group(1))))
    rows.append(("ceiling (true frame 22, objects absent from frame 11 removed)", ceiling))
    table = "| prediction of frame 22 | val Jaccard |\n|---|---|\n" + "".join(f"| {n} | {v:.4f} |\n" for n, v in rows)
    tmp = out / "results.md.tmp"
    tmp.write_text(table)
    tmp.replace(out / "results.md")
    print(f"\n== results on {data} (val, {len(rows)} rows)\n{table}")
    print("stage times: " + ", ".join(f"{n} {s:.0f}s" for n, s in q.timings))
    print(f"total {time.time() - t0:.0f}s. Submissions: {out}/submission_*.pt; PNG grids: {out}/grids_*/; "
          f"table: {out}/results.md; logs: {out}/logs/")


if __name__ == "__main__":
    sys.exit(run_cli(main))
