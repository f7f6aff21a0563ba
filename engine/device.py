"""Devices and processes: the device to run on, torchrun's process group (DDP), mixed precision."""
import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def choose_device(name: str = None) -> torch.device:
    """The device to run on: `name` when given ("cpu", "cuda", "cuda:1", ...), else CUDA if present, else CPU."""
    if name:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ValueError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.type == "cpu" and device.index not in (None, 0):
            raise ValueError(f"--device {name}: there is one CPU device; use --device cpu")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} GPUs (cuda:0 .. "
                             f"cuda:{torch.cuda.device_count() - 1})")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"--device {name}: not a device this repository runs on; use cpu, cuda or cuda:N")
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
    still has work in flight. Without it a gloo rank could abort at exit ("terminate called without an active
    exception") in the 2-process tests."""
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
