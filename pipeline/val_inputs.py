"""The val inputs of a model trained on U-Net masks: the U-Net's masks of val frames 1-11, stored once."""
from pathlib import Path

import torch
from torch.utils.data import Dataset

from data.format import NUM_INPUT_FRAMES, TARGET_INDEX
from data.pseudo_labels import (
    StoredMaskVideos, TrueMaskVideos, check_per_video, file_sha256, label_split, open_store, per_video_name, store_dir,
    store_finished,
)
from data.readers import SplitIndex
from engine import checkpoint_file, load_model
from pipeline.models import load_for_flag
from Unets.postprocess import vote_per_video
from Unets.segment import segment
from Unets.unet import UNet

# what a pseudo-label store made with this repository's vote records (data/pseudo_labels.py: per_video_name): the
# readers of the forecasters' training stores ask for it, as prepare_val_inputs does of the val inputs
STORE_VOTE = per_video_name(vote_per_video)


def prepare_val_inputs(root, pseudo_labels, seg_checkpoint, device, print_fn=print, exclude=()) -> None:
    """PSEUDO_LABELS/val: the U-Net's masks of val frames 1-11 (the inputs a model trained on U-Net masks is
    validated with), made once (resumably) and reused by later runs. A finished store is used as it is
    (the U-Net is then needed only if given, to check it made the store). exclude: val video ids left out."""
    seg_checkpoint = checkpoint_file(seg_checkpoint)  # a run folder names its best.pt: that file is hashed
    d = store_dir(pseudo_labels, "val")
    # another kind of model is named as such, before the store is judged by it; loaded once, used below
    unet = load_for_flag(seg_checkpoint, UNet, "--saved_seg_model_dir", device) if Path(seg_checkpoint).is_file() else None
    if store_finished(pseudo_labels, "val"):
        _, _, meta = open_store(pseudo_labels, "val", root)  # damaged, or of another dataset: refused with the fix
        if Path(seg_checkpoint).is_file() and file_sha256(seg_checkpoint) != meta["segmenter_sha256"]:
            raise ValueError(f"{d} holds val inputs made by another segmenter ({meta['segmenter']}) than "
                             f"{seg_checkpoint}: delete {d} to segment them again")
        check_per_video(d, meta, STORE_VOTE)
        print_fn(f"val inputs: {d} (made by {meta['segmenter']})")
        return
    if unet is None:
        unet = load_model(seg_checkpoint, UNet, device)  # not a file: says what is missing
    label_split(lambda frames: segment(unet, frames), root, "val", pseudo_labels, segmenter=seg_checkpoint,
                desc="val inputs (U-Net on frames 1-11)", exclude=exclude, per_video=vote_per_video)


class ValInputs(Dataset):
    """The val split as inference sees it: item (U-Net masks of frames 1-11 (11, H, W), true frame-22 mask (H, W))."""

    def __init__(self, root, pseudo_labels, num_videos: int = 0, exclude=()):
        self.inputs = StoredMaskVideos(pseudo_labels, "val", root, num_videos, exclude=exclude)
        self.truth = SplitIndex(root, "val", frame_indices=[], need_mask=True, exclude=exclude)
        if self.inputs.video_ids != self.truth.video_ids[:len(self.inputs)]:
            raise ValueError(f"{pseudo_labels}/val holds other videos than {root}/val: delete it to segment them again")

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int):
        return self.inputs[i]["masks"], torch.from_numpy(self.truth.masks(i, [TARGET_INDEX])[0])


class TrueValInputs(Dataset):
    """The val split from its true masks (synthetic experiments, no U-Net): item (masks of frames 1-11
    (11, H, W), true frame-22 mask (H, W))."""

    def __init__(self, root, num_videos: int = 0, exclude=()):
        self.videos = TrueMaskVideos(root, "val", num_videos, exclude=exclude)
        self.truth = self.videos.index

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int):
        masks = self.videos[i]["masks"]
        return masks[:NUM_INPUT_FRAMES], masks[TARGET_INDEX]


def add_mask_video_args(parser) -> None:
    """The flags of a trainer on mask videos (SimVP, the learned dynamics): where its training videos
    come from (pseudo-labels of the unlabeled split, true masks of the train split) and its val inputs."""
    parser.add_argument("--root_dir", default="Dataset_Student", help="dataset root holding train/ and val/")
    parser.add_argument("--pseudo_labels", default="checkpoints/pseudo_labels",
                        help="pseudo-label folder (scripts/make_pseudo_labels.py --out): reads DIR/unlabeled, writes DIR/val")
    parser.add_argument("--saved_seg_model_dir", default="checkpoints/unet/best.pt",
                        help="U-Net checkpoint that segments the val inputs (frames 1-11), once, into PSEUDO_LABELS/val "
                             "(a finished PSEUDO_LABELS/val is reused; checked against this file when it exists)")
    parser.add_argument("--unlabeled_videos", type=int, default=-1,
                        help="pseudo-labelled videos to train on: the first N (-1: all, 0: none, the train split alone)")
    parser.add_argument("--train_videos", type=int, default=-1,
                        help="train-split videos (true masks) to train on (-1: all, 0: none)")
    parser.add_argument("--val_videos", type=int, default=0,
                        help="score the first N val videos only (0: all, the honest score)")


def check_mask_video_args(parser, args) -> None:
    if args.unlabeled_videos < -1 or args.train_videos < -1 or args.unlabeled_videos == args.train_videos == 0:
        parser.error("--unlabeled_videos and --train_videos are -1 (all) or >= 0, and not both 0")
    if args.val_videos < 0:
        parser.error("--val_videos must be >= 0")
