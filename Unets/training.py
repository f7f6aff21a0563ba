"""The training machinery every train script of the repository uses, written once.

A train script reads top to bottom with these pieces:

    add_run_args(parser, ...)                        # --checkpoint_dir --resume --seed --num_workers ...
    ctx = setup_distributed(args.device)            # torchrun's environment -> DDP (NCCL on GPU, gloo on CPU)
    try:
        run_args = start_run(args, ctx)              # git commit + arguments (rank 0 prints), seeds
        model = MyModel(**kwargs).to(ctx.device)     # any nn.Module with NAME and config (see model_config)
        setup = prepare_optimization(args, run_args, ctx, model, train_set, val_set,
                                     must_match=("epochs", "global_batch_size"))  # loaders, AdamW,
                                                     # schedule, RunState: fresh or every stateful object restored
        fit(setup, wrap_ddp(model, ctx), compute_loss, validate, ctx, ...)
    finally:
        teardown_distributed(ctx)

Checkpoints are one dict of plain data, loadable with torch.load(..., weights_only=True):
    {"model_config": {"name", "kwargs"}, "model", "optimizer", "scheduler", "epoch", "best_score", "rng", "args"}
`epoch` counts completed epochs; last.pt is written after every epoch and best.pt at the best
validation score, each to a temporary file that is then renamed over the old one, so a crash never
leaves a broken checkpoint. Resuming restores every stateful object, so re-running the same command
with --resume continues exactly where the last complete epoch ended (on CPU, bit for bit: tested).

Randomness that shapes training never depends on the number of processes: the sampler shuffles
with (seed, epoch) and per-sample augmentation draws from (seed, epoch, sample index); this is what
makes one process with batch 2N and two processes with batch N take the same steps.
"""
import argparse
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_KEYS = ("model_config", "model", "optimizer", "scheduler", "epoch", "best_score", "rng", "args")
LAST, BEST, LOG = "last.pt", "best.pt", "log.jsonl"
_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp's files are 0600, the files we rename into place get the usual mode


# ---------------------------------------------------------------------------------------------
# Devices and processes


