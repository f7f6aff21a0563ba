"""Object-centred training crops for the U-Net (Unets/train.py); segmentation re-segments each object in
such a crop (Unets/segment.py: refine_with_crops)."""
import numpy as np
import torch
from torch.utils.data import Dataset

from engine.data import sample_rng


class ObjectCrops(Dataset):
    """A size x size crop of each (frame (C, H, W), mask (H, W)) pair: with probability `object_share`
    centred on a random object pixel of the mask (then shifted by up to size/4 either way), else
    anywhere; clipped to stay inside the frame. Draws from sample_rng(seed, epoch, index) like
    RandomFlips, so a resumed run crops the same. Sizes at least the frame's return it whole.
    Item: (frame crop, mask crop, top), top the crop's first row in the frame (the U-Net's row
    channel, Unets/unet.py, needs it: the row is the depth cue); keep_whole adds the whole frame and mask
    (the object head, Unets/objects.py, learns from every object of the frame).

    Why: objects cover 6% of a frame, so most of a full frame's compute goes to floor pixels the
    network already gets right after a few hundred steps. A 64x64 crop costs a ninth of a 160x240
    frame and holds one or two whole objects (median 470 pixels, about 25 across).
    """

    def __init__(self, dataset: Dataset, size: int, seed: int, object_share: float = 0.9, keep_whole: bool = False):
        if size < 1 or not 0 <= object_share <= 1:
            raise ValueError(f"ObjectCrops needs size >= 1 and object_share in [0, 1]; got {size}, {object_share}")
        self.dataset, self.size, self.seed, self.object_share, self.epoch = dataset, size, seed, object_share, 0
        self.keep_whole = keep_whole

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        frame, mask = self.dataset[index]
        (h, w), size = mask.shape[-2:], self.size
        whole = (frame, mask) if self.keep_whole else ()
        if size >= h and size >= w:
            return frame, mask, 0, *whole
        ch, cw = min(size, h), min(size, w)
        rng = sample_rng(self.seed + 1, self.epoch, index)  # + 1: not the stream RandomFlips draws from
        objects = torch.nonzero(mask > 0)
        if len(objects) and rng.random() < self.object_share:
            cy, cx = objects[rng.integers(len(objects))].tolist()
            cy, cx = cy + rng.integers(-(ch // 4), ch // 4 + 1), cx + rng.integers(-(cw // 4), cw // 4 + 1)
        else:
            cy, cx = rng.integers(h), rng.integers(w)
        y0, x0 = int(np.clip(cy - ch // 2, 0, h - ch)), int(np.clip(cx - cw // 2, 0, w - cw))
        return frame[..., y0:y0 + ch, x0:x0 + cw], mask[..., y0:y0 + ch, x0:x0 + cw], y0, *whole

