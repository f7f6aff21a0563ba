"""The U-Net segmenting the TRUE frame 22 of each val video (the oracle): what a perfect predictor of frame 22's
image would give with this segmenter, i.e. segmentation quality alone.

    python scripts/analysis/oracle_scores.py --root_dir D --saved_seg_model_dir U/best.pt [--ablations] [--scores_json S]

--ablations also scores it without the per-object vote and without the crop refinement (Unets/segment.py:
segment; a U-Net with an object head has no vote, so its "no_vote" row equals the oracle's). --scores_json
writes {"oracle", and with --ablations "no_vote", "no_refine"}.
"""
import argparse
import sys

from data.format import TARGET_INDEX
from data.metric import SegmentationScore
from data.readers import VideoDataset, add_exclude_args, read_exclusions
from engine import at_least, check_flags, choose_device, run_cli
from engine.flags import device as device_rule
from pipeline.cli import add_scores_json_arg, check_scores_json, write_scores
from pipeline.evaluate import predict, video_loader
from pipeline.models import load_for_flag
from pipeline.predictors import segmentation_predictor
from Unets.unet import UNet


def oracle_score(model, root, device, batch_size, num_workers, vote: bool = True, refine: bool = True, exclude=()):
    """The U-Net on the true frame 22, scored against frame 22's mask (vote, refine: see Unets/segment.py: segment)."""
    loader = video_loader(root, "val", batch_size, num_workers, device, frame_indices=[TARGET_INDEX], exclude=exclude)
    score = SegmentationScore()
    for batch, preds in predict(segmentation_predictor(model, frame_index=0, vote=vote, refine=refine), loader, device,
                                desc="oracle"):
        score.update(preds, batch["masks"][:, 0])
    return score


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root_dir", required=True, help="dataset root holding val/")
    p.add_argument("--saved_seg_model_dir", required=True, help="U-Net checkpoint (Unets/train.py) or its run folder")
    p.add_argument("--ablations", action="store_true", help="also score without the vote and without the refinement")
    p.add_argument("--batch_size", type=int, default=8, help="videos per batch")
    p.add_argument("--num_workers", type=int, default=2, help="data-loading workers (0: in the main process)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA if present)")
    add_exclude_args(p)
    add_scores_json_arg(p)
    args = p.parse_args(argv)
    check_flags(p, args, {"batch_size": at_least(1), "num_workers": at_least(0), "device": device_rule})
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    print(VideoDataset(args.root_dir, "val", frame_indices=[TARGET_INDEX], exclude=exclude).index.describe())
    check_scores_json(args)  # before any work: never over a checkpoint, a mask or an input
    device = choose_device(args.device)
    model = load_for_flag(args.saved_seg_model_dir, UNet, "--saved_seg_model_dir", device)
    runs = {"oracle": {}, **({"no_vote": {"vote": False}, "no_refine": {"refine": False}} if args.ablations else {})}
    scores = {}
    for name, kwargs in runs.items():
        score = oracle_score(model, args.root_dir, device, args.batch_size, args.num_workers, exclude=exclude, **kwargs)
        scores[name] = score.compute()
        print(f"{name:9} Jaccard: {scores[name]:.4f}  (the U-Net on the true frame 22)")
    write_scores(args.scores_json, scores)
    return scores


if __name__ == "__main__":
    sys.exit(run_cli(main))
