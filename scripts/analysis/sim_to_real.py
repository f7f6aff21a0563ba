"""How well a U-Net trained only on synthetic videos segments the real ones (sim-to-real).

    python scripts/analysis/sim_to_real.py --saved_seg_model_dir runs/unet/best.pt \
        --real_root ../shared/real_samples/Dataset_Student [--synthetic_root D] [--visualize grids]

Segments every frame (all 22) of every labeled video of --real_root (its train and val splits),
with the repository's segmentation of videos (Unets/segment.py: segment_videos: crop refinement, the vote per
object and the vote per video included), and scores them with the competition's metric (data/metric.py), over all frames
together and per split. With --synthetic_root it scores all frames of that root's val split the same
way, for comparison. It also counts, over every object of every frame, whether the class the
segmentation gives most of the object's pixels is right, background, or wrong in shape, material or
color: where the domain gap lies. Over all real frames it also says how the macro mean is made: the
classes of the targets, the classes only predicted (each one a zero in the mean, however few its pixels)
and the mean over the target classes alone. The real videos are only measured here: nothing is fitted on them.
"""
import argparse
import sys
from pathlib import Path

from collections import Counter

import torch

from data.format import LABELED_SPLITS, NUM_FRAMES
from data.metric import SegmentationScore, object_outcomes
from pipeline.models import load_for_flag
from pipeline.evaluate import save_grid, video_loader
from Unets.postprocess import VIDEO_SHARE
from Unets.segment import segment_videos
from engine import check_output_folder, choose_device, run_cli
from Unets.unet import UNet

REPO = Path(__file__).resolve().parents[2]


@torch.no_grad()
def score_all_frames(model, root, split: str, device, batch_size: int = 2, visualize_dir=None, also=None,
                     share: float = VIDEO_SHARE) -> tuple:
    """(score over every frame of every video of root/split, number of frames, object_outcomes); `also`,
    a second SegmentationScore, counts the same frames. With visualize_dir, one grid (frame | prediction |
    truth) each of frames 1, 11 and 22 of the split's first video."""
    loader = video_loader(root, split, batch_size, 0, device, frame_indices=range(NUM_FRAMES),
                          mask_indices=range(NUM_FRAMES))
    score, frames_seen, outcomes = SegmentationScore(), 0, Counter()
    for batch in loader:
        frames = batch["frames"]  # (B, T, 3, H, W) uint8
        b, t = frames.shape[:2]
        preds = segment_videos(model, frames, share).flatten(0, 1).cpu()  # (B*T, H, W)
        truth = batch["masks"].flatten(0, 1)
        for s in (score, also) if also is not None else (score,):
            s.update(preds, truth)
        outcomes += object_outcomes(preds, truth)
        if visualize_dir is not None and frames_seen == 0:
            Path(visualize_dir).mkdir(parents=True, exist_ok=True)
            vid = int(batch["video_id"][0])
            for k in (0, 10, 21):
                save_grid(Path(visualize_dir) / f"{split}_video_{vid}_frame_{k + 1}.png", frames[0, k], preds[k], truth[k],
                          frame_name=f"frame {k + 1}", target_name=f"frame {k + 1}")
        frames_seen += b * t
    return score, frames_seen, outcomes


def class_presence(score: SegmentationScore) -> dict:
    """How the macro mean of `score` is made: the classes present in the targets (background included),
    those only predicted ({name: predicted pixels}: each is a zero in the mean, however few its pixels),
    and the mean IoU over the target classes alone (what the score would be without them)."""
    from data.classes import CLASS_NAMES

    confmat = score._per_class.confmat.cpu()  # rows: target, columns: prediction
    in_targets, predicted = confmat.sum(1) > 0, confmat.sum(0) > 0
    iou = score.per_class()
    only = torch.nonzero(predicted & ~in_targets).flatten().tolist()
    return {"target classes": int(in_targets.sum()),
            "predicted only": dict(sorted(((CLASS_NAMES[c], int(confmat[:, c].sum())) for c in only), key=lambda kv: -kv[1])),
            "jaccard over target classes": float(iou[in_targets].mean())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--saved_seg_model_dir", required=True, help="U-Net checkpoint (Unets/train.py's best.pt)")
    p.add_argument("--real_root", default=str(REPO.parent / "shared" / "real_samples" / "Dataset_Student"),
                   help="a real dataset root with labeled train/ and/or val/ videos (default: ../shared's samples)")
    p.add_argument("--synthetic_root", default=None, help="also score all frames of this root's val split (default: no)")
    p.add_argument("--batch_size", type=int, default=2, help="videos per batch (22 frames each)")
    p.add_argument("--video_share", type=float, default=VIDEO_SHARE,
                   help="the per-video vote's share (Unets/postprocess.py: vote_per_video): a class seen in fewer of "
                        "its color's frames becomes that color's most frequent class; 0: no per-video vote")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA if present)")
    p.add_argument("--visualize", default=None, help="folder for PNG grids of a few real frames (default: none)")
    args = p.parse_args(argv)
    if not 0 <= args.video_share <= 1:
        p.error(f"--video_share must be in [0, 1], got {args.video_share}")
    if args.visualize:
        check_output_folder(args.visualize, "--visualize", args)
    device = choose_device(args.device)
    real = Path(args.real_root)
    splits = [s for s in LABELED_SPLITS if (real / s).is_dir()]
    if not splits:
        raise FileNotFoundError(f"no labeled split (train/ or val/) under --real_root {real}: point it at the real data's root")
    model = load_for_flag(args.saved_seg_model_dir, UNet, "--saved_seg_model_dir", device).eval()
    results, total = {}, SegmentationScore()
    for split in splits:
        score, n, outcomes = score_all_frames(model, real, split, device, args.batch_size, args.visualize, also=total,
                                              share=args.video_share)
        results[f"real {split}"] = {"jaccard": score.compute(), "frames": n, "objects": dict(outcomes)}
    results["real, all labeled frames"] = {"jaccard": total.compute(),
                                           "frames": sum(r["frames"] for r in results.values()),
                                           "classes": class_presence(total)}
    if args.synthetic_root:
        score, n, outcomes = score_all_frames(model, args.synthetic_root, "val", device, args.batch_size,
                                              share=args.video_share)
        results["synthetic val"] = {"jaccard": score.compute(), "frames": n, "objects": dict(outcomes)}
    vote = f"the vote per video at share {args.video_share:g}" if args.video_share > 0 else "no vote per video"
    print(f"U-Net {args.saved_seg_model_dir}, every frame segmented (crop refinement, the vote per object, {vote}):")
    for name, r in results.items():
        print(f"  {name:<26} Jaccard {r['jaccard']:.4f}  ({r['frames']} frames)")
        if "objects" in r:
            objects = r["objects"]
            counts = ", ".join(f"{k} {v}" for k, v in sorted(objects.items(), key=lambda kv: -kv[1]))
            print(f"  {'':<26} objects by their majority class: {counts} (of {sum(objects.values())})")
        if "classes" in r:
            c = r["classes"]
            only = c["predicted only"]
            largest = ", ".join(f"{k} {v}" for k, v in list(only.items())[:5])
            print(f"  {'':<26} classes: {c['target classes']} in the targets (background included), {len(only)} only "
                  f"predicted ({sum(only.values())} px{'; most: ' + largest if only else ''}), each a zero in the mean;\n"
                  f"  {'':<26} Jaccard over the target classes alone {c['jaccard over target classes']:.4f}")
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
