"""A picture of real frames next to synthetic ones (the README's data/figures/synthetic_vs_real.png).

    python scripts/analysis/compare_frames.py --real_root ../shared/real_samples/Dataset_Student

Top row: frame 11 of a few real videos; bottom row: frame 11 of synthetic videos drawn with the
generator's defaults (rendered in memory, nothing else is written). A third row shows the synthetic
masks in data/classes.py's palette.

A third picture (--crops_out) puts objects side by side, one row per shape and material: real
objects (wholly visible, at rows spread over the frame) on the left, and on the right synthetic
objects of the same shape and material found at the nearest rows, each crop 40 px wide, shown twice
as large: how the renderer's shading, highlights, shadows, edges and colors compare. With it, a table of
the brightness inside objects (mean, 5th and 95th percentile, spread) per class present in both, real
beside synthetic, and per material how far apart they are: the same colors compared, so that the
palette's mix does not hide the shading (metal's contrast, rubber's lit faces).

The synthetic rows are drawn in --world (make_synthetic_dataset.py's worlds).

A second picture (--tracks_out) shows how objects move: frame 22 of the real labeled videos (top)
and of as many synthetic ones (bottom), with each object's mask centroid in frames 1-22 drawn as a
trail in its palette color (a dot per frame: widely spaced dots are fast motion, a bend is a hit).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from data.classes import colorize
from data.classes import PALETTE
from data.format import (
    LABELED_SPLITS, LAST_INPUT_INDEX, MASK_FILE, NUM_FRAMES, SPLITS, TARGET_INDEX, frame_name, list_videos,
)
from data.synthetic import DEFAULT_WORLD, WORLDS, render_video
from engine import check_output, run_cli

REPO = Path(__file__).resolve().parents[2]


def real_frames(root: Path, n: int) -> list:
    videos = []
    for split in SPLITS:
        if (root / split).is_dir():
            videos += [path for _, path in list_videos(root / split)]
    if len(videos) < n:
        raise FileNotFoundError(f"need {n} real videos under {root}, found {len(videos)}: pass --real_root")
    picks = [videos[i] for i in np.linspace(0, len(videos) - 1, n).round().astype(int)]
    return [np.array(Image.open(v / frame_name(LAST_INPUT_INDEX)).convert("RGB")) for v in picks]


def label(img: np.ndarray, text: str) -> np.ndarray:
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    draw.rectangle([0, 0, 7 * len(text) + 6, 14], fill=(0, 0, 0))
    draw.text((3, 2), text, fill=(255, 255, 255))
    return np.array(pil)


def real_labeled(root: Path) -> list:
    """[(frames (22, H, W, 3) RGB, masks (22, H, W))] of every real labeled video under root, read once for the
    tracks picture and the crops (as render_video gives a synthetic one)."""
    return [(np.stack([np.array(Image.open(v / frame_name(t)).convert("RGB")) for t in range(NUM_FRAMES)]),
             np.load(v / MASK_FILE))
            for split in LABELED_SPLITS if (root / split).is_dir() for _, v in list_videos(root / split)]


def with_tracks(img: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """img with each object's centroid trail over the frames of masks (T, H, W)."""
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for cid in np.unique(masks)[1:]:
        points = []
        for m in masks:
            ys, xs = np.nonzero(m == cid)
            points.append((xs.mean(), ys.mean()) if len(xs) else None)
        color = tuple(int(c) for c in PALETTE[cid])
        seen = [p for p in points if p is not None]
        if len(seen) > 1:
            draw.line(seen, fill=color, width=1)
        for p in seen:
            draw.ellipse([p[0] - 1.5, p[1] - 1.5, p[0] + 1.5, p[1] + 1.5], fill=color, outline=(0, 0, 0))
    return np.array(pil)


def grid(rows: list) -> np.ndarray:
    """Rows of equal-sized images, 2 px of white between them."""
    gap = np.full((rows[0][0].shape[0], 2, 3), 255, np.uint8)
    lines = [np.concatenate(sum(([im, gap] for im in r), [])[:-1], 1) for r in rows]
    hgap = np.full((2, lines[0].shape[1], 3), 255, np.uint8)
    return np.concatenate(sum(([line, hgap] for line in lines), [])[:-1], 0)


