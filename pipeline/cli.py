"""The command line of every predictor: the shared flags, then the method's own (pipeline/predictors.py), then
one evaluate path (val: prints and optionally writes the scores) or one submission path (hidden).

    val_main("simvp", description, argv)      # what Unets/inference_val_with_simvp.py runs
    hidden_main("simvp", description, argv)
"""
import argparse
import json
import time
from pathlib import Path

import torch

from data.readers import VideoDataset, add_exclude_args, read_exclusions
from engine import at_least, atomic_write, check_flags, check_output, check_output_folder, check_writable, choose_device
from engine.flags import device as device_rule
from pipeline.evaluate import evaluate
from pipeline.predictors import predictor_kind
from pipeline.submission import check_output_is_not_an_input, predict_hidden, write_submission


def add_scores_json_arg(parser: argparse.ArgumentParser) -> None:
    """--scores_json: where a scoring script writes its scores, for a driver to read (never its printed output)."""
    parser.add_argument("--scores_json", default=None, metavar="PATH",
                        help="also write the scores as JSON to PATH (what the stage runner, pipeline/stages.py, reads)")


def check_scores_json(args) -> None:
    """--scores_json through the output guard (engine/io.py: check_output), before any work: never an input of
    the command, never a checkpoint, a mask or another file that is not JSON."""
    if getattr(args, "scores_json", None):
        check_output(args.scores_json, "--scores_json", "json", args)


def write_scores(path, scores: dict) -> None:
    """The scores as one JSON object, written atomically (a driver never reads half of one); the output guard
    runs again here, so a file that appeared meanwhile is not replaced either."""
    if path:
        check_output(path, "--scores_json", "json")
        atomic_write(Path(path), lambda f: f.write((json.dumps(scores, indent=1, sort_keys=True) + "\n").encode()))


def parser_for(method: str, description: str, hidden: bool) -> argparse.ArgumentParser:
    """The shared flags, then those of `method`."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", default="Dataset_Student", help="dataset root holding the val/ or hidden/ split")
    p.add_argument("--saved_seg_model_dir", default="checkpoints/unet/best.pt",
                   help="U-Net checkpoint written by Unets/train.py, or its run folder (its best.pt)")
    p.add_argument("--batch_size", type=int, default=8, help="videos per batch")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if present, else CPU)")
    p.add_argument("--num_workers", type=int, default=2, help="data-loading worker processes (0: in the main process)")
    if hidden:
        p.add_argument("--output", default="submission.pt",
                       help="submission file: uint8 tensor (hidden videos, 160, 240), written atomically")
    else:
        p.add_argument("--visualize", default=None, metavar="DIR",
                       help="write PNG grids (frame 11 | [predicted frame 22 |] prediction | true frame 22) "
                            "of a few videos to DIR")
        p.add_argument("--num_visualize", type=int, default=8, help="how many videos --visualize draws")
        add_exclude_args(p)
        add_scores_json_arg(p)
    predictor_kind(method).add_args(p)
    return p


def parse(method: str, description: str, hidden: bool, argv) -> argparse.Namespace:
    """The flags of parser_for, range-checked (engine/flags.py: one line per bad flag)."""
    p = parser_for(method, description, hidden)
    args = p.parse_args(argv)
    check_flags(p, args, {"batch_size": at_least(1), "num_workers": at_least(0), "num_visualize": at_least(0),
                          "device": device_rule})
    return args


def val_main(method: str, description: str, argv=None) -> float:
    """Parse arguments, build the predictor, score frame 22 on val; prints `Jaccard: 0.xxxx`, the videos scored
    ("scored 999 of 1000 val videos; excluded: video_1370") and the per-class table; --scores_json writes
    {"method", "jaccard", "videos"}."""
    args = parse(method, description, False, argv)
    device = choose_device(args.device)
    exclude = read_exclusions(args.exclude_videos, args.root_dir)
    VideoDataset(args.root_dir, "val", exclude=exclude)  # a missing split fails before the model loads
    if args.visualize:
        check_output_folder(args.visualize, "--visualize", args)  # a file in the way fails before the model loads
    check_scores_json(args)
    predictor = predictor_kind(method).build(args, device)
    score = evaluate(predictor, args.root_dir, batch_size=args.batch_size, device=device,
                     num_workers=args.num_workers, visualize_dir=args.visualize, num_visualize=args.num_visualize,
                     exclude=exclude)
    jaccard = score.compute()
    print(f"Jaccard: {jaccard:.4f}")
    print(f"scored {score.videos}")
    print(score.table())
    if args.visualize:
        print(f"pictures: {args.visualize}")
    write_scores(args.scores_json, {"method": method, "jaccard": jaccard, "videos": score.videos})
    return jaccard


def hidden_main(method: str, description: str, argv=None) -> torch.Tensor:
    """Parse arguments, check --output is writable, build the predictor, write the checked submission."""
    args = parse(method, description, True, argv)
    output = check_writable(args.output)  # before anything expensive
    check_output_is_not_an_input(output, args)  # a submission replaces only a submission
    device = choose_device(args.device)
    VideoDataset(args.root_dir, "hidden")  # a missing split fails before the model loads
    predictor = predictor_kind(method).build(args, device)
    start = time.perf_counter()
    submission, ids, expected = predict_hidden(predictor, args.root_dir, batch_size=args.batch_size, device=device,
                                               num_workers=args.num_workers)
    seconds = time.perf_counter() - start
    write_submission(submission, output, ids, expected)
    print(f"wrote {output}: {submission.dtype} tensor {tuple(submission.shape)}, rows = videos "
          f"{ids[0]}..{ids[-1]} in numeric order, class ids {int(submission.min())}..{int(submission.max())} "
          f"({len(ids) / seconds:.1f} videos/s)")
    return submission


def script_main(method: str, split: str, description: str):
    """The main(argv=None) of a thin entry script that scores (split "val") or submits ("hidden") with `method`."""
    run = val_main if split == "val" else hidden_main

    def main(argv=None):
        return run(method, description, argv)

    return main
