"""CLEVRER-like synthetic videos in the competition's exact format.

A video is a scene of a few objects (each class at most once) on a gray floor: some stand still,
some slide with friction, collide elastically and leave the view, and some slide in from outside
the view during the video, so that frame 22 can hold objects that frame 11 does not.
Physics is 2D on the floor (every object is a circle of radius OBJECT_RADIUS, which is also a
cube's half diagonal); data/render.py draws each frame in 3D.

Every random choice of a video comes from np.random.default_rng([seed, video_id]) alone, so videos
can be made in any order, by any number of processes, and a dataset can be extended later
without touching the videos it already has.
"""
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data.classes import NUM_OBJECT_CLASSES
from data.format import (
    HEIGHT, MASK_FILE, NUM_FRAMES, SPLIT_FRAMES, SPLIT_HAS_MASK, SPLITS, WIDTH, frame_name, video_dir_name,
)
from data.render import OBJECT_RADIUS, Renderer, SceneObject

GENERATOR_VERSION = 1
MANIFEST_FILE = "synthetic_manifest.json"
_TMP_PREFIX = ".tmp_"  # half-written videos; list_videos ignores names not starting with video_


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn; the defaults are calibrated on the real videos (scripts/data_stats.py).
    Floor units: the camera stands 10 units behind the origin; an object's radius is 0.52."""

    initial_objects: tuple = (3, 5)  # objects on the floor at frame 1, uniform in [lo, hi]
    entering_objects: tuple = (0, 2)  # objects that slide in from outside the view, uniform in [lo, hi]
    max_objects: int = 7  # objects in a whole video, at most
    p_static: float = 0.45  # chance that an object on the floor at frame 1 stands still
    speed: tuple = (0.2, 0.6)  # initial speed of a moving object, floor units per frame, log-uniform
    reach: tuple = (1.2, 2.2)  # an entering object slides this many times the way to its target
    drag: float = 0.05  # share of its speed a sliding object loses per frame (CLEVRER's slow-down)
    friction: float = 0.003  # and a constant deceleration, floor units per frame^2, so that it stops
    arena_x: float = 3.5  # objects start, and entering ones aim, in |x| <= arena_x ...
    arena_y: tuple = (-3.2, 5.5)  # ... and arena_y[0] <= y <= arena_y[1] (the camera is at y = -10)
    substeps: int = 4  # physics steps per frame
    noise_std: float = 1.05  # render noise in 8-bit levels, the same in R, G and B (the real frames'
    noise_chroma: float = 0.35  # noise is 1.2-1.35 and 0.9 correlated across channels), plus a little per channel
    png_compress_level: int = 1  # zlib level of the PNGs: 1 is 4x faster than 6 ...
    png_zlib_strategy: int = 2  # ... and Huffman-only coding (Pillow's compress_type) is faster still
    # and, on noisy frames, as small as level 6 (~43 kB a frame, the real ones are ~31 kB)


# ---------------------------------------------------------------- scene and physics

@dataclass
class _Body:
    class_id: int
    pos: np.ndarray  # (2,) floor position
    vel: np.ndarray  # (2,) floor units per frame
    angle: float = 0.0
    spin: float = 0.0  # radians per frame (cubes turn a little when they collide)
    enter_frame: int = 0  # frame at which the body joins the scene
    active: bool = False
    gone: bool = False  # left the arena for good


_NEAR_LIMIT = -7.0  # floor y below which nothing is simulated (the camera stands at y = -10.1)


def _off_screen_start(rng, target, camera):
    """A start outside the view from which a body sliding straight to target comes into view."""
    heading = rng.uniform(0, 2 * np.pi)
    back = -np.array([np.cos(heading), np.sin(heading)])
    top = 2 * OBJECT_RADIUS
    for step in np.arange(0.25, 30, 0.25):
        p = target + step * back
        corners = [(p[0] + sx, p[1] + sy, z) for sx in (-OBJECT_RADIUS, OBJECT_RADIUS)
                   for sy in (-OBJECT_RADIUS, OBJECT_RADIUS) for z in (0, top)]
        if p[1] < _NEAR_LIMIT or camera.screen_box(np.array(corners), pad=0) is None:
            return p + 0.3 * back
    return p


