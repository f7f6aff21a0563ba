"""How predictable frame 22 is on the generator's own videos: the physical limit of forecasting.

    python scripts/analysis/predictability.py                       # 200 videos of seed 3 (ids 0..199)
    python scripts/analysis/predictability.py --seed 0 --first_id 100 --videos 50
    python scripts/analysis/predictability.py --world real           # the world fitted on the real videos
    python scripts/analysis/predictability.py --floor smooth         # CLEVR's world on the smooth floor

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
more than 0.01 floor units under the 1e-6 nudge.
"""
import argparse
import sys

import numpy as np

from data.format import LAST_INPUT_INDEX as INPUT_T, TARGET_INDEX as TARGET_T  # (frames 11 and 22)
from engine import run_cli

NUDGES = (1e-6, 1e-3)
FREE_MOVE = 0.01  # floor units: a free body moved more than this by a nudge is not smooth


def _draw(renderer, frame) -> np.ndarray:
    from data.synthetic import scene_objects

    return renderer.render(scene_objects(frame))[1]


def video_rows(seed: int, video_id: int, cfg, nudges=NUDGES) -> dict:
    """One video's masks for every row, and its free bodies' frame-22 shifts under the first nudge."""
    from data.format import NUM_FRAMES
    from data.metric import ceiling_prediction
    from data.physics import simulate_bodies
    from data.synthetic import renderer_for, sample_bodies, video_config

    cfg = video_config(cfg, seed, video_id)
    renderer = renderer_for(cfg)
    bodies = sample_bodies(np.random.default_rng([seed, video_id]), cfg, NUM_FRAMES, renderer.camera)
    seen = {}

    def record(t, world, waiting):
        if t == INPUT_T:
            world.touched = set()
        if t == TARGET_T:
            seen["touched"] = set(world.touched)
            seen["place"] = {k: world.pose(k)[:2] for k in world.keys()}

    frames = simulate_bodies(bodies, NUM_FRAMES, cfg.physics, cfg.sizes, until=record)
    masks = np.stack([_draw(renderer, f) for f in frames])
    visible = set(np.unique(masks[:INPUT_T + 1]).tolist()) - {0}
    true_place, touched = seen["place"], seen["touched"]

    def resimulate(eps):
        def restart(t, world, waiting):
            if t == INPUT_T:
                waiting.clear()  # bodies yet to enter are unknown at frame 11
                rng = np.random.default_rng([seed, video_id, 1])
                for k in world.keys():
                    if bodies[k].class_id not in visible:
                        world.remove(k)
                    elif eps:
                        world.set_state(k, world.state(k).nudged(rng, eps))
            record(t, world, waiting)
        out = simulate_bodies(bodies, NUM_FRAMES, cfg.physics, cfg.sizes, until=restart)
        return _draw(renderer, out[TARGET_T]), dict(seen["place"])

    rows = {"copy 11": masks[INPUT_T], "ceiling": ceiling_prediction(masks),
            "perfect motion": _draw(renderer, [o for o in frames[TARGET_T] if o[0] in visible])}
    rows["re-simulated"], _ = resimulate(0.0)
    free_shift = []
    for i, eps in enumerate(nudges):
        rows[f"nudged {eps:g}"], place = resimulate(eps)
        if i == 0:
            free_shift = [float(np.hypot(*(place[k] - true_place[k]))) for k in place
                          if k in true_place and k not in touched and bodies[k].class_id in visible]
    entering = bool(set(np.unique(masks[INPUT_T + 1:]).tolist()) - visible - {0})
    return {"rows": rows, "target": masks[TARGET_T], "entering": entering, "free_shift": free_shift}


def predictability(seed: int, video_ids, cfg, progress: bool = True) -> dict:
    """{"scores": {row: {"all", "with entering", "without entering"}}, "videos", "entering videos",
    "free bodies", "free moved share"} over the given videos."""
    from tqdm import tqdm

    from data.metric import jaccard

    results = [video_rows(seed, v, cfg) for v in tqdm(list(video_ids), desc="re-simulating", unit="video",
                                                      disable=not progress)]
    names = list(results[0]["rows"])
    targets = np.stack([r["target"] for r in results])
    entering = np.array([r["entering"] for r in results])
    scores = {}
    for name in names:
        preds = np.stack([r["rows"][name] for r in results])
        part = {"all": jaccard(preds, targets)}
        for label, sel in (("with entering", entering), ("without entering", ~entering)):
            part[label] = jaccard(preds[sel], targets[sel]) if sel.any() else float("nan")
        scores[name] = part
    shifts = np.array([s for r in results for s in r["free_shift"]])
    return {"scores": scores, "videos": len(results), "entering videos": int(entering.sum()),
            "free bodies": len(shifts), "free moved share": float((shifts > FREE_MOVE).mean()) if len(shifts) else 0.0,
            "free shift max": float(shifts.max()) if len(shifts) else 0.0}


def format_report(res: dict) -> str:
    n, e = res["videos"], res["entering videos"]
    lines = [f"{'frame-22 Jaccard':<22}{'all (' + str(n) + ')':>14}{'entering (' + str(e) + ')':>16}"
             f"{'none (' + str(n - e) + ')':>14}"]
    for name, s in res["scores"].items():
        lines.append(f"{name:<22}{s['all']:>14.4f}{s['with entering']:>16.4f}{s['without entering']:>14.4f}")
    lines.append(f"free bodies (no contact in frames 11-22): {res['free bodies']}; moved more than {FREE_MOVE} "
                 f"units at frame 22 by a {NUDGES[0]:g} nudge: {100 * res['free moved share']:.2f}% "
                 f"(largest shift {res['free shift max']:.2e})")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=3, help="dataset seed of the videos (as make_synthetic_dataset.py --seed)")
    p.add_argument("--first_id", type=int, default=0, help="id of the first video")
    p.add_argument("--videos", type=int, default=200, help="how many videos, ids first_id, first_id + 1, ...")
    p.add_argument("--world", choices=("clevr", "real", "random"), default="clevr",
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

    from data.synthetic import WORLDS
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