CROP = 40  # pixels around an object's centroid
CROP_VIDEOS = 40  # synthetic videos the crops and the brightness table are drawn from


def object_crops(frames_and_masks, frames_at=(0, 5, 10, 15, 21)) -> list:
    """[(shape, material, row, crop (CROP, CROP, 3))] of the wholly visible objects (data/geometry.py:
    whole_objects) of [(frames (T, H, W, 3), masks (T, H, W))], at the frames frames_at."""
    from data.classes import class_parts
    from data.geometry import whole_objects

    out = []
    half = CROP // 2
    for frames, masks in frames_and_masks:
        for t in frames_at:
            padded = np.pad(frames[t], ((half, half), (half, half), (0, 0)), mode="edge")
            for cid in whole_objects(masks[t]):
                ys, xs = np.nonzero(masks[t] == cid)
                cy, cx = int(ys.mean()), int(xs.mean())
                shape, material, _ = class_parts(cid)
                out.append((shape, material, float(ys.mean()), padded[cy:cy + CROP, cx:cx + CROP]))
    return out


def crops_picture(real: list, synthetic: list, per_row: int = 6) -> np.ndarray:
    """One row per shape and material: per_row real crops, then the synthetic crop at the nearest row of each."""
    rows = []
    for shape in ("cube", "sphere", "cylinder"):
        for material in ("metal", "rubber"):
            r = sorted((c for c in real if c[:2] == (shape, material)), key=lambda c: c[2])
            s = [c for c in synthetic if c[:2] == (shape, material)]
            if not r or not s:
                continue
            picks = [r[i] for i in np.linspace(0, len(r) - 1, min(per_row, len(r))).round().astype(int)]
            match = [min(s, key=lambda c: abs(c[2] - p[2])) for p in picks]
            big = lambda c: np.kron(c[3], np.ones((2, 2, 1), np.uint8))  # noqa: E731
            blank = np.full((2 * CROP, 2 * CROP, 3), 255, np.uint8)
            cells = [big(c) for c in picks] + [blank] * (per_row - len(picks)) + [big(c) for c in match]
            cells += [blank] * (2 * per_row - len(cells))
            cells[0] = label(cells[0], f"real {material} {shape}")
            cells[per_row] = label(cells[per_row], "synthetic")
            rows.append(cells)
    return grid(rows)


def surface_stats(frames_and_masks, frames_at=(0, 5, 10, 15, 21), min_area: int = 150) -> dict:
    """{(shape, material, color): [(mean, p5, p95, std)]}: the brightness (mean of R, G and B) inside each
    wholly visible object of at least min_area pixels, its edge pixels left out (they blend with the floor)."""
    from scipy.ndimage import binary_erosion

    from data.classes import class_parts
    from data.geometry import whole_objects

    out = {}
    for frames, masks in frames_and_masks:
        for t in frames_at:
            lum = frames[t].astype(np.float32).mean(-1)
            for cid in whole_objects(masks[t]):
                inside = masks[t] == cid
                if inside.sum() < min_area:
                    continue
                v = lum[binary_erosion(inside)]
                out.setdefault(class_parts(cid), []).append((v.mean(), *np.percentile(v, [5, 95]), v.std()))
    return out


LOOKS = ("mean", "p5", "p95", "std")


