"""How predictable frame 22 is on the generator's own videos: the physical limit of forecasting.

Each video is drawn as data/synthetic.py draws it (same seed and id give the same video), then frame 22 is
re-simulated in the generator's own engine from frame 11, with only the bodies that frames 1-11 show (objects that
enter later are left out: no forecaster can know them). The rows (video_rows):
  copy 11              the true frame-11 mask as the prediction
  perfect motion       each object of frames 1-11 drawn at its true frame-22 place (no entering ones)
  re-simulated         the re-simulation from the exact frame-11 state of those bodies
  nudged EPS           the same from that state moved by up to EPS (floor units, radians, velocities relative to
                       themselves: 1e-3 is about 0.02 px)
  ceiling              the true frame 22 with classes absent from frame 11 removed
Used by scripts/analysis/predictability.py (any seed and ids, the generator's worlds) and scripts/bench/bench_field.py (the limit
rows of the field table, on the val videos of a dataset the generator made: dataset_world, limit_predictions).
"""
import json
from pathlib import Path

import numpy as np

from data.format import LAST_INPUT_INDEX as INPUT_T, TARGET_INDEX as TARGET_T  # frames 11 and 22

NUDGES = (1e-6, 1e-3)
FREE_MOVE = 0.01  # floor units: a free body moved more than this by a nudge is not smooth


def _draw(renderer, frame) -> np.ndarray:
    from data.synthetic import scene_objects

    return renderer.render(scene_objects(frame))[1]


def video_rows(seed: int, video_id: int, cfg, nudges=NUDGES) -> dict:
    """One video's masks for every row, its true masks, and its free bodies' frame-22 shifts under the first
    nudge (none without nudges)."""
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


def score_rows(results: list) -> dict:
    """{row: {"all", "with entering", "without entering"}}: the competition's score of each row of video_rows'
    results, over all videos and split by whether an object enters after frame 11 (nan for an empty part)."""
    from data.metric import jaccard

    targets = np.stack([r["target"] for r in results])
    entering = np.array([r["entering"] for r in results])
    scores = {}
    for name in results[0]["rows"]:
        preds = np.stack([r["rows"][name] for r in results])
        part = {"all": jaccard(preds, targets)}
        for label, sel in (("with entering", entering), ("without entering", ~entering)):
            part[label] = jaccard(preds[sel], targets[sel]) if sel.any() else float("nan")
        scores[name] = part
    return scores


def predictability(seed: int, video_ids, cfg, progress: bool = True, nudges=NUDGES) -> dict:
    """{"scores": {row: {"all", "with entering", "without entering"}}, "videos", "entering videos",
    "free bodies", "free moved share", "free shift max"} over the given videos."""
    from tqdm import tqdm

    results = [video_rows(seed, v, cfg, nudges) for v in tqdm(list(video_ids), desc="re-simulating", unit="video",
                                                              disable=not progress)]
    shifts = np.array([s for r in results for s in r["free_shift"]])
    return {"scores": score_rows(results), "videos": len(results),
            "entering videos": int(sum(r["entering"] for r in results)), "free bodies": len(shifts),
            "free moved share": float((shifts > FREE_MOVE).mean()) if len(shifts) else 0.0,
            "free shift max": float(shifts.max()) if len(shifts) else 0.0}


def format_report(res: dict, nudge: float = NUDGES[0]) -> str:
    n, e = res["videos"], res["entering videos"]
    lines = [f"{'frame-22 Jaccard':<22}{'all (' + str(n) + ')':>14}{'entering (' + str(e) + ')':>16}"
             f"{'none (' + str(n - e) + ')':>14}"]
    for name, s in res["scores"].items():
        lines.append(f"{name:<22}{s['all']:>14.4f}{s['with entering']:>16.4f}{s['without entering']:>14.4f}")
    lines.append(f"free bodies (no contact in frames 11-22): {res['free bodies']}; moved more than {FREE_MOVE} "
                 f"units at frame 22 by a {nudge:g} nudge: {100 * res['free moved share']:.2f}% "
                 f"(largest shift {res['free shift max']:.2e})")
    return "\n".join(lines)


# ---------------------------------------------------------------- a generator dataset's own videos

def dataset_world(root) -> tuple:
    """(seed, SceneConfig, world name or "custom") of a dataset the generator made at root, read from its manifest,
    so that its videos can be drawn again; raises ValueError saying why when they cannot be (no manifest: not made
    by the generator; another generator version; settings this checkout cannot rebuild)."""
    from data.synthetic import GENERATOR_VERSION, MANIFEST_FILE, WORLDS, config_from_settings

    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise ValueError(f"{root} has no {MANIFEST_FILE}: not a dataset of data/synthetic.py, its videos cannot be "
                         f"drawn again")
    manifest = json.loads(path.read_text())
    if manifest.get("version") != GENERATOR_VERSION:
        raise ValueError(f"{root} was made by generator version {manifest.get('version')}, this checkout's is "
                         f"{GENERATOR_VERSION}: its videos cannot be drawn again here")
    try:
        cfg = config_from_settings(manifest.get("settings"))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}: its videos cannot be drawn again here") from None
    name = next((k for k, w in WORLDS.items() if w == cfg), "custom")
    return int(manifest["seed"]), cfg, name


def limit_predictions(root, split: str = "val", nudges=(1e-3,), progress: bool = True) -> dict:
    """The limit rows on the videos of ROOT/SPLIT (a dataset the generator made: dataset_world), each drawn again
    from the manifest's seed and its own id: {"rows": {row: [frame-22 mask (H, W)] in the split's video order},
    "video_ids", "world", "seed", "entering videos"}. Raises ValueError when a video drawn again differs from the
    stored one in frame 11 or 22: the rows would then score other videos than the split's."""
    from tqdm import tqdm

    from data.pseudo_labels import TrueMaskVideos

    seed, cfg, world = dataset_world(root)
    videos = TrueMaskVideos(root, split)
    rows, entering = {}, 0
    for i in tqdm(range(len(videos)), desc=f"re-simulating {split}", unit="video", disable=not progress):
        stored = videos[i]["masks"].numpy()
        video_id = videos.video_ids[i]
        res = video_rows(seed, video_id, cfg, nudges)
        for t, drawn in ((INPUT_T, res["rows"]["copy 11"]), (TARGET_T, res["target"])):
            if not np.array_equal(drawn, stored[t]):
                raise ValueError(
                    f"{root}/{split} video {video_id}: frame {t + 1} drawn again from seed {seed} and id {video_id} "
                    f"({world} world) differs from the stored mask in {int((drawn != stored[t]).sum())} pixels: "
                    f"the dataset was not made by this generator as its manifest says")
        for name, mask in res["rows"].items():
            rows.setdefault(name, []).append(mask)
        entering += res["entering"]
    return {"rows": rows, "video_ids": list(videos.video_ids), "world": world, "seed": seed,
            "entering videos": entering}
