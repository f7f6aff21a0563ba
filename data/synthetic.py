"""CLEVRER-like synthetic videos in the competition's exact format.

A video is a scene of a few objects (each class at most once) on a gray floor. Most objects on
the floor at frame 1 stand still; the others are launched, mostly at a still one, and more slide
in from outside the view during the video, so that frame 22 can hold objects that frame 11 does
not. The motion is rigid-body physics (data/physics.py: Bullet, with friction, rolling spheres and
3D collisions); data/render.py draws each frame.

Every random choice of a video comes from np.random.default_rng([seed, video_id]) alone, and the
simulation is deterministic, so videos can be made in any order, by any number of processes, and
a dataset can be extended later without touching the videos it already has.
"""
import dataclasses
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data.classes import NUM_OBJECT_CLASSES
from engine.io import atomic_write
from data.format import (
    HEIGHT, MASK_FILE, NUM_FRAMES, SPLIT_FRAMES, SPLIT_HAS_MASK, SPLITS, WIDTH, frame_name, video_dir_name,
)
from data.physics import NEAR_LIMIT, Body, Physics, launch_speed, simulate_bodies
from data.render import Camera, CameraSpec, Looks, ObjectSizes, Renderer, SceneObject

GENERATOR_VERSION = 2  # raise it whenever the same (seed, id) would draw another video
_VERSIONS = {1: "2D discs exchanging velocities", 2: "rigid-body physics in Bullet"}
MANIFEST_FILE = "synthetic_manifest.json"
_TMP_PREFIX = ".tmp_"  # half-written videos; list_videos ignores names not starting with video_


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn (the field defaults: the "clevr" world of WORLDS below; the generator draws
    WORLDS[DEFAULT_WORLD] unless told otherwise). Floor units: the
    camera stands 10 units behind the origin; CLEVR's objects have a radius of 0.52. Speeds are
    floor units per frame."""

    initial_objects: tuple = (2, 4)  # objects on the floor at frame 1, uniform in [lo, hi]
    entering_objects: tuple = (1, 3)  # objects that slide in from outside the view, uniform in [lo, hi]
    max_objects: int = 7  # objects in a whole video, at most
    p_static: float = 0.65  # chance that an object on the floor at frame 1 stands still
    p_aim: float = 0.9  # chance that a launched object is aimed at a still one (else at a free spot)
    aim_jitter: float = 0.25  # radians of spread around the aim: glancing hits as well as head-on ones
    arrival_speed: tuple = (0.2, 0.45)  # speed left when a launched object reaches its aim, uniform
    arena_x: float = 3.5  # objects start, and launched ones aim, in |x| <= arena_x ...
    arena_y: tuple = (-3.5, 5.0)  # ... and arena_y[0] <= y <= arena_y[1] (the camera is at y = -10)
    # how y is drawn in arena_y: arena_y[0] + (arena_y[1] - arena_y[0]) u ** arena_near, u uniform; 1 is
    # uniform on the floor (which crowds the far, compressed top rows of the picture), above 1 puts objects
    # nearer the camera more often, as the real scenes do (their median object stands 9 rows lower)
    arena_near: float = 1.0
    enter_by: float = 0.6  # entering objects start before this share of the video ...
    enter_power: float = 1.5  # ... at enter_by x frames x u ** enter_power, u uniform: mostly early
    physics: Physics = Physics()  # the rigid-body engine's settings (data/physics.py)
    camera: CameraSpec = CameraSpec()  # the camera (data/render.py)
    sizes: ObjectSizes = ObjectSizes()  # each shape's dimensions (data/render.py)
    looks: Looks = Looks()  # the surfaces' shading beyond their color (data/render.py)
    noise_std: float = 1.05  # render noise in 8-bit levels, the same in R, G and B (the real frames'
    noise_chroma: float = 0.35  # noise is 1.2-1.35 and 0.9 correlated across channels), plus a little per channel
    # > 0: each video draws its own world around this one (randomized_world): camera, sizes, the
    # floor's friction and drag, bounce, densities, launches, entry times and noise; 1 is the
    # spread of the "random" world, 0 draws every video in this very world
    randomize: float = 0.0
    png_compress_level: int = 1  # zlib level of the PNGs: 1 is 4x faster than 6 ...
    png_zlib_strategy: int = 2  # ... and Huffman-only coding (Pillow's compress_type) is faster still
    # and, on noisy frames, as small as level 6 (~43 kB a frame, the real ones are ~31 kB)


# The worlds the generator draws (make_synthetic_dataset.py --world):
#  - "clevr": CLEVR's camera and one size for all shapes, Bullet's floor; the videos of generator
#    version 2, and the default until the real world matched the real videos' statistics;
#  - "real": the camera and each shape's dimensions fitted on the real videos' masks
#    (scripts/analysis/fit_camera.py), the smooth floor (data/physics.py: free motion is not chaotic), its
#    friction, drag, bounce and the scene script's launches calibrated on the real videos' tracks
#    (scripts/analysis/data_stats.py), and an arena that puts objects at the real rows, more of them near the
#    camera (arena_near), as in the real scenes; the clevr world's look, with rounded edges (Looks).
WORLDS = {
    "clevr": SceneConfig(),
    "real": SceneConfig(
        # most objects on the floor at frame 1 stand still until something hits them, as in the real videos
        p_static=0.75,
        # the arena: the floor strip that puts objects at the real objects' rows, more of them near the camera
        # (arena_near). Its near edge sets how low in the picture the nearest objects stand, its far edge how
        # high the farthest: farther back, on the compressed top rows, objects crowd and hide each other more
        # often than the real ones do, and look smaller than the real objects' sizes and areas
        arena_x=3.0, arena_y=(-2.4, 3.9), arena_near=1.25,
        # entering objects start in the first 60% of the video: late enough that as many videos as in the real
        # set show an object at frame 22 that frame 11 did not, early enough that most of them still reach the
        # still object they are aimed at within the video (the real share of still objects set moving)
        enter_by=0.6,
        # the floor's friction, drag and bounce set on the real tracks' speeds, slow-down and hits
        physics=Physics(floor="smooth", floor_friction=0.12, drag=0.45, restitution=0.9),
        camera=CameraSpec(height=4.977, distance=10.1, hfov_deg=42.69, look_y=-0.467),  # fitted on the real masks
        # fitted on the real masks (fit_camera.py), but the sphere 3% above its fit, within the fit's error:
        # drawn at the fitted radius, spheres come out smaller than the real ones at every row of the size line
        sizes=ObjectSizes(cube_half=0.3583, sphere_radius=0.3842, cylinder_radius=0.3841, cylinder_height=0.7209),
        # the clevr look with the real objects' rounded edges (they catch the light along a cube's edges and
        # a cylinder's rim). The metal look Looks(bevel=0.04, sky=(0.08, 0.30), sky_key=-0.3, gloss=0.7)
        # brings metal's brightness within 6-11 levels of the real objects' (15-24 without;
        # scripts/analysis/compare_frames.py --crops_out), but a U-Net trained on it gave 23% of the real val objects
        # the wrong shape (real metal cylinders became cubes) against 7% with this look (README:
        # "Sim-to-real by world")
        looks=Looks(bevel=0.04),
    ),
}
#  - "random": every video in a world of its own, drawn around "real" (randomized_world), so that
#    what is learned on it does not hang on one camera, one friction or one set of sizes.
WORLDS["random"] = dataclasses.replace(WORLDS["real"], randomize=1.0)
# The world the generator draws unless told otherwise (make_synthetic_dataset.py --world). SceneConfig's own
# field defaults stay the clevr world's: a manifest written before a setting existed reads back with them.
DEFAULT_WORLD = "real"


def randomized_world(cfg: SceneConfig, rng) -> SceneConfig:
    """A world drawn around cfg, with spreads scaled by cfg.randomize: the camera (height and field
    of view +-15%, aim +-0.5 units), each shape's dimensions (+-15%, independently), the floor's
    friction (x 0.5..2) and drag (x 0.5..1.5), bounce (0.6..0.95), each material's density (metal
    1..3, rubber 0.5..1.5), launch speeds (x 0.7..1.3), how late objects enter (x 0.7..1.3) and the
    noise (x 0.5..2). The result has randomize 0: it is one world."""
    k = cfg.randomize

    def scale(lo, hi):  # a factor in [1 - k (1 - lo), 1 + k (hi - 1)], log-uniform
        return float(np.exp(rng.uniform(np.log(1 - k * (1 - lo)), np.log(1 + k * (hi - 1)))))

    def around(value, lo, hi):  # a value drawn between value + k (lo - value) and value + k (hi - value)
        return float(value + k * rng.uniform(lo - value, hi - value))

    cam, sz, ph = cfg.camera, cfg.sizes, cfg.physics
    camera = dataclasses.replace(cam, height=cam.height * scale(0.85, 1.15), hfov_deg=cam.hfov_deg * scale(0.85, 1.15),
                                 look_y=cam.look_y + k * rng.uniform(-0.5, 0.5))
    sizes = ObjectSizes(*(v * scale(0.85, 1.15) for v in dataclasses.astuple(sz)))
    physics = dataclasses.replace(ph, floor_friction=ph.floor_mu * scale(0.5, 2.0), drag=ph.drag * scale(0.5, 1.5),
                                  restitution=around(ph.restitution, 0.6, 0.95),
                                  density=(around(ph.density[0], 1.0, 3.0), around(ph.density[1], 0.5, 1.5)))
    launch = scale(0.7, 1.3)
    return dataclasses.replace(cfg, camera=camera, sizes=sizes, physics=physics, randomize=0.0,
                               arrival_speed=tuple(launch * v for v in cfg.arrival_speed),
                               enter_by=min(cfg.enter_by * scale(0.7, 1.3), 0.9), noise_std=cfg.noise_std * scale(0.5, 2.0))


def video_config(cfg: SceneConfig, seed: int, video_id: int) -> SceneConfig:
    """The world video `video_id` of dataset `seed` is drawn in: cfg itself, or with cfg.randomize
    > 0 its own world, from (seed, video_id) alone (a stream apart from the scene's)."""
    if cfg.randomize <= 0:
        return cfg
    return randomized_world(cfg, np.random.default_rng([seed, video_id, 1]))


# ---------------------------------------------------------------- scene script

def _off_screen_start(rng, target, camera, heading, sizes: ObjectSizes):
    """A start outside the view from which a body sliding along heading to target comes into view."""
    back = -np.array([np.cos(heading), np.sin(heading)])
    top, r = max(sizes.top(s) for s in ("cube", "sphere", "cylinder")), sizes.max_reach
    for step in np.arange(0.25, 30, 0.25):
        p = target + step * back
        corners = [(p[0] + sx, p[1] + sy, z) for sx in (-r, r) for sy in (-r, r) for z in (0, top)]
        if p[1] < NEAR_LIMIT or camera.screen_box(np.array(corners), pad=0) is None:
            return p + 0.3 * back
    return p


def _launch(rng, cfg: SceneConfig, start, aim) -> np.ndarray:
    """The velocity that brings a body from start to aim with arrival_speed left under the floor's
    friction (data/physics.py: launch_speed), spread by aim_jitter."""
    delta = aim - start
    dist = float(np.hypot(*delta))
    speed = launch_speed(dist, rng.uniform(*cfg.arrival_speed), cfg.physics)
    heading = np.arctan2(delta[1], delta[0]) + rng.uniform(-cfg.aim_jitter, cfg.aim_jitter)
    return speed * np.array([np.cos(heading), np.sin(heading)])


def sample_bodies(rng, cfg: SceneConfig, n_frames: int, camera) -> list:
    """The bodies of one scene: some on the floor at frame 1, most of them still, and the rest
    launched; more slide in from outside the view later. Launched bodies are mostly aimed at a
    still one, as in the real videos, where most still objects get hit. One class each, never twice."""
    n_init = int(rng.integers(cfg.initial_objects[0], cfg.initial_objects[1] + 1))
    n_enter = int(rng.integers(cfg.entering_objects[0], cfg.entering_objects[1] + 1))
    n_enter = min(n_enter, max(cfg.max_objects - n_init, 0))
    classes = rng.choice(NUM_OBJECT_CLASSES, size=n_init + n_enter, replace=False) + 1
    ax, (y_lo, y_hi) = cfg.arena_x, cfg.arena_y

    def spot():
        x = rng.uniform(-ax, ax)
        if cfg.arena_near == 1.0:  # the clevr world's draw, bit for bit
            return np.array([x, rng.uniform(y_lo, y_hi)])
        return np.array([x, y_lo + (y_hi - y_lo) * rng.random() ** cfg.arena_near])

    def aim(exclude=None):
        still = [b.pos for b in bodies if not b.vel.any() and b is not exclude]
        if still and rng.random() < cfg.p_aim:
            return still[int(rng.integers(len(still)))]
        return spot()

    bodies = []
    for k in range(n_init):
        for _ in range(100):  # rejection sampling of a free spot
            pos = spot()
            if all(np.hypot(*(pos - b.pos)) > 2.3 * cfg.sizes.max_reach for b in bodies):
                break
        bodies.append(Body(int(classes[k]), pos, np.zeros(2), angle=rng.uniform(0, np.pi / 2)))
    movers = [b for b in bodies if rng.random() >= cfg.p_static]
    for b in movers:  # launched after all are placed, so that they can aim at any still one
        b.vel = _launch(rng, cfg, b.pos, aim(exclude=b))
    for k in range(n_enter):
        target = aim()
        heading = rng.uniform(0, 2 * np.pi)
        start = _off_screen_start(rng, target, camera, heading, cfg.sizes)
        enter = int(cfg.enter_by * n_frames * rng.random() ** cfg.enter_power)
        bodies.append(Body(int(classes[n_init + k]), start, _launch(rng, cfg, start, target),
                           angle=rng.uniform(0, np.pi / 2), enter_frame=enter))
    return bodies


def scene_objects(bodies) -> list:
    """[(class_id, x, y, yaw)] of one frame (simulate_bodies) -> SceneObjects to draw, rounded far below a
    pixel: a resting body's float noise must not defeat the renderer's per-object cache, which reuses
    what did not move."""
    return [SceneObject(c, round(x, 4), round(y, 4), round(a, 4)) for c, x, y, a in bodies]


def simulate(rng, cfg: SceneConfig, n_frames: int = NUM_FRAMES, camera=None) -> list:
    """[frame] -> list of SceneObjects: the whole motion of one video's scene."""
    bodies = sample_bodies(rng, cfg, n_frames, camera or renderer_for(cfg).camera)
    frames = []
    for objects in simulate_bodies(bodies, n_frames, cfg.physics, cfg.sizes):
        frames.append(scene_objects(objects))
    return frames


# ---------------------------------------------------------------- videos

_RENDERERS = {}


def renderer_for(cfg: SceneConfig) -> Renderer:
    """The renderer of cfg's camera, sizes and looks; one per process and setting (the floor and the
    pixel rays are computed once)."""
    key = (cfg.camera, cfg.sizes, cfg.looks)
    if key not in _RENDERERS:
        if len(_RENDERERS) >= 8:  # randomized worlds: a camera per video, so keep only the newest few
            _RENDERERS.pop(next(iter(_RENDERERS)))
        _RENDERERS[key] = Renderer(Camera(cfg.camera), cfg.sizes, cfg.looks)
    return _RENDERERS[key]


def render_video(seed: int, video_id: int, n_frames: int = NUM_FRAMES, cfg: SceneConfig = WORLDS[DEFAULT_WORLD]):
    """(frames (T, H, W, 3) uint8, masks (T, H, W) uint8) of video `video_id` of dataset `seed`.
    A shorter video (hidden split: 11 frames) is the start of the same full video."""
    rng = np.random.default_rng([seed, video_id])
    cfg = video_config(cfg, seed, video_id)
    renderer = renderer_for(cfg)
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


def config_from_settings(settings: dict, template=None):
    """The SceneConfig (or, with `template`, the dataclass in it) a manifest's settings describe. A setting an
    older manifest lacks (the generator gained it since) takes its default, the value that draws as before; one
    this checkout does not know raises ValueError. JSON gave tuples back as lists: they are tuples again."""
    template = SceneConfig() if template is None else template
    names = {f.name for f in dataclasses.fields(template)}
    if not isinstance(settings, dict) or set(settings) - names:
        raise ValueError(f"settings this checkout's {type(template).__name__} does not know: "
                         f"{sorted(set(settings) - names) if isinstance(settings, dict) else settings!r}")

    def value(default, v):
        if dataclasses.is_dataclass(default):
            return config_from_settings(v, default)
        return tuple(value(None, x) for x in v) if isinstance(v, list) else v

    return dataclasses.replace(template, **{k: value(getattr(template, k), v) for k, v in settings.items()})


def prepare_root(root, seed: int, counts: dict, cfg: SceneConfig = WORLDS[DEFAULT_WORLD]) -> dict:
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
        try:
            old = json.loads(mpath.read_text())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{mpath} is unreadable ({e}): it is not the manifest this generator writes. "
                             f"Choose another --out, or delete {root} and make it again") from None
        if old.get("version") != GENERATOR_VERSION:
            raise ValueError(
                f"{root} was made by generator version {old.get('version')}; this is version "
                f"{GENERATOR_VERSION} ({_VERSIONS.get(GENERATOR_VERSION)}), and one dataset cannot mix "
                f"videos of both: write the new dataset to another --out, or delete {root} and make it "
                f"again (to extend the old one, use a checkout whose data/synthetic.py has "
                f"GENERATOR_VERSION = {old.get('version')})"
            )
        try:
            same = {"seed": old.get("seed") == new["seed"], "settings": config_from_settings(old.get("settings")) == cfg}
        except (ValueError, TypeError):
            same = {"seed": old.get("seed") == new["seed"], "settings": False}
        for key in ("seed", "settings"):
            if not same[key]:
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
    atomic_write(mpath, lambda f: f.write((json.dumps(new, indent=2) + "\n").encode()))
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


def generate_dataset(root, counts: dict, seed: int = 0, workers: int = 1, cfg: SceneConfig = WORLDS[DEFAULT_WORLD],
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