def looks_table(real: dict, synthetic: dict) -> tuple:
    """(text, {material: mean |synthetic - real| of each of LOOKS}): per class present in both, the
    median of each measure over its objects, real beside synthetic; then, per material, how far apart
    they are on average over those classes. Comparing the same colors keeps the palette out of it."""
    lines = [f"{'':<26}{'real':>33} | {'synthetic':>33}", f"{'':<26}" + (f"{'n':>5}" + "".join(f"{m:>7}" for m in LOOKS)) * 2]
    gaps = {}
    for key in sorted(set(real) & set(synthetic)):
        r, s = np.median(np.array(real[key]), 0), np.median(np.array(synthetic[key]), 0)
        lines.append(f"{' '.join(key):<26}{len(real[key]):>5}" + "".join(f"{x:>7.1f}" for x in r) +
                     f" | {len(synthetic[key]):>3}" + "".join(f"{x:>7.1f}" for x in s))
        gaps.setdefault(key[1], []).append(np.abs(s - r))
    gap = {m: np.mean(g, 0) for m, g in sorted(gaps.items())}
    for m, g in gap.items():
        lines.append(f"{m} objects, mean |synthetic - real| over {len(gaps[m])} classes: " +
                     ", ".join(f"{k} {v:.1f}" for k, v in zip(LOOKS, g)))
    return "\n".join(lines), gap


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each flag's default after its help."""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--real_root", default=str(REPO.parent / "shared" / "real_samples" / "Dataset_Student"),
                   help="a real dataset root (train/val/unlabeled video folders)")
    p.add_argument("--out", default=str(REPO / "data" / "figures" / "synthetic_vs_real.png"), help="PNG to write")
    p.add_argument("--tracks_out", default=str(REPO / "data" / "figures" / "tracks_real_vs_synthetic.png"),
                   help="PNG of the object tracks to write")
    p.add_argument("--crops_out", default=str(REPO / "data" / "figures" / "crops_real_vs_synthetic.png"),
                   help="PNG of real and synthetic objects side by side, per shape and material, to write")
    p.add_argument("--world", choices=sorted(WORLDS), default=DEFAULT_WORLD, help="the generator's world of the synthetic rows")
    p.add_argument("--videos", type=int, default=4, help="videos per row")
    p.add_argument("--seed", type=int, default=0, help="synthetic dataset seed")
    args = p.parse_args(argv)
    for flag in ("out", "tracks_out", "crops_out"):
        Path(getattr(args, flag)).parent.mkdir(parents=True, exist_ok=True)
        check_output(getattr(args, flag), f"--{flag}", "png", args)
    try:
        real = real_frames(Path(args.real_root), args.videos)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    real_videos = real_labeled(Path(args.real_root))
    # every synthetic video the three pictures show, drawn once (a video depends on (seed, id) alone)
    syn_videos = [render_video(args.seed, i, cfg=WORLDS[args.world])
                  for i in range(max(args.videos, len(real_videos), CROP_VIDEOS))]
    syn = [frames[LAST_INPUT_INDEX] for frames, _ in syn_videos[:args.videos]]
    masks = [colorize(m[LAST_INPUT_INDEX]) for _, m in syn_videos[:args.videos]]
    picture = grid([[label(real[0], "real")] + real[1:], [label(syn[0], "synthetic")] + syn[1:],
                    [label(masks[0], "synthetic mask")] + masks[1:]])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(args.out, optimize=True)
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]})")

    real_row = [with_tracks(frames[TARGET_INDEX], m) for frames, m in real_videos]
    syn_row = [with_tracks(frames[TARGET_INDEX], m) for frames, m in syn_videos[:len(real_videos)]]
    picture = grid([[label(real_row[0], "real, frame 22 and tracks")] + real_row[1:],
                    [label(syn_row[0], "synthetic")] + syn_row[1:]])
    Image.fromarray(picture).save(args.tracks_out, optimize=True)
    print(f"wrote {args.tracks_out} ({picture.shape[1]}x{picture.shape[0]})")

    syn_videos = syn_videos[:CROP_VIDEOS]
    picture = crops_picture(object_crops(real_videos), object_crops(syn_videos))
    Image.fromarray(picture).save(args.crops_out, optimize=True)
    print(f"wrote {args.crops_out} ({picture.shape[1]}x{picture.shape[0]})")
    print(f"\nbrightness inside objects (R, G, B mean; edges left out), real labeled videos against world "
          f"{args.world!r} ({CROP_VIDEOS} videos), per class present in both:")
    print(looks_table(surface_stats(real_videos), surface_stats(syn_videos))[0])


if __name__ == "__main__":
    sys.exit(run_cli(main))
