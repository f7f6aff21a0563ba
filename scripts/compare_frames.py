"""A picture of real frames next to synthetic ones (the README's data/figures/synthetic_vs_real.png).

    python scripts/compare_frames.py --real_root ../shared/real_samples/Dataset_Student

Top row: frame 11 of a few real videos; bottom row: frame 11 of synthetic videos drawn with the
generator's defaults (rendered in memory, nothing else is written). A third row shows the synthetic
masks in data/classes.py's palette.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from data.classes import colorize  # noqa: E402
from data.format import LAST_INPUT_INDEX, SPLITS, frame_name, list_videos  # noqa: E402
from data.synthetic import render_video  # noqa: E402
from Unets.training import run_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


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


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each flag's default after its help."""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--real_root", default=str(REPO.parent / "shared" / "real_samples" / "Dataset_Student"),
                   help="a real dataset root (train/val/unlabeled video folders)")
    p.add_argument("--out", default=str(REPO / "data" / "figures" / "synthetic_vs_real.png"), help="PNG to write")
    p.add_argument("--videos", type=int, default=4, help="videos per row")
    p.add_argument("--seed", type=int, default=0, help="synthetic dataset seed")
    args = p.parse_args(argv)
    try:
        real = real_frames(Path(args.real_root), args.videos)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    syn, masks = [], []
    for i in range(args.videos):
        frames, m = render_video(args.seed, i)
        syn.append(frames[LAST_INPUT_INDEX])
        masks.append(colorize(m[LAST_INPUT_INDEX]))
    gap = np.full((real[0].shape[0], 2, 3), 255, np.uint8)

    def row(imgs, name):
        imgs = [label(imgs[0], name)] + imgs[1:]
        return np.concatenate(sum(([im, gap] for im in imgs), [])[:-1], 1)

    rows = [row(real, "real"), row(syn, "synthetic"), row(masks, "synthetic mask")]
    hgap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    picture = np.concatenate([rows[0], hgap, rows[1], hgap, rows[2]], 0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(args.out, optimize=True)
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]})")


if __name__ == "__main__":
    sys.exit(run_cli(main))
