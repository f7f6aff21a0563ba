"""Loaders and per-sample randomness that do not depend on the number of processes or workers.

The sampler shuffles with (seed, epoch) and per-sample augmentation draws from (seed, epoch, sample index);
this is what makes one process with batch 2N and two processes with batch N take the same steps.
"""
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from engine.device import DistContext


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one sample in one epoch: the same whatever the workers, processes or resumes."""
    return np.random.default_rng([seed, epoch, index])


class RandomFlips(Dataset):
    """Flips each sample left-right (and up-down if asked) with probability 1/2, the same flip for every
    tensor of the item (frames and their masks alike: the last two dims are H, W), or by `flip` for items
    that are not images. Geometry only, never color: color is the class. Draws from sample_rng(seed,
    epoch, index); fit() calls set_epoch.
    """

    def __init__(self, dataset: Dataset, seed: int, horizontal: bool = True, vertical: bool = False, flip=None):
        self.dataset, self.seed, self.horizontal, self.vertical, self.epoch = dataset, seed, horizontal, vertical, 0
        self.flip = flip  # flip(item) -> its left-right mirror, for items that are not images (horizontal only)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        u = sample_rng(self.seed, self.epoch, index).random(2)
        if self.flip is not None:
            return self.flip(item) if u[0] < 0.5 else item
        dims = ([-1] if self.horizontal and u[0] < 0.5 else []) + ([-2] if self.vertical and u[1] < 0.5 else [])
        if not dims:
            return item
        flip = lambda x: x.flip(dims) if isinstance(x, torch.Tensor) and x.dim() >= 2 else x  # noqa: E731
        if isinstance(item, dict):
            return {k: flip(v) for k, v in item.items()}
        return type(item)(flip(x) for x in item)



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

