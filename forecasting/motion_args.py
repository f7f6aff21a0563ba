"""The motion model's command-line side: its flags (--motion fit|FILE and the parameters set by hand), the
Motion they ask for (fitted on a split's true masks, or read from a file), and writing a Motion as JSON.
The model itself (simulation, painting, fitting) is forecasting/motion.py."""
import argparse
import json
from pathlib import Path

from data.readers import SplitIndex
from engine.flags import at_least, between
from engine.io import atomic_write
from forecasting.motion import Motion, check_horizon_row, fit_motion


class _NoneArg(str):
    """'none' given to --horizon_row: plain image-space motion (None itself means: not given)."""


NONE = _NoneArg("none")


def horizon_row_arg(text: str):
    """argparse type of --horizon_row: 'none' (plain image-space motion) or a row < 0."""
    if text.lower() == "none":
        return NONE
    try:
        return check_horizon_row(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes 'none' or a number < 0, got {text!r}") from None


FIT = "fit"  # --motion's default: fit it on the train split's true masks at start


def add_motion_args(parser: argparse.ArgumentParser) -> None:
    """--motion and the overrides of its parameters, for every script that extrapolates."""
    g = parser.add_argument_group("motion extrapolation (forecasting/motion.py)",
                                  "the parameters not set below are fitted (--motion fit) or read from --motion FILE")
    g.add_argument("--motion", default=FIT,
                   help="'fit': fit the motion (horizon, damping, collisions) on the true masks of the train split's "
                        "first --motion_videos videos at start (a minute or two on a CPU: see the README), or a JSON file from "
                        "scripts/fit_motion.py")
    g.add_argument("--motion_videos", type=int, default=200, help="with --motion fit: train videos to fit on")
    g.add_argument("--damping", type=float, default=None,
                   help="set, not fit: the share of the constant-velocity way objects cover in the 11 frames to frame 22")
    g.add_argument("--horizon_row", type=horizon_row_arg, default=None,
                   help="set, not fit: the image row of the floor's horizon (< 0), or 'none' for image-space motion")
    g.add_argument("--contact", type=float, default=None,
                   help="set, not fit: objects collide when closer than this x their mean apparent size (0: never)")
    g.add_argument("--focal", type=float, default=None,
                   help="set, not fit: depth-to-width scale of the floor, in pixels (for collisions in perspective)")


# The range of each motion flag (engine/flags.py: check_flags); --horizon_row checks itself as it parses.
# (the bounds forecasting/motion.py: Motion enforces, checked here so that a bad flag is not blamed on --motion FILE)
MOTION_RULES = {"motion_videos": at_least(1), "damping": between(0, 2), "contact": between(0, 5),
                "focal": between(1, 1e5)}


def resolve_motion(args, root, split: str = "train", print_fn=print, exclude=()) -> Motion:
    """The Motion that add_motion_args' flags ask for: fitted on ROOT/split's true masks (without the videos
    `exclude`, read_exclusions' ids), or read from a file, with the parameters given on the command line in
    place of the fitted or read ones."""
    given = {name: getattr(args, name) for name in ("damping", "horizon_row", "contact", "focal")
             if getattr(args, name) is not None}
    if isinstance(given.get("horizon_row"), _NoneArg):
        given["horizon_row"] = None
    if args.motion == FIT:
        if args.motion_videos < 1:
            raise ValueError(f"--motion_videos must be >= 1 (train videos to fit on), got {args.motion_videos}")

        index = SplitIndex(root, split, frame_indices=[], need_mask=True, exclude=exclude)
        n = min(len(index), args.motion_videos)
        motion = fit_motion((index.masks(i, range(index.num_frames)) for i in range(n)), fixed=given)
        excluded = f"; excluded: {' '.join(f'video_{v}' for v in index.excluded)}" if index.excluded else ""
        source = f"fitted on the true masks of {n} {split} videos ({index.root / split}{excluded})"
    else:
        path = Path(args.motion)
        try:
            config = json.loads(path.read_text())
            if not isinstance(config, dict):
                raise ValueError(f"holds a JSON {type(config).__name__}, not an object")
            motion = Motion.from_config({**config, **given})
        except (OSError, ValueError) as e:
            raise ValueError(f"--motion {path}: {e}; pass 'fit', or a file written by scripts/fit_motion.py") from None
        source = f"from {path}"
    print_fn(f"motion: {motion.describe()} ({source}{', with ' + str(given) + ' given' if given else ''})")
    return motion


def save_motion(motion: Motion, path) -> Path:
    """Write a Motion as JSON, atomically (what --motion FILE reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write((json.dumps(motion.to_config(), indent=1) + "\n").encode()))
    return path
