"""Checkpoints and resume.

Checkpoints are one dict of plain data, loadable with torch.load(..., weights_only=True):
    {"model_config": {"name", "kwargs"}, "model", "optimizer", "scheduler", "epoch", "best_score", "rng", "args"}
`epoch` counts completed epochs; last.pt is written after every epoch and best.pt at the best
validation score, each to a temporary file that is then renamed over the old one, so a crash never
leaves a broken checkpoint. Resuming restores every stateful object, so re-running the same command
with --resume continues exactly where the last complete epoch ended (on CPU, bit for bit: tested).
"""
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from engine.device import DistContext, unwrap
from engine.errors import CheckpointError, ResumeError
from engine.io import atomic_save, check_not_an_input, make_folder
from engine.lock import RunLock
from engine.registry import MODELS, build_model, model_config, model_name
from engine.run import BEST, LAST, LOG, print0, rng_state, set_rng_state, trim_log

CHECKPOINT_KEYS = ("model_config", "model", "optimizer", "scheduler", "epoch", "best_score", "rng", "args")


def checkpoint_file(path) -> Path:
    """The checkpoint a --saved_*_model_dir flag names: the file itself, or a run folder's best.pt."""
    path = Path(path)
    return path / BEST if path.is_dir() else path


def load_checkpoint(path, map_location="cpu", model_cls=None) -> dict:
    """A checkpoint dict (from a file, or a run folder's best.pt), loaded with weights_only=True, with a clear
    error when it is missing or broken (naming the script that trains the kind model_cls when it is missing)."""
    folder, path = Path(path), checkpoint_file(path)
    if folder.is_dir() and not path.is_file():
        raise CheckpointError(f"{folder} is a folder without {BEST}: pass a run's checkpoint folder or the file itself")
    if not path.is_file():
        kind = MODELS.get(model_name(model_cls)) if model_cls is not None else None
        script = kind.train_script if kind is not None else "the train script of that model"
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


def load_model(path, kind=None, device="cpu") -> nn.Module:
    """The model stored in a checkpoint (a file, or a run folder's best.pt), rebuilt from its model_config
    alone, in eval mode on `device`; with `kind` (a registered name or class), refused when it is another kind."""
    ckpt = load_checkpoint(path, model_cls=kind if kind is None or not isinstance(kind, str) else MODELS[kind].cls)
    path = checkpoint_file(path)
    check_finite_weights(ckpt["model"], path)
    model = build_model(ckpt["model_config"], kind, source=str(path))
    load_weights(model, ckpt["model"], path)
    return model.to(device).eval()


def load_for_flag(path, model_cls, flag: str, device="cpu") -> nn.Module:
    """load_model with the flag named in any error (a reconstructor passed as the U-Net, a missing file)."""
    try:
        return load_model(path, model_cls, device)
    except CheckpointError as e:
        raise CheckpointError(f"{flag}: {e}") from None


