"""What every entry script shares around its work: printing on rank 0, the run header, the run flags,
seeding and RNG state, the JSON-lines log, and run_cli, the wrapper that turns input errors into one line."""
import argparse
import json
import math
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from engine.device import DistContext
from engine.errors import CheckpointError
from engine.io import atomic_write

REPO_ROOT = Path(__file__).resolve().parents[1]
LAST, BEST, LOG = "last.pt", "best.pt", "log.jsonl"


def print0(*args, ctx: DistContext = None, **kwargs) -> None:
    """print on rank 0 only (every process when ctx is None and not under torch.distributed)."""
    rank = ctx.rank if ctx is not None else (dist.get_rank() if dist.is_available() and dist.is_initialized() else 0)
    if rank == 0:
        print(*args, **kwargs, flush=True)


def git_commit() -> str:
    """The repository's commit, with '+dirty' when files differ from it; 'unknown' outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


def print_run_header(args, ctx: DistContext) -> None:
    """The git commit, the processes and every argument, once, so a log says how it was made."""
    print0(f"git commit: {git_commit()}", ctx=ctx)
    print0(f"command: {' '.join([Path(sys.argv[0]).name] + sys.argv[1:])}", ctx=ctx)
    print0(f"device: {ctx.device}, processes: {ctx.world_size}", ctx=ctx)
    print0("arguments: " + json.dumps(vars(args), sort_keys=True), ctx=ctx)


def add_run_args(parser, checkpoint_default: str) -> None:
    """The flags every train script shares: where the run lives, resuming it, its seed, loaders, device."""
    parser.add_argument("--checkpoint_dir", default=checkpoint_default, help="folder for last.pt, best.pt and log.jsonl")
    parser.add_argument("--resume", action="store_true", help="continue the run in --checkpoint_dir from its last.pt")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling, flips and sampling")
    parser.add_argument("--num_workers", type=int, default=2, help="data-loading worker processes per training process")
    parser.add_argument("--val_every", type=int, default=1,
                        help="validate every N epochs (and after the last); best.pt is the best validated epoch")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if present, else CPU)")


def start_run(args, ctx: DistContext) -> dict:
    """Print the run header and seed every rank alike; returns the run's arguments as plain data, with the
    process count and global batch added (what a checkpoint stores and a resume must match)."""
    if getattr(args, "val_every", 1) < 1:
        raise ValueError(f"--val_every must be >= 1, got {args.val_every}")
    run_args = {**vars(args), "world_size": ctx.world_size, "global_batch_size": args.batch_size * ctx.world_size}
    print_run_header(argparse.Namespace(**run_args), ctx)
    seed_everything(args.seed)  # same seed on every rank: identical initial weights
    return run_args


class JsonlLogger:
    """Appends one JSON object per line to a file (rank 0 only); appending keeps a resumed run's history."""

    def __init__(self, path, ctx: DistContext):
        self.path, self.ctx = Path(path), ctx

    def log(self, record: dict) -> None:
        if self.ctx.is_main:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def read_log(run_dir) -> list:
    """The records of a run's log.jsonl (JsonlLogger's), one dict an epoch, with the path and the fix when absent."""
    path = Path(run_dir) / LOG
    if not path.is_file():
        raise FileNotFoundError(f"no {LOG} in {run_dir}: pass the --checkpoint_dir of a train script's run")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line) if line.strip() else None
        except ValueError:
            record = []
        if record is None:
            continue
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {n}: not a JSON object (one a line, as the train scripts write): the "
                             f"log is damaged; remove that line")
        records.append(record)
    return records


def trim_log(path, epochs: int, ctx: DistContext) -> None:
    """Drop the log lines of epochs after `epochs` (written before a crash that lost their checkpoint:
    the resumed run writes them again), atomically, and say so."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    try:
        keep = [line for line in lines if line.strip() and json.loads(line).get("epoch", 0) <= epochs]
    except (ValueError, AttributeError):
        raise ValueError(f"{path} is not a log of this repository (one JSON object a line): move it away") from None
    if len(keep) != len(lines):
        atomic_write(path, lambda f: f.write("".join(line + "\n" for line in keep).encode()))
        print0(f"{path}: dropped {len(lines) - len(keep)} lines of epochs after {epochs}, which no checkpoint kept",
               ctx=ctx)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Same seed on every rank: the models start identical."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG's state as plain data (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].copy()), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() captured."""
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy(), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def error_message(e: BaseException) -> str:
    """The one-line message of an input error, also when a DataLoader worker raised it: torch re-raises a
    worker's exception as the same type with "Caught X in DataLoader worker process N" and the worker's
    whole traceback as its message, whose last "X: message" is the original one."""
    text = str(e)
    if text.startswith("Caught ") and "Original Traceback" in text:
        marker = f"{type(e).__name__}: "
        at = text.rfind(marker)
        if at >= 0:
            return text[at + len(marker):].strip()
    return text


def run_cli(main) -> int:
    """Run an entry script's main(); an error about the input (a path, a checkpoint, a resume mismatch, an
    unwritable output, a malformed dataset: OSError/ValueError, with the fix in their message) or a
    non-finite loss prints `error: <message>` on one line without a traceback and returns exit status 1,
    the same whether a loader worker or the main process raised it. A warning (stale memory-mapped arrays,
    say) prints as `warning: <message>`, one line too, without the source line Python adds."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            main()
        except (OSError, ValueError, CheckpointError, FloatingPointError) as e:
            print(f"error: {error_message(e)}", file=sys.stderr, flush=True)
            return 1
    return 0


def check_finite(loss: float, epoch: int, step: int, checkpoint_dir=None) -> None:
    """Stop the run with a clear message when the loss became NaN or infinite."""
    if not math.isfinite(loss):
        where = ""
        if checkpoint_dir and (Path(checkpoint_dir) / LAST).is_file():
            where = f"; the last good checkpoint is {Path(checkpoint_dir) / LAST}"
        elif checkpoint_dir:
            where = f"; no checkpoint was written yet ({Path(checkpoint_dir)} holds no {LAST})"
        raise FloatingPointError(
            f"non-finite loss ({loss}) at epoch {epoch}, step {step}: training stopped. Lower --learning_rate "
            f"or check the data{where}"
        )
