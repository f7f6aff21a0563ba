"""How predictable frame 22 is on the generator's own videos: the physical limit of forecasting.

    python scripts/analysis/predictability.py                       # 200 videos of seed 3 (ids 0..199), real world
    python scripts/analysis/predictability.py --seed 0 --first_id 100 --videos 50
    python scripts/analysis/predictability.py --world clevr          # CLEVR's world on Bullet's (chaotic) floor
    python scripts/analysis/predictability.py --world clevr --floor smooth   # ... on the smooth floor

Each video is drawn as make_synthetic_dataset.py draws it (same seed and id give the same video),
then frame 22 is re-simulated in the generator's own engine from frame 11, with only the bodies
that frames 1-11 show (objects that enter later are left out: no forecaster can know them):
  copy 11              the true frame-11 mask as the prediction
  perfect motion       each object of frames 1-11 drawn at its true frame-22 place (no entering ones)
  re-simulated         the re-simulation from the exact frame-11 state of those bodies
  nudged 1e-6 / 1e-3   the same from that state moved by up to 1e-6 / 1e-3 (floor units, radians,
                       velocities relative to themselves: 1e-3 is about 0.02 px)
  ceiling              the true frame 22 with classes absent from frame 11 removed
Scores are the competition's (dataset-level Jaccard), over all videos and split by whether an
object enters after frame 11. Last, the smoothness of free motion: of the bodies that touch no
other body in frames 11-22 (Bullet's contact points), the share whose frame-22 place moves by
more than 0.01 floor units under the 1e-6 nudge. The work is data/predictability.py's, which
scripts/bench/bench_field.py also uses for the limit rows of the field table.
"""
import argparse
import sys

from data.predictability import format_report, predictability
from data.synthetic import DEFAULT_WORLD, WORLDS
from engine import run_cli


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=3, help="dataset seed of the videos (as make_synthetic_dataset.py --seed)")
    p.add_argument("--first_id", type=int, default=0, help="id of the first video")
    p.add_argument("--videos", type=int, default=200, help="how many videos, ids first_id, first_id + 1, ...")
    p.add_argument("--world", choices=sorted(WORLDS), default=DEFAULT_WORLD,
                   help="the generator's world (make_synthetic_dataset.py --world; data/synthetic.py: WORLDS)")
    p.add_argument("--floor", choices=("bullet", "smooth"), default=None,
                   help="replace the world's floor (data/physics.py): 'bullet' (chaotic free motion) or 'smooth' "
                        "(the floor's friction in closed form); default: the world's own")
    p.add_argument("--scores_json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = p.parse_args(argv)
    if args.videos < 1 or args.first_id < 0:
        p.error("--videos must be at least 1 and --first_id at least 0")
    from pipeline.cli import check_scores_json

    check_scores_json(args)  # before any work: never over a checkpoint, a mask or an input
    import dataclasses

    from pipeline.cli import write_scores

    cfg = WORLDS[args.world]
    if args.floor:
        cfg = dataclasses.replace(cfg, physics=dataclasses.replace(cfg.physics, floor=args.floor))
    res = predictability(args.seed, range(args.first_id, args.first_id + args.videos), cfg)
    print(format_report(res))
    write_scores(args.scores_json, res)
    return res


if __name__ == "__main__":
    sys.exit(run_cli(main))