def sample_bodies(rng, cfg: SceneConfig, n_frames: int, camera):
    """The bodies of one scene: some on the floor at frame 1 (still or sliding), some waiting
    outside the view to slide in at their enter_frame; one class each, never twice."""
    n_init = int(rng.integers(cfg.initial_objects[0], cfg.initial_objects[1] + 1))
    n_enter = int(rng.integers(cfg.entering_objects[0], cfg.entering_objects[1] + 1))
    n_enter = min(n_enter, max(cfg.max_objects - n_init, 0))
    classes = rng.choice(NUM_OBJECT_CLASSES, size=n_init + n_enter, replace=False) + 1
    ax, (y_lo, y_hi) = cfg.arena_x, cfg.arena_y
    bodies = []
    for k in range(n_init):
        for _ in range(100):  # rejection sampling of a free spot
            pos = np.array([rng.uniform(-ax, ax), rng.uniform(y_lo, y_hi)])
            if all(np.linalg.norm(pos - b.pos) > 2.3 * OBJECT_RADIUS for b in bodies):
                break
        if rng.random() < cfg.p_static:
            vel = np.zeros(2)
        else:
            heading = rng.uniform(0, 2 * np.pi)
            speed = np.exp(rng.uniform(np.log(cfg.speed[0]), np.log(cfg.speed[1])))
            vel = speed * np.array([np.cos(heading), np.sin(heading)])
        bodies.append(_Body(int(classes[k]), pos, vel, angle=rng.uniform(0, np.pi / 2)))
    for k in range(n_enter):
        # start just outside the view and slide in towards a spot of the arena: with drag d a
        # body launched at speed v slides about v / d, so v = d * distance * reach
        target = np.array([rng.uniform(-ax, ax), rng.uniform(y_lo, y_hi)])
        start = _off_screen_start(rng, target, camera)
        dist = np.linalg.norm(target - start)
        vel = (target - start) / dist * (cfg.drag * dist * rng.uniform(*cfg.reach) + 5 * cfg.friction)
        enter = int(0.8 * n_frames * rng.random() ** 1.5)  # mostly during the input frames, as in the real videos
        bodies.append(_Body(int(classes[n_init + k]), start, vel, angle=rng.uniform(0, np.pi / 2), enter_frame=enter))
    return bodies


def _step(bodies, cfg: SceneConfig, dt: float):
    live = [b for b in bodies if b.active and not b.gone]
    for b in live:
        b.pos = b.pos + b.vel * dt
        speed = np.hypot(*b.vel)
        if speed > 0:
            slower = speed * (1.0 - cfg.drag) ** dt - cfg.friction * dt
            b.vel = b.vel * (max(slower, 0.0) / speed)
        b.angle += b.spin * dt
        b.spin *= 0.97 ** dt
    # elastic collisions of equal masses: swap the velocity components along the line of centres
    r2 = 2 * OBJECT_RADIUS
    for i in range(len(live)):
        for j in range(i + 1, len(live)):
            a, b = live[i], live[j]
            delta = b.pos - a.pos
            dist = np.hypot(*delta)
            if dist >= r2 or dist == 0:
                continue
            n = delta / dist
            approach = (a.vel - b.vel) @ n
            if approach > 0:
                a.vel, b.vel = a.vel - approach * n, b.vel + approach * n
                tangent = (a.vel - b.vel) @ np.array([-n[1], n[0]])
                a.spin += 0.15 * tangent
                b.spin -= 0.15 * tangent
            push = (r2 - dist) / 2 * n  # separate overlapping bodies
            a.pos, b.pos = a.pos - push, b.pos + push
    # a body far outside the view never comes back (entering ones start within ~35 units)
    for b in live:
        if np.hypot(*b.pos) > 40 or b.pos[1] < _NEAR_LIMIT - 1:
            b.gone = True


def simulate(rng, cfg: SceneConfig, n_frames: int = NUM_FRAMES, camera=None) -> list:
    """[frame] -> list of SceneObjects: the whole motion of one video's scene."""
    bodies = sample_bodies(rng, cfg, n_frames, camera or _renderer().camera)
    frames = []
    for t in range(n_frames):
        for b in bodies:
            if b.enter_frame == t:
                # an entering body waits until its way in is free
                if all(np.linalg.norm(b.pos - o.pos) > 2 * OBJECT_RADIUS for o in bodies if o.active and not o.gone):
                    b.active = True
                else:
                    b.enter_frame += 1
        frames.append([SceneObject(b.class_id, float(b.pos[0]), float(b.pos[1]), float(b.angle))
                       for b in bodies if b.active and not b.gone])
        for _ in range(cfg.substeps):
            _step(bodies, cfg, 1.0 / cfg.substeps)
    return frames


# ---------------------------------------------------------------- videos

_RENDERER = None


def _renderer() -> Renderer:
    global _RENDERER  # one per process: the floor and the pixel rays are computed once
    if _RENDERER is None:
        _RENDERER = Renderer()
    return _RENDERER


def render_video(seed: int, video_id: int, n_frames: int = NUM_FRAMES, cfg: SceneConfig = SceneConfig()):
    """(frames (T, H, W, 3) uint8, masks (T, H, W) uint8) of video `video_id` of dataset `seed`.
    A shorter video (hidden split: 11 frames) is the start of the same full video."""
    rng = np.random.default_rng([seed, video_id])
    renderer = _renderer()
    scene = simulate(rng, cfg, NUM_FRAMES, renderer.camera)[:n_frames]
    pad = 8
    noise_tex = (rng.normal(0.0, cfg.noise_std, (HEIGHT + pad, WIDTH + pad, 1))
                 + rng.normal(0.0, cfg.noise_chroma, (HEIGHT + pad, WIDTH + pad, 3))).astype(np.float32)
    offsets = rng.integers(0, pad, size=(NUM_FRAMES, 2))
    frames = np.empty((n_frames, HEIGHT, WIDTH, 3), np.uint8)
    masks = np.empty((n_frames, HEIGHT, WIDTH), np.uint8)
    for t, objects in enumerate(scene):
        dy, dx = offsets[t]
        frames[t], masks[t] = renderer.render(objects, noise_tex[dy:dy + HEIGHT, dx:dx + WIDTH])
    return frames, masks


