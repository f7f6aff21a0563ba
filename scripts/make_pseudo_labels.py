"""Segment every frame of a split's videos with a trained U-Net and store the masks (pseudo-labels).

    python scripts/make_pseudo_labels.py --root_dir Dataset_Student --saved_seg_model_dir checkpoints/unet/best.pt \
        --split unlabeled --out checkpoints/pseudo_labels

Writes OUT/<split>/masks.npy, uint8 (videos, frames, 160, 240), memory-mapped, with ids.npy,
done.npy and meta.json (see data/pseudo_labels.py): all 22 frames of an unlabeled video (the mask-space
models' training targets), frames 1-11 of a val or hidden video (inputs), each video's flickering classes voted
away (Unets/postprocess.py: vote_per_video). The train split
needs none: the trainers read its true masks. Resumable: re-running the same command continues
with the videos not done; a store made by another U-Net is refused. Keep OUT outside the dataset.
"""
import argparse
import sys
from pathlib import Path

from data.pseudo_labels import STORE_FRAMES, label_split
from data.readers import add_exclude_args, read_exclusions
from Unets.postprocess import vote_per_video
from Unets.segment import segment
from engine import check_output_folder, checkpoint_file, lock_folder, choose_device, load_model, run_cli
from Unets.unet import UNet


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", default="Dataset_Student", help="dataset root holding the split")
    p.add_argument("--saved_seg_model_dir", default="checkpoints/unet/best.pt", help="U-Net checkpoint file or run folder (Unets/train.py)")
    p.add_argument("--split", default="unlabeled", choices=sorted(STORE_FRAMES), help="split to label")
    p.add_argument("--out", default="checkpoints/pseudo_labels", help="store folder (OUT/<split>/), outside the dataset")
    p.add_argument("--num_videos", type=int, default=0, help="label the first N videos only (0: all)")
    p.add_argument("--batch_size", type=int, default=4, help="videos per batch (x frames per video through the U-Net)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if present, else CPU)")
    add_exclude_args(p)
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.num_videos < 0:
        p.error("--batch_size must be >= 1 and --num_videos >= 0")
    return args


def main(argv=None) -> Path:
    args = parse_args(argv)
    check_output_folder(args.out, "--out", args)  # not the dataset, not an input
    lock_folder(Path(args.out) / args.split, "--out")  # a second run on this store is refused
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    device = choose_device(args.device)
    segmenter = checkpoint_file(args.saved_seg_model_dir)  # a run folder names its best.pt: that file is hashed
    unet = load_model(segmenter, UNet, device)
    out = label_split(lambda frames: segment(unet, frames), args.root_dir, args.split, args.out,
                      segmenter=segmenter, batch_size=args.batch_size, num_videos=args.num_videos,
                      exclude=exclude, per_video=vote_per_video)
    print(f"pseudo-labels: {out} ({STORE_FRAMES[args.split]} frames per video)")
    return out


if __name__ == "__main__":
    sys.exit(run_cli(main))
