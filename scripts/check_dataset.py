"""Check a dataset root against the competition's format and list every problem of every split in one pass.

    python scripts/check_dataset.py --root_dir Dataset_Student
    python scripts/check_dataset.py --root_dir Dataset_Student --split val --decode

By default it reads what is quick to read: each video's file names (missing frames, frames beyond the
split's count), each PNG's header (PNG signature, 240 x 160, 8-bit RGB) and each mask (shape, dtype,
values). --decode also decodes every PNG in full. The checks are the readers' own (data/readers.py:
video_problems), so a dataset that passes here reads without error. Unlike the readers, which stop at
the first problem, it goes on and lists them all, then a summary per split and the --exclude_videos
flag that leaves the bad train, val and unlabeled videos out; it exits with status 1 when anything is wrong.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from data.format import SPLITS, list_videos  # noqa: E402
from data.readers import video_problems  # noqa: E402
from engine import run_cli  # noqa: E402


def check_split(root: Path, split: str, decode: bool, report=print) -> dict:
    """{"videos": count, "problems": [message], "bad": [video name]} of one split; report(message) for each."""
    try:
        videos = list_videos(root / split)
    except (OSError, ValueError) as e:
        report(str(e))
        return {"videos": 0, "problems": [str(e)], "bad": []}
    problems, bad = [], []
    for vid, path in tqdm(videos, desc=f"check {split}", unit="video", dynamic_ncols=True, leave=False):
        found = [str(e) for e in video_problems(path, split, level="decode" if decode else "headers")]
        for message in found:
            report(message)
        problems += found
        bad += [path.name] if found else []
    return {"videos": len(videos), "problems": problems, "bad": bad}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root_dir", default="Dataset_Student", help="dataset root holding the splits")
    p.add_argument("--split", nargs="+", default=list(SPLITS), choices=SPLITS, help="splits to check")
    p.add_argument("--decode", action="store_true", help="decode every PNG in full (slower), not only its header")
    args = p.parse_args(argv)
    root = Path(args.root_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root} (pass --root_dir)")
    results = {split: check_split(root, split, args.decode, report=tqdm.write) for split in args.split}
    print(f"{root}:")
    for split, r in results.items():
        bad = f": {' '.join(r['bad'][:10])}{' ...' if len(r['bad']) > 10 else ''}" if r["bad"] else ""
        print(f"  {split:<9} {r['videos']} videos, {len(r['problems'])} problems in {len(r['bad'])} videos{bad}")
    total = sum(len(r["problems"]) for r in results.values())
    if not total:
        print("no problem found" + ("" if args.decode else " (PNGs checked by header; --decode reads them whole)"))
        return results
    excludable = [name for split in ("train", "val", "unlabeled") if split in results for name in results[split]["bad"]]
    fixes = []
    if excludable:
        fixes.append(f"to train and score without the bad videos, pass --exclude_videos "
                     f"{' '.join(excludable)} (or a file with one name a line)")
    if "hidden" in results and (results["hidden"]["problems"]):
        fixes.append("hidden problems must be fixed: a submission needs every hidden video")
    raise ValueError(f"{total} problems in {root}; " + "; ".join(fixes or ["fix the files named above"]))


if __name__ == "__main__":
    sys.exit(run_cli(main))