def write_video(split_dir: Path, video_id: int, split: str, seed: int, cfg: SceneConfig) -> bool:
    """Render and write one video atomically (temp folder, then rename). False if already there."""
    final = split_dir / video_dir_name(video_id)
    if final.exists():
        return False
    frames, masks = render_video(seed, video_id, SPLIT_FRAMES[split], cfg)
    tmp = split_dir / f"{_TMP_PREFIX}{video_dir_name(video_id)}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp / frame_name(t), format="PNG", compress_level=cfg.png_compress_level,
                                    compress_type=cfg.png_zlib_strategy)
    if SPLIT_HAS_MASK[split]:
        np.save(tmp / MASK_FILE, masks)
    os.rename(tmp, final)
    return True


# ---------------------------------------------------------------- datasets

def split_ids(counts: dict) -> dict:
    """{split: range of video ids}: train from 0, then val, unlabeled and hidden, each after the one before."""
    ids, start = {}, 0
    for split in SPLITS:
        n = int(counts.get(split, 0))
        ids[split] = range(start, start + n)
        start += n
    return ids


def _manifest(seed: int, counts: dict, cfg: SceneConfig) -> dict:
    return {
        "generator": "CLEVRER-like synthetic videos, data/synthetic.py",
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "settings": json.loads(json.dumps(asdict(cfg))),  # tuples -> lists, as read back
        "counts": {s: int(counts.get(s, 0)) for s in SPLITS},
    }


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def prepare_root(root, seed: int, counts: dict, cfg: SceneConfig = SceneConfig()) -> dict:
    """Check that `root` may receive this dataset, record it in the manifest and return the manifest.

    A new or empty folder is fine. A folder with a manifest is fine when seed and settings agree
    and the new counts only add videos without renumbering any existing one: numbering is
    sequential across splits (train, val, unlabeled, hidden), so only the last non-empty split
    may grow, and later splits may be added. Anything else is refused with the reason and the fix.
    """
    root = Path(root)
    new = _manifest(seed, counts, cfg)
    mpath = root / MANIFEST_FILE
    if mpath.exists():
        old = json.loads(mpath.read_text())
        for key in ("version", "seed", "settings"):
            if old.get(key) != new[key]:
                raise ValueError(
                    f"{root} holds a different synthetic dataset ({key}: {old.get(key)} there, "
                    f"{new[key]} asked): choose another --out, or delete {root} to replace it"
                )
        old_ids, new_ids = split_ids(old["counts"]), split_ids(new["counts"])
        for split in SPLITS:
            o, n = old_ids[split], new_ids[split]
            if len(o) and (n.start != o.start or len(n) < len(o)):
                raise ValueError(
                    f"{root} has {split} videos {o.start}..{o.stop - 1} (counts {old['counts']}); "
                    f"counts {new['counts']} would renumber or drop them. Video ids run on across "
                    f"splits, so an existing dataset can only grow its last non-empty split and add "
                    f"later ones: keep the earlier counts, or choose another --out"
                )
    elif root.exists() and any(root.iterdir()):
        raise ValueError(
            f"{root} is not empty and has no {MANIFEST_FILE}, so it is not a synthetic dataset made "
            f"here: choose another --out (a new or empty folder), or delete {root}"
        )
    root.mkdir(parents=True, exist_ok=True)
    _write_json(mpath, new)
    # clear half-written videos of an interrupted run: they are made again
    for split in SPLITS:
        split_dir = root / split
        if split_dir.is_dir():
            for p in split_dir.iterdir():
                if p.name.startswith(_TMP_PREFIX):
                    shutil.rmtree(p)
    return new


def _job(args):
    split_dir, video_id, split, seed, cfg = args
    write_video(Path(split_dir), video_id, split, seed, cfg)
    return SPLIT_FRAMES[split]


def generate_dataset(root, counts: dict, seed: int = 0, workers: int = 1, cfg: SceneConfig = SceneConfig(),
                     progress: bool = True) -> int:
    """Write (or finish, or extend) a synthetic dataset at root; returns the number of videos written."""
    root = Path(root)
    prepare_root(root, seed, counts, cfg)
    jobs = []
    for split, ids in split_ids(counts).items():
        if not len(ids):
            continue
        split_dir = root / split
        split_dir.mkdir(exist_ok=True)
        jobs += [(str(split_dir), i, split, seed, cfg) for i in ids if not (split_dir / video_dir_name(i)).exists()]
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="video", desc=f"synthetic -> {root}", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _job(job)
            bar.update()
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            for _ in pool.imap_unordered(_job, jobs, chunksize=2):
                bar.update()
    bar.close()
    return len(jobs)