def choose_device(name: str = None) -> torch.device:
    """The device to run on: `name` when given ("cpu", "cuda", "cuda:1", ...), else CUDA if present, else CPU."""
    if name:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ValueError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class DistContext:
    """Where this process stands: its device, rank and the number of processes (1 without torchrun)."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str = None) -> DistContext:
    """Join the process group when launched by torchrun (RANK/WORLD_SIZE set), else run alone.

    Under torchrun each process takes GPU LOCAL_RANK with NCCL, or the CPU with gloo. Multi-node
    runs need nothing more: torchrun's --nnodes/--node_rank/--rdzv_endpoint set the same variables.
    """
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return DistContext(device=choose_device(device_name))
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)  # one GPU per process, whatever --device said
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(device=device, rank=rank, local_rank=local_rank, world_size=world_size)


def teardown_distributed(ctx: DistContext) -> None:
    """Leave the process group together: a barrier first, so that no rank destroys its group while a peer
    still has work in flight. Without it a gloo rank aborted at exit ("terminate called without an active
    exception") in 2 of 16 runs of the reconstructor's 2-process test; none in 16 runs since."""
    if ctx.distributed and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def wrap_ddp(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around the model under torchrun, the model itself otherwise."""
    if not ctx.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and/or torch.compile wrappers: its state_dict has no 'module.'/'_orig_mod.' keys."""
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def autocast(device: torch.device):
    """Mixed precision on CUDA (bf16 where supported, else fp16), nothing on CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def make_grad_scaler(device: torch.device):
    """A GradScaler for fp16 autocast; disabled (a pass-through) on CPU and with bf16."""
    enabled = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=enabled)


def memory_format(device: torch.device):
    """channels_last on CUDA (faster convolutions with tensor cores), the default layout elsewhere."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def all_reduce_sum(values, ctx: DistContext) -> list:
    """Sum a list of numbers over all processes (identity when running alone)."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.tolist()


# ---------------------------------------------------------------------------------------------
# Printing, logging, seeding


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


# ---------------------------------------------------------------------------------------------
# Models and checkpoints


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, incomplete or holds another kind of model."""


class ResumeError(ValueError):
    """--resume cannot continue the run in the checkpoint folder as asked (nothing there, or other flags)."""


def model_name(model_or_cls):
    """The kind of a model (class or instance): its NAME class attribute, or `name` (the reconstructor's)."""
    for attr in ("NAME", "name"):
        value = getattr(model_or_cls, attr, None)
        if isinstance(value, str):
            return value
    return None


def model_config(model: nn.Module) -> dict:
    """{"name": the model's kind, "kwargs": its constructor's arguments}: enough to rebuild it.

    A model class takes part by having a NAME (or name) class attribute and a `config` dict of the
    keyword arguments it was built with (see Unets/unet.py); a "name" entry in that dict is the kind,
    not an argument, and is left out of kwargs (SSL_convLSTM_Reconstructor/model.py keeps it there).
    """
    model = unwrap(model)
    name = model_name(model)
    if name is None or not isinstance(getattr(model, "config", None), dict):
        raise TypeError(f"{type(model).__name__} needs a NAME class attribute and a config dict to be checkpointed")
    return {"name": name, "kwargs": {k: v for k, v in model.config.items() if k != "name"}}


def build_model(config: dict, model_cls, source="checkpoint") -> nn.Module:
    """Rebuild a model from its model_config, after checking it is a `model_cls` (by NAME)."""
    if not isinstance(config, dict) or "name" not in config or "kwargs" not in config:
        raise CheckpointError(f"{source}: model_config {config!r} lacks 'name' and 'kwargs'")
    if config["name"] != model_name(model_cls):
        raise CheckpointError(
            f"{source} holds a {config['name']!r} model, expected a {model_name(model_cls)!r} model "
            f"({model_cls.__name__}): check which checkpoint you passed"
        )
    try:
        return model_cls(**config["kwargs"])
    except TypeError as e:
        raise CheckpointError(f"{source}: cannot build {model_cls.__name__} from {config['kwargs']}: {e}") from None


def atomic_write(path, write) -> None:
    """write(f) into a temporary file in the same folder, then rename it over `path`: readers and crashes
    see the old file or the new one, never half of one. The one atomic writer of the repository."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_save(obj, path) -> None:
    """torch.save, atomically (atomic_write)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def check_writable(path, flag: str = "--output") -> Path:
    """Fail now, before anything expensive, when the file `path` cannot be written (folder missing, a folder
    in the way, no permission): by creating and removing a temporary file next to it."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{flag} {path} is a folder; give a file name inside it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"cannot write {flag} {path}: folder {parent} does not exist (create it first)")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputPathError(f"cannot write {flag} {path}: {e.strerror or e}") from None
    return path


class OutputPathError(OSError):
    """An output file cannot be written where its flag says."""


def make_folder(path, flag: str) -> Path:
    """mkdir -p, with the flag named when a file stands where the folder should be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} {path} is a file, not a folder: give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file further up the path, no permission
        raise OutputPathError(f"cannot create {flag} {path}: {e.strerror or e}") from None
    return path


# The script that trains each kind of model: named in the error when its checkpoint is missing.
TRAIN_SCRIPTS = {"unet": "Unets/train.py", "reconstructor": "SSL_convLSTM_Reconstructor/train_reconstructor.py",
                 "forecaster": "SSL_convLSTM_Reconstructor/train_forecaster.py"}


def load_checkpoint(path, map_location="cpu", model_cls=None) -> dict:
    """A checkpoint dict, loaded with weights_only=True, with a clear error when it is missing or broken
    (naming the script that trains a model_cls when the file is missing)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder: pass the checkpoint file itself, e.g. {path / BEST}")
    if not path.is_file():
        script = TRAIN_SCRIPTS.get(model_name(model_cls), "the train script") if model_cls is not None else \
            "the train script of that model"
        raise CheckpointError(f"checkpoint not found: {path} (train one with python {script} --checkpoint_dir DIR)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling raises many types; all mean the same thing here
        # torch's own text advises weights_only=False, i.e. running whatever the file holds: not shown
        raise CheckpointError(f"unreadable checkpoint {path} ({type(e).__name__}): not a checkpoint written by this "
                              f"repository's train scripts, or a truncated one; pass the run's best.pt or last.pt") from None
    if not isinstance(ckpt, dict) or "model_config" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a checkpoint of this repository (no model_config/model)")
    return ckpt


def load_model(path, model_cls, device="cpu") -> nn.Module:
    """The model stored in a checkpoint file, rebuilt from its model_config alone, in eval mode on `device`."""
    ckpt = load_checkpoint(path, model_cls=model_cls)
    check_finite_weights(ckpt["model"], path)
    model = build_model(ckpt["model_config"], model_cls, source=str(path))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {model_cls.__name__}{ckpt['model_config']['kwargs']}: {e}") from None
    return model.to(device).eval()


def check_finite_weights(state_dict: dict, path) -> None:
    """Refuse weights holding NaN or infinity: such a model predicts one class everywhere, silently."""
    bad = [k for k, v in state_dict.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path} holds non-finite weights ({len(bad)} tensors, e.g. {bad[0]}): the run diverged; "
                              f"use an earlier checkpoint or train again with a lower --learning_rate")


def make_checkpoint(model, optimizer, scheduler, epoch: int, best_score, args) -> dict:
    """The checkpoint dict: plain data only (weights of the unwrapped model; args as a dict)."""
    return {
        "model_config": model_config(model),
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
        "best_score": best_score,
        "rng": rng_state(),
        "args": dict(vars(args)) if not isinstance(args, dict) else dict(args),
    }


@dataclass
class RunState:
    """Where a run stands: its checkpoint folder, completed epochs and best validation score."""

    checkpoint_dir: Path
    epoch: int = 0  # epochs completed
    best_score: float = None
    mode: str = "max"  # "max": higher validation score is better (Jaccard); "min": lower (a loss)

    def is_better(self, score: float) -> bool:
        if self.best_score is None:
            return True
        return score > self.best_score if self.mode == "max" else score < self.best_score

    @classmethod
    def start(cls, checkpoint_dir, resume: bool, model, optimizer, scheduler, args, ctx: DistContext,
              must_match=(), mode: str = "max") -> "RunState":
        """A fresh run, or (resume=True) the run in checkpoint_dir with every stateful object restored, from
        the newer of last.pt and best.pt (they differ only after a crash between their writes).

        Refuses, with the fix in the message: resuming without a checkpoint; resuming with a model built
        differently from the checkpoint's; resuming with different values of the `must_match` arguments
        (those that shape the schedule) or another --root_dir; and a fresh run in a folder that already holds a
        last.pt or a best.pt, which it would overwrite.
        """
        checkpoint_dir = Path(checkpoint_dir)
        if checkpoint_dir.exists() and not checkpoint_dir.is_dir():
            raise ResumeError(f"--checkpoint_dir {checkpoint_dir} is a file, not a folder: give a folder path")
        run = cls(checkpoint_dir=checkpoint_dir, mode=mode)
        held = [name for name in (LAST, BEST) if (checkpoint_dir / name).is_file()]
        if not resume:
            if held:
                raise ResumeError(
                    f"{checkpoint_dir} already holds a run ({', '.join(held)}): pass --resume to continue it, "
                    f"or choose another --checkpoint_dir"
                )
            if ctx.is_main:
                make_folder(checkpoint_dir, "--checkpoint_dir")
                trim_log(checkpoint_dir / LOG, 0, ctx)  # lines of epochs that no checkpoint kept
            return run
        if not held:
            raise ResumeError(
                f"--resume: no {LAST} or {BEST} in {checkpoint_dir} (nothing to resume); run without --resume to start"
            )
        # Both are whole checkpoints; fit() writes best.pt before last.pt, so after a crash between the
        # two, best.pt is the newer and the run continues from it.
        ckpts = {name: load_checkpoint(checkpoint_dir / name) for name in held}
        name = max(held, key=lambda n: (ckpts[n].get("epoch", -1), n == LAST))
        last, ckpt = checkpoint_dir / name, ckpts[name]
        missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
        if missing:
            raise CheckpointError(f"{last} lacks {missing}: not a resumable checkpoint")
        want = model_config(model)
        if ckpt["model_config"] != want:
            raise ResumeError(
                f"--resume: {last} holds {ckpt['model_config']}, but the flags build {want}; resume with the "
                f"run's own model flags, or start a new --checkpoint_dir"
            )
        given = dict(vars(args)) if not isinstance(args, dict) else dict(args)
        def differs(k) -> bool:
            if k in ckpt["args"]:
                return ckpt["args"][k] != given.get(k)
            return bool(given.get(k))  # a flag newer than the run: only its empty default continues it

        differ = {k: (ckpt["args"].get(k), given.get(k)) for k in must_match if differs(k)}
        old_root, new_root = ckpt["args"].get("root_dir"), given.get("root_dir")
        if old_root and new_root and Path(old_root).resolve() != Path(new_root).resolve():
            differ["root_dir"] = (old_root, new_root)  # compared as folders: the same one from another cwd is fine
        if differ:
            raise ResumeError(
                "--resume: " + ", ".join(f"--{k} was {a} in the run, now {b}" for k, (a, b) in differ.items())
                + f"; resume {checkpoint_dir} with the same values, or start a new --checkpoint_dir"
            )
        unwrap(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        run.epoch, run.best_score = ckpt["epoch"], ckpt["best_score"]
        if ctx.is_main:
            trim_log(checkpoint_dir / LOG, run.epoch, ctx)  # a crash after the log line, before the checkpoint
            if name == BEST:  # a crash after best.pt, before last.pt: last.pt is repaired now, not at the next epoch
                atomic_save(ckpt, checkpoint_dir / LAST)
        print0(f"resumed {last}: {run.epoch} epochs done, best score {run.best_score}", ctx=ctx)
        return run


# ---------------------------------------------------------------------------------------------
# Data


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one sample in one epoch: the same whatever the workers, processes or resumes."""
    return np.random.default_rng([seed, epoch, index])


class RandomFlips(Dataset):
    """Flips each sample left-right (and up-down if asked) with probability 1/2, the same flip for every
    tensor of the item (frames and their masks alike: the last two dims are H, W). Geometry only, never
    color: color is the class. Draws from sample_rng(seed, epoch, index); fit() calls set_epoch.
    """

    def __init__(self, dataset: Dataset, seed: int, horizontal: bool = True, vertical: bool = False):
        self.dataset, self.seed, self.horizontal, self.vertical, self.epoch = dataset, seed, horizontal, vertical, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        u = sample_rng(self.seed, self.epoch, index).random(2)
        dims = ([-1] if self.horizontal and u[0] < 0.5 else []) + ([-2] if self.vertical and u[1] < 0.5 else [])
        if not dims:
            return item
        flip = lambda x: x.flip(dims) if isinstance(x, torch.Tensor) and x.dim() >= 2 else x  # noqa: E731
        if isinstance(item, dict):
            return {k: flip(v) for k, v in item.items()}
        return type(item)(flip(x) for x in item)


class ObjectCrops(Dataset):
    """A size x size crop of each (frame (C, H, W), mask (H, W)) pair: with probability `object_share`
    centred on a random object pixel of the mask (then shifted by up to size/4 either way), else
    anywhere; clipped to stay inside the frame. Draws from sample_rng(seed, epoch, index) like
    RandomFlips, so a resumed run crops the same. Sizes at least the frame's return it whole.
    Item: (frame crop, mask crop, top), top the crop's first row in the frame (the U-Net's row
    channel, Unets/unet.py, needs it: the row is the depth cue).

    Why: objects cover 6% of a frame, so most of a full frame's compute goes to floor pixels the
    network already gets right after a few hundred steps. A 64x64 crop costs a ninth of a 160x240
    frame and holds one or two whole objects (median 470 pixels, about 25 across).
    """

    def __init__(self, dataset: Dataset, size: int, seed: int, object_share: float = 0.9):
        if size < 1 or not 0 <= object_share <= 1:
            raise ValueError(f"ObjectCrops needs size >= 1 and object_share in [0, 1]; got {size}, {object_share}")
        self.dataset, self.size, self.seed, self.object_share, self.epoch = dataset, size, seed, object_share, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        frame, mask = self.dataset[index]
        (h, w), size = mask.shape[-2:], self.size
        if size >= h and size >= w:
            return frame, mask, 0
        ch, cw = min(size, h), min(size, w)
        rng = sample_rng(self.seed + 1, self.epoch, index)  # + 1: not the stream RandomFlips draws from
        objects = torch.nonzero(mask > 0)
        if len(objects) and rng.random() < self.object_share:
            cy, cx = objects[rng.integers(len(objects))].tolist()
            cy, cx = cy + rng.integers(-(ch // 4), ch // 4 + 1), cx + rng.integers(-(cw // 4), cw // 4 + 1)
        else:
            cy, cx = rng.integers(h), rng.integers(w)
        y0, x0 = int(np.clip(cy - ch // 2, 0, h - ch)), int(np.clip(cx - cw // 2, 0, w - cw))
        return frame[..., y0:y0 + ch, x0:x0 + cw], mask[..., y0:y0 + ch, x0:x0 + cw], y0


def make_loader(dataset: Dataset, batch_size: int, ctx: DistContext, *, shuffle: bool, seed: int = 0,
                drop_last: bool = False, num_workers: int = 0) -> DataLoader:
    """A DataLoader over this rank's share of `dataset`, `batch_size` samples per process.

    Training (shuffle=True): a DistributedSampler, also when alone (1 replica), so the order is the
    same permutation of (seed, epoch) whatever the number of processes: rank r takes every r-th
    sample, and a step of N processes sees exactly the samples one process with batch N x batch_size
    sees. Evaluation (shuffle=False): a strided share with no padding, so no sample is counted twice.
    drop_last drops a final partial batch (training: every step has the full batch).
    """
    if shuffle:
        # drop_last=False: the sampler pads a share by repeating samples only when len % world_size != 0
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    else:
        sampler = list(range(ctx.rank, len(dataset), ctx.world_size))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      num_workers=num_workers, pin_memory=ctx.device.type == "cuda",
                      persistent_workers=False)


# ---------------------------------------------------------------------------------------------
# The epoch loop


def warmup_cosine(optimizer, total_steps: int, warmup_fraction: float = 0.05, final_ratio: float = 0.01):
    """Learning rate stepped per batch: linear warm-up over warmup_fraction of the steps (at least one),
    then a cosine decay to final_ratio x the peak. Works for any total_steps >= 1 (OneCycleLR divides by
    zero on very short runs). Its state_dict is plain data; rebuilding it with the same arguments and
    loading the state resumes it."""
    warmup = max(1, round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_epoch(model, loader, optimizer, scheduler, compute_loss, ctx: DistContext, *, epoch: int,
                grad_clip: float = 0.0, scaler=None, checkpoint_dir=None, desc: str = "train",
                refresh_every: int = 10) -> dict:
    """One pass over `loader`: loss, backward, clipping, optimizer and per-batch scheduler steps.

    compute_loss(model, batch) -> (mean loss of the batch as a 0-d tensor, number of samples).
    Returns {"loss": sample-weighted mean loss over all processes, "samples": samples seen by all
    processes, "seconds"}. Checks the loss every `refresh_every` steps (one device sync each) and at
    the end; a non-finite loss raises FloatingPointError.
    """
    model.train()
    scaler = scaler if scaler is not None else make_grad_scaler(ctx.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)  # summed on device: no sync per step
    samples, start = 0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch} {desc}", disable=not ctx.is_main, dynamic_ncols=True, leave=True)
    for step, batch in enumerate(bar, 1):
        with autocast(ctx.device):
            loss, n = compute_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.detach().double() * n
        samples += n
        if step % refresh_every == 0 or step == len(loader):
            running = loss_sum.item() / samples
            check_finite(running, epoch, step, checkpoint_dir)
            bar.set_postfix(loss=f"{running:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    bar.close()
    total_loss, total_samples = all_reduce_sum([loss_sum.item(), samples], ctx)
    if total_samples == 0:
        raise ValueError(f"epoch {epoch}: the training loader gave no batch (dataset smaller than one batch?)")
    check_finite(total_loss, epoch, len(loader), checkpoint_dir)
    return {"loss": total_loss / total_samples, "samples": int(total_samples),
            "seconds": time.perf_counter() - start}


@dataclass
class Optimization:
    """What every train script sets up alike, from its datasets and model (see prepare_optimization)."""
    run: RunState
    train_loader: DataLoader
    val_loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def prepare_optimization(args, run_args: dict, ctx: DistContext, model: nn.Module, train_set: Dataset,
                         val_set: Dataset, must_match, unit: str = "training samples") -> Optimization:
    """This rank's loaders (the train one shuffled, seeded, dropping its last partial batch), AdamW at
    --learning_rate and --weight_decay, warm-up + cosine over --epochs x the loader's batches, and the
    RunState: a fresh run, or the one in --checkpoint_dir when --resume (which restores the optimizer,
    the schedule and the RNGs, after checking the arguments in must_match)."""
    if len(train_set) < run_args["global_batch_size"]:
        raise ValueError(f"{args.root_dir}: {len(train_set)} {unit}, fewer than one global batch "
                         f"({run_args['global_batch_size']}): lower --batch_size")
    train_loader = make_loader(train_set, args.batch_size, ctx, shuffle=True, seed=args.seed, drop_last=True,
                               num_workers=args.num_workers)
    val_loader = make_loader(val_set, args.batch_size, ctx, shuffle=False, num_workers=args.num_workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = warmup_cosine(optimizer, total_steps=args.epochs * len(train_loader))
    run = RunState.start(args.checkpoint_dir, args.resume, model, optimizer, scheduler, run_args, ctx,
                         must_match=must_match)
    return Optimization(run, train_loader, val_loader, optimizer, scheduler)


def fit(setup: Optimization, model, compute_loss, validate, ctx: DistContext, *, epochs: int, args,
        grad_clip: float = 0.0, score_name: str = "val_score", val_every: int = 1) -> RunState:
    """Epochs run.epoch+1 .. epochs: train, validate (every val_every epochs and after the last), write
    last.pt (and best.pt when the validated score improved), log one JSON line.

    validate(model) -> score (the same on every rank: reduce inside), or a dict of figures holding
    score_name (the one that picks best.pt), every one of which goes into the log line. `model` may be
    DDP-wrapped; checkpoints hold the unwrapped model. Rank 0 alone writes; the others wait at a
    barrier so no rank runs ahead of a checkpoint.
    """
    run, train_loader, optimizer, scheduler = setup.run, setup.train_loader, setup.optimizer, setup.scheduler
    logger = JsonlLogger(run.checkpoint_dir / LOG, ctx)
    scaler = make_grad_scaler(ctx.device)
    if run.epoch >= epochs:
        print0(f"nothing to do: {run.checkpoint_dir} has completed all {epochs} epochs", ctx=ctx)
    for epoch in range(run.epoch + 1, epochs + 1):
        for obj in (train_loader.sampler, train_loader.dataset):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        stats = train_epoch(model, train_loader, optimizer, scheduler, compute_loss, ctx, epoch=epoch,
                            grad_clip=grad_clip, scaler=scaler, checkpoint_dir=run.checkpoint_dir)
        start = time.perf_counter()
        validated = epoch % val_every == 0 or epoch == epochs
        figures = validate(unwrap(model)) if validated else {}
        figures = dict(figures) if isinstance(figures, dict) else {score_name: figures}
        if validated and score_name not in figures:
            raise KeyError(f"validate() returned {sorted(figures)}, without {score_name!r}")
        score = figures.get(score_name)
        val_seconds = time.perf_counter() - start
        improved = validated and run.is_better(score)
        run.epoch = epoch
        if improved:
            run.best_score = score
        record = {"epoch": epoch, "train_loss": round(stats["loss"], 6),
                  **{k: round(float(v), 6) for k, v in figures.items()}, "best": None if run.best_score is None else round(run.best_score, 6),
                  "lr": lr, "train_seconds": round(stats["seconds"], 2), "val_seconds": round(val_seconds, 2),
                  "samples_per_s": round(stats["samples"] / max(stats["seconds"], 1e-9), 2)}
        # Log line, best.pt, last.pt, in this order: a crash between any two is repaired by --resume, which
        # continues from the newer of last.pt and best.pt and drops log lines beyond it (RunState.start).
        logger.log(record)
        if ctx.is_main:
            ckpt = make_checkpoint(model, optimizer, scheduler, epoch, run.best_score, args)
            if improved:
                atomic_save(ckpt, run.checkpoint_dir / BEST)
            atomic_save(ckpt, run.checkpoint_dir / LAST)
        scored = (f"{score_name} {score:.4f} (best {run.best_score:.4f}{', saved best.pt' if improved else ''})"
                  if validated else f"not validated (every {val_every} epochs)")
        print0(f"epoch {epoch}/{epochs}: loss {stats['loss']:.4f}, {scored}, {record['samples_per_s']} samples/s",
               ctx=ctx)
        if ctx.distributed:
            dist.barrier()
    return run
