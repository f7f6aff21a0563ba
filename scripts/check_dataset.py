"""Check a dataset root against the competition's format and list every problem of every split in one pass.

    python scripts/check_dataset.py --root_dir Dataset_Student
    python scripts/check_dataset.py --root_dir Dataset_Student --split val --decode

By default it reads what is quick to read: each video's file names (missing frames, frames beyond the
split's count), each PNG's header (PNG signature, 240 x 160, 8-bit RGB) and each mask (shape, dtype,
values; a PNG cut after its header, by its last bytes). --decode also decodes every PNG in full. Across
the root: two folders of one number (video_5, video_05), one number in two splits, a split folder that is
another's, and a video whose frame 1 is byte for byte another's (a cheap hash: leakage between splits).
Masks copied to memory-mapped arrays are compared with their files by size and modification time: an edit
that keeps both is not seen (re-run scripts/convert_to_memmap.py after editing files). The checks are the readers' own (data/readers.py:
video_problems), so a dataset that passes here reads without error. Unlike the readers, which stop at
the first problem, it goes on and lists them all, then a summary per split and the --exclude_videos
flag that leaves the bad train, val and unlabeled videos out; it exits with status 1 when anything is wrong.
"""
import argparse
import hashlib
import sys
from pathlib import Path

from tqdm import tqdm

from data.format import SPLITS, duplicate_ids, duplicate_message, frame_name, list_videos
from data.readers import exclusion_fix, video_problems
from engine import run_cli


def check_split(root: Path, split: str, decode: bool, report=print) -> dict:
    """{"videos": count, "problems": [message], "bad": [video name]} of one split; report(message) for each."""
    try:
        videos = list_videos(root / split, duplicates=True)
    except (OSError, ValueError) as e:
        report(str(e))
        return {"videos": 0, "problems": [str(e)], "bad": [], "ids": {}}
    problems, bad = [], []
    groups = duplicate_ids(videos)
    if groups:  # every folder of a shared number is bad: which one is right is the user's call
        problems.append(duplicate_message(root / split, groups))
        report(problems[-1])
        bad += [p.name for g in groups for p in g]
    padded = {p.name != f"video_{vid}" for vid, p in videos}
    if len(padded) > 1:
        report(f"note: {root / split} mixes zero-padded and plain folder names (both read, by number)")
    others = sorted(e.name for e in (root / split).iterdir() if e.is_dir() and not e.name.startswith("video_"))
    if others:  # the readers skip them: a misnamed video would be left out silently
        report(f"note: {root / split} holds {len(others)} folders not named video_<number>, which no script reads: "
               f"{' '.join(others[:10])}{' ...' if len(others) > 10 else ''}")
    for vid, path in tqdm(videos, desc=f"check {split}", unit="video", dynamic_ncols=True, leave=False):
        found = [str(e) for e in video_problems(path, split, level="decode" if decode else "headers")]
        for message in found:
            report(message)
        problems += found
        bad += [path.name] if found and path.name not in bad else []
    return {"videos": len(videos), "problems": problems, "bad": bad, "ids": {vid: path for vid, path in videos}}


def frame_digest(path) -> str:
    """A cheap fingerprint of a video's first frame file: its size and its first 64 KiB."""
    try:
        with open(path, "rb") as f:
            return hashlib.blake2b(f.read(1 << 16), digest_size=16, key=str(path.stat().st_size).encode()).hexdigest()
    except OSError:
        return None


def check_root(root: Path, results: dict, report=print) -> list:
    """The problems between splits: a split folder that is another's, one number in two splits, and identical
    first frames in two videos (leakage); each also marks the videos bad in `results`."""
    problems, seen, digests = [], {}, {}
    for split, r in results.items():
        where = (root / split).resolve()
        if where in seen:
            problems.append(f"{root / split} and {root / seen[where]} are one folder ({where}): each split needs its "
                            f"own videos")
            report(problems[-1])
            continue
        seen[where] = split
        for vid, path in r["ids"].items():
            for other, o in results.items():
                if other < split and vid in o["ids"] and o["ids"][vid].resolve().parent != where:
                    problems.append(f"video number {vid} is in two splits: {o['ids'][vid]} and {path}")
                    report(problems[-1])
                    r["bad"].append(path.name) if path.name not in r["bad"] else None
            digest = frame_digest(path / frame_name(0))
            if digest is not None:
                digests.setdefault(digest, []).append((split, path))
    for same in digests.values():
        if len(same) > 1:
            problems.append(f"leakage: {' and '.join(str(p) for _, p in same)} have the same frame 1 (identical "
                            f"files): one video in several places; keep one")
            report(problems[-1])
            for split, path in same[1:]:
                results[split]["bad"].append(path.name) if path.name not in results[split]["bad"] else None
    return problems


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
    across = check_root(root, results, report=tqdm.write)
    print(f"{root}:")
    for split, r in results.items():
        bad = f": {' '.join(r['bad'][:10])}{' ...' if len(r['bad']) > 10 else ''}" if r["bad"] else ""
        print(f"  {split:<9} {r['videos']} videos, {len(r['problems'])} problems in {len(r['bad'])} videos{bad}")
    if across:
        print(f"  across splits: {len(across)} problems (same numbers, same frames, same folders)")
    total = sum(len(r["problems"]) for r in results.values()) + len(across)
    if not total:
        print("no problem found" + ("" if args.decode else " (PNGs checked by header; --decode reads them whole)"))
        return results
    excludable = [name for split in ("train", "val", "unlabeled") if split in results for name in results[split]["bad"]]
    fixes = []
    if excludable:
        fixes.append(exclusion_fix(excludable))
    if "hidden" in results and (results["hidden"]["problems"]):
        fixes.append("hidden problems must be fixed: a submission needs every hidden video")
    raise ValueError(f"{total} problems in {root}; " + "; ".join(fixes or ["fix the files named above"]))


if __name__ == "__main__":
    sys.exit(run_cli(main))
