"""The fit loop every trainer shares: the schedule, one epoch, the optimisation set-up and the epoch loop.

A train script reads top to bottom with these pieces:

    add_run_args(parser, ...)                        # --checkpoint_dir --resume --seed --num_workers ...
    ctx = setup_distributed(args.device)            # torchrun's environment -> DDP (NCCL on GPU, gloo on CPU)
    try:
        run_args = start_run(args, ctx)              # git commit + arguments (rank 0 prints), seeds
        model = MyModel(**kwargs).to(ctx.device)     # a registered model (engine/registry.py)
        setup = prepare_optimization(args, run_args, ctx, model, train_set, val_set,
                                     must_match=resume_guard(run_args))  # loaders, AdamW,
                                                     # schedule, RunState: fresh or every stateful object restored
        fit(setup, wrap_ddp(model, ctx), compute_loss, validate, ctx, ...)
    finally:
        teardown_distributed(ctx)
"""
import math
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from engine.checkpoint import RunState, make_checkpoint
from engine.data import make_loader
from engine.device import DistContext, all_reduce_sum, autocast, make_grad_scaler, unwrap
from engine.io import atomic_save
from engine.run import BEST, LAST, LOG, JsonlLogger, check_finite, print0


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


def add_optimizer_args(parser, *, epochs: int, batch_size: int, learning_rate: float, unit: str,
                       weight_decay: float = 1e-4, grad_clip: float = 1.0) -> None:
    """The flags prepare_optimization and fit read, declared here once; each trainer gives its defaults and
    what one sample is ("frames", "videos")."""
    parser.add_argument("--epochs", type=int, default=epochs, help=f"passes over the training {unit}")
    parser.add_argument("--batch_size", type=int, default=batch_size,
                        help=f"{unit} per step and per process (global = nproc x this)")
    parser.add_argument("--learning_rate", type=float, default=learning_rate,
                        help="peak learning rate (after warm-up; cosine decay to 1%% of it)")
    parser.add_argument("--weight_decay", type=float, default=weight_decay, help="AdamW weight decay")
    parser.add_argument("--grad_clip", type=float, default=grad_clip,
                        help="clip the gradient norm to this (0: no clipping)")


# Run arguments that never change the steps a run takes, so a resumed run may differ in them: where it
# lives and runs, how fast it loads, how often and on how many val videos it validates; the per-process batch (the global one is
# checked: torchrun with another process count continues exactly); root_dir, compared as a folder.
FREE_ON_RESUME = ("checkpoint_dir", "resume", "num_workers", "device", "val_every", "val_videos", "batch_size",
                  "world_size", "root_dir")


def resume_guard(run_args: dict, before: dict = None) -> dict:
    """The run arguments a resumed run must keep: all of them but FREE_ON_RESUME, as {name: the value that
    continues a run older than the flag}. Derived, not listed: a flag added to a trainer is guarded from the
    start (the model's own flags are checked again through its model_config). A run older than a flag continues
    with the flag empty, or with the value `before` gives it (what the trainer did before the flag existed)."""
    before = before or {}
    return {k: before.get(k) for k in run_args if k not in FREE_ON_RESUME}


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
    try:
        return _fit(setup, model, compute_loss, validate, ctx, epochs=epochs, args=args, grad_clip=grad_clip,
                    score_name=score_name, val_every=val_every)
    finally:
        setup.run.release()  # the run folder's lock (RunState.start): another run may use it now


def _fit(setup: Optimization, model, compute_loss, validate, ctx: DistContext, *, epochs: int, args,
         grad_clip: float, score_name: str, val_every: int) -> RunState:
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
