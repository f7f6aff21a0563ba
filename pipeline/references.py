"""The reconstructor's reference frames: frame 11 with its objects moved along their velocities.

The reconstructor takes these frames as an input (model.py: forward's `ref`) and never computes them, so
that SSL_convLSTM_Reconstructor/ needs no forecasting module: the pipeline, which sits above both, makes
them for training (here) and for inference (predictors.py), with the motion flags of forecasting/motion_args.py.
"""
from torch.utils.data import Dataset

from data.format import LAST_INPUT_INDEX, NUM_FUTURE_FRAMES, NUM_INPUT_FRAMES
from forecasting.motion import Motion, extrapolate_frames, future_horizons
from forecasting.motion_args import MOTION_RULES, add_motion_args, resolve_motion

__all__ = ["MOTION_RULES", "WithExtrapolatedFrames", "add_motion_args", "resolve_motion"]


class WithExtrapolatedFrames(Dataset):
    """Videos (items {"video_id", "frames": (T >= 11, 3, H, W)}) with masks of the same videos (items
    {"video_id", "masks": (>= 11, H, W)}), row by row: each item gains "ref" (K, 3, H, W) uint8, frames
    1-11 extrapolated to the last K future frames (forecasting/motion.py: extrapolate_frames)."""

    def __init__(self, videos: Dataset, masks: Dataset, num_future: int, motion):
        self.videos, self.masks, self.motion = videos, masks, Motion.from_config(motion)
        self.horizons = future_horizons(num_future, NUM_FUTURE_FRAMES)
        self.n = min(len(videos), len(masks))
        ids = [int(v) for v in videos.index.video_ids[:self.n]]
        if ids != [int(v) for v in masks.video_ids[:self.n]]:
            raise ValueError("the masks are not of the same videos, in the same order, as the frames: "
                             "make the pseudo-labels again for this dataset (scripts/make_pseudo_labels.py)")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        item = self.videos[i]
        masks = self.masks[i]["masks"][LAST_INPUT_INDEX - 1:LAST_INPUT_INDEX + 1]  # frames 10-11
        ref = extrapolate_frames(item["frames"][:NUM_INPUT_FRAMES], masks, self.horizons, self.motion)
        return {**item, "ref": ref}