def load_weights(model: nn.Module, state_dict: dict, path) -> None:
    """model.load_state_dict(state_dict), with one line naming the file and the first tensor that does not fit
    (torch lists every mismatch, dozens of lines when a config was edited to another architecture)."""
    want = model.state_dict()
    missing = [k for k in want if k not in state_dict]
    extra = [k for k in state_dict if k not in want]
    shape = [k for k in want if k in state_dict and tuple(want[k].shape) != tuple(state_dict[k].shape)]
    what = f"{type(model).__name__}{getattr(model, 'config', '')}"
    if shape:
        k = shape[0]
        raise CheckpointError(f"{path}: weights do not fit {what}, the model its model_config builds: {k} is "
                              f"{tuple(state_dict[k].shape)} in the file, {tuple(want[k].shape)} in the model "
                              f"({len(shape)} tensors differ); the file was edited or is damaged: use another checkpoint")
    if missing or extra:
        k = (missing or extra)[0]
        raise CheckpointError(f"{path}: weights do not fit {what}, the model its model_config builds: tensor {k} is "
                              f"{'missing from the file' if missing else 'not in the model'} "
                              f"({len(missing)} missing, {len(extra)} unexpected); use another checkpoint")
    model.load_state_dict(state_dict)


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
    lock: RunLock = field(default=None, repr=False)  # rank 0's lock of checkpoint_dir, held until release()

    def release(self) -> None:
        """Let another run use checkpoint_dir (fit() calls it at its end; process exit does too)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

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
        check_not_an_input(checkpoint_dir, "--checkpoint_dir", args)  # not --root_dir, not an --init_from folder
        run = cls(checkpoint_dir=checkpoint_dir, mode=mode)
        created = not checkpoint_dir.exists()
        if ctx.is_main:  # a second run on this folder is refused here, before it writes anything
            make_folder(checkpoint_dir, "--checkpoint_dir")
            run.lock = RunLock(checkpoint_dir, "--checkpoint_dir").acquire()
        try:
            return run._start(resume, model, optimizer, scheduler, args, ctx, must_match)
        except BaseException:
            run.release()
            if created and ctx.is_main and checkpoint_dir.is_dir() and not any(checkpoint_dir.iterdir()):
                checkpoint_dir.rmdir()  # a refused run leaves no folder behind
            raise

    def _start(self, resume, model, optimizer, scheduler, args, ctx, must_match) -> "RunState":
        run, checkpoint_dir = self, self.checkpoint_dir
        held = [name for name in (LAST, BEST) if (checkpoint_dir / name).is_file()]
        if not resume:
            if held:
                raise ResumeError(
                    f"{checkpoint_dir} already holds a run ({', '.join(held)}): pass --resume to continue it, "
                    f"or choose another --checkpoint_dir"
                )
            if ctx.is_main:
                trim_log(checkpoint_dir / LOG, 0, ctx)  # lines of epochs that no checkpoint kept
            return run
        if not held:
            raise ResumeError(
                f"--resume: no {LAST} or {BEST} in {checkpoint_dir} (nothing to resume); run without --resume to start"
            )
        # Both are whole checkpoints; fit() writes best.pt before last.pt, so after a crash between the
        # two, best.pt is the newer and the run continues from it. Each goes through the checks of every load
        # (readable, finite weights, every key); a damaged one is passed over, with a warning, for the other.
        ckpts, bad = {}, {}
        for n in held:
            try:
                ckpt = load_checkpoint(checkpoint_dir / n)
                check_finite_weights(ckpt["model"], checkpoint_dir / n)
                lacks = [k for k in CHECKPOINT_KEYS if k not in ckpt]
                if lacks:
                    raise CheckpointError(f"{checkpoint_dir / n} lacks {lacks}: not a resumable checkpoint")
                ckpts[n] = ckpt
            except CheckpointError as e:
                bad[n] = e
        if not ckpts:
            raise CheckpointError(f"--resume: no usable checkpoint in {checkpoint_dir} ({'; '.join(map(str, bad.values()))}); "
                                  f"the run cannot continue: start it again in a new --checkpoint_dir")
        name = max(ckpts, key=lambda n: (ckpts[n].get("epoch", -1), n == LAST))
        last, ckpt = checkpoint_dir / name, ckpts[name]
        for n, e in bad.items():
            warnings.warn(f"--resume: {checkpoint_dir / n} is unusable ({e}); resuming from {last} "
                          f"(epoch {ckpt['epoch']})", stacklevel=3)
        want = model_config(model)
        if ckpt["model_config"] != want:
            raise ResumeError(
                f"--resume: {last} holds {ckpt['model_config']}, but the flags build {want}; resume with the "
                f"run's own model flags, or start a new --checkpoint_dir"
            )
        given = dict(vars(args)) if not isinstance(args, dict) else dict(args)
        before = must_match if isinstance(must_match, dict) else {}

        def differs(k) -> bool:
            if k in ckpt["args"]:
                return ckpt["args"][k] != given.get(k)
            if before.get(k) is not None:  # a flag newer than the run, whose value then is known
                return given.get(k) != before[k]
            return bool(given.get(k))  # a flag newer than the run: only its empty default continues it

        differ = {k: (ckpt["args"].get(k, before.get(k)), given.get(k)) for k in must_match if differs(k)}
        if "global_batch_size" in differ:  # not a flag: name the ones that make it
            a, b = differ.pop("global_batch_size")
            differ["batch_size x processes (the global batch)"] = (a, b)
        old_root, new_root = ckpt["args"].get("root_dir"), given.get("root_dir")
        if old_root and new_root and Path(old_root).resolve() != Path(new_root).resolve():
            differ["root_dir"] = (old_root, new_root)  # compared as folders: the same one from another cwd is fine
        if differ:
            raise ResumeError(
                "--resume: " + ", ".join(f"--{k} was {a} in the run, now {b}" for k, (a, b) in differ.items())
                + f"; resume {checkpoint_dir} with the same values, or start a new --checkpoint_dir"
            )
        load_weights(unwrap(model), ckpt["model"], last)
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        run.epoch, run.best_score = ckpt["epoch"], ckpt["best_score"]
        if ctx.is_main:
            trim_log(checkpoint_dir / LOG, run.epoch, ctx)  # a crash after the log line, before the checkpoint
            if name == BEST:  # a crash after best.pt, before last.pt, or a damaged last.pt: last.pt is repaired now
                atomic_save(ckpt, checkpoint_dir / LAST)
        print0(f"resumed {last}: {run.epoch} epochs done, best score {run.best_score}", ctx=ctx)
        return run


