"""The synthetic generator: exact layout, determinism, per-video independence, refusals, and that
what it draws agrees with its masks (colors, occlusion, objects entering the view)."""
import hashlib
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.classes import COLORS, class_id, class_parts
from data.format import HEIGHT, MASK_FILE, NUM_FRAMES, NUM_INPUT_FRAMES, WIDTH, frame_name, list_videos
from data.render import Looks, Renderer, SceneObject, albedo
from data.synthetic import (
    MANIFEST_FILE, WORLDS, SceneConfig, generate_dataset, render_video, sample_bodies, simulate, split_ids,
    video_config,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_synthetic_dataset.py"


def run_cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True, text=True)


def file_digests(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE}


def pixels(video_dir: Path, n: int) -> np.ndarray:
    return np.stack([np.array(Image.open(video_dir / frame_name(t))) for t in range(n)])


# ---------------------------------------------------------------- layout

def test_layout_and_naming(tiny_root):
    """--train 2 --val 2 --unlabeled 2 --hidden 2: exact folders and files, numbered across splits."""
    expected = {"train": [0, 1], "val": [2, 3], "unlabeled": [4, 5], "hidden": [6, 7]}
    assert sorted(p.name for p in tiny_root.iterdir()) == sorted(list(expected) + [MANIFEST_FILE])
    for split, ids in expected.items():
        videos = list_videos(tiny_root / split)
        assert [i for i, _ in videos] == ids
        assert sorted(p.name for p in (tiny_root / split).iterdir()) == [f"video_{i}" for i in ids]
        n_frames = NUM_INPUT_FRAMES if split == "hidden" else NUM_FRAMES
        files = {frame_name(t) for t in range(n_frames)}
        if split in ("train", "val"):
            files.add(MASK_FILE)
        for _, video in videos:
            assert {p.name for p in video.iterdir()} == files, video
            img = Image.open(video / frame_name(0))
            assert (img.mode, img.size) == ("RGB", (WIDTH, HEIGHT))
            if MASK_FILE in files:
                mask = np.load(video / MASK_FILE)
                assert mask.dtype == np.uint8 and mask.shape == (NUM_FRAMES, HEIGHT, WIDTH)
                assert mask.max() <= 48 and (mask > 0).any()


def test_split_ids_follow_the_real_numbering():
    ids = split_ids({"train": 1000, "val": 1000, "unlabeled": 13000, "hidden": 2000})
    assert (ids["val"].start, ids["unlabeled"].start, ids["hidden"].start, ids["hidden"].stop) == (1000, 2000, 15000, 17000)


def test_cli_runs_from_its_own_folder_and_documents_flags():
    result = run_cli("--help", cwd=REPO / "scripts")
    assert result.returncode == 0, result.stderr
    for flag in ("--out", "--train", "--val", "--unlabeled", "--hidden", "--seed", "--num_workers", "--world"):
        assert flag in result.stdout


# ---------------------------------------------------------------- determinism and independence

def test_same_seed_same_bytes_different_seed_differs(tiny_root, tmp_path):
    """Same seed, other worker count: identical mask bytes and frame pixels; another seed differs."""
    again = tmp_path / "again"
    generate_dataset(again, {"train": 2, "val": 1}, seed=0, workers=2, progress=False)
    for split, vid in (("train", 0), ("train", 1), ("val", 2)):
        a, b = tiny_root / split / f"video_{vid}", again / split / f"video_{vid}"
        assert (a / MASK_FILE).read_bytes() == (b / MASK_FILE).read_bytes()
        assert np.array_equal(pixels(a, NUM_FRAMES), pixels(b, NUM_FRAMES))
    other = tmp_path / "other"
    generate_dataset(other, {"train": 1}, seed=1, progress=False)
    assert (other / "train/video_0" / MASK_FILE).read_bytes() != (tiny_root / "train/video_0" / MASK_FILE).read_bytes()


def test_hidden_video_is_the_start_of_the_same_full_video():
    frames11, masks11 = render_video(3, 17, NUM_INPUT_FRAMES)
    frames22, masks22 = render_video(3, 17)
    assert np.array_equal(frames11, frames22[:NUM_INPUT_FRAMES]) and np.array_equal(masks11, masks22[:NUM_INPUT_FRAMES])


def test_extension_leaves_existing_videos_unchanged(tmp_path):
    root = tmp_path / "root"
    generate_dataset(root, {"train": 2, "val": 1}, seed=5, progress=False)
    before = file_digests(root)
    written = generate_dataset(root, {"train": 2, "val": 2, "unlabeled": 1, "hidden": 1}, seed=5, progress=False)
    assert written == 3
    after = file_digests(root)
    assert {k: after[k] for k in before} == before
    assert json.loads((root / MANIFEST_FILE).read_text())["counts"] == {"train": 2, "val": 2, "unlabeled": 1, "hidden": 1}
    # a video depends on (seed, id) alone: the extension's video_3 is what a direct render gives
    _, masks = render_video(5, 3)
    assert np.array_equal(np.load(root / "val/video_3" / MASK_FILE), masks)


def test_refuses_renumbering_shrinking_and_other_datasets(tmp_path):
    root = tmp_path / "root"
    generate_dataset(root, {"train": 1, "val": 1}, seed=0, progress=False)
    with pytest.raises(ValueError, match="renumber"):  # more train videos would shift val's ids
        generate_dataset(root, {"train": 2, "val": 1}, seed=0, progress=False)
    with pytest.raises(ValueError, match="renumber or drop"):
        generate_dataset(root, {"train": 1}, seed=0, progress=False)
    with pytest.raises(ValueError, match="different synthetic dataset.*seed"):
        generate_dataset(root, {"train": 1, "val": 1}, seed=1, progress=False)
    with pytest.raises(ValueError, match="different synthetic dataset.*settings"):
        generate_dataset(root, {"train": 1, "val": 1}, seed=0, cfg=SceneConfig(p_static=0.9), progress=False)
    foreign = tmp_path / "foreign"
    (foreign / "train").mkdir(parents=True)
    result = run_cli("--out", foreign, "--train", 1, "--val", 0, "--unlabeled", 0, "--hidden", 0)
    assert result.returncode != 0
    assert str(foreign) in result.stderr and "no synthetic_manifest.json" in result.stderr


def test_a_manifest_older_than_a_setting_extends_when_the_setting_is_its_default(tmp_path):
    """Settings the generator gained since a dataset was made (arena_near, looks, ...) count as their defaults,
    which draw the videos as before: the dataset extends; a world that sets them otherwise is refused. (The
    clevr world: SceneConfig's field defaults, the world such older datasets were drawn in.)"""
    root = tmp_path / "root"
    generate_dataset(root, {"train": 1}, seed=0, cfg=SceneConfig(), progress=False)
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    del manifest["settings"]["arena_near"], manifest["settings"]["looks"]
    (root / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert generate_dataset(root, {"train": 2}, seed=0, cfg=SceneConfig(), progress=False) == 1
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    del manifest["settings"]["arena_near"]
    (root / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="different synthetic dataset.*settings"):
        generate_dataset(root, {"train": 3}, seed=0, cfg=SceneConfig(arena_near=1.25), progress=False)


def test_refuses_to_extend_a_dataset_of_an_older_generator_version(tmp_path):
    root = tmp_path / "root"
    generate_dataset(root, {"train": 1}, seed=0, progress=False)
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    manifest["version"] = 1  # as the 2D-disc generator wrote it
    (root / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"made by generator version 1; this is version 2.*another --out.*delete"):
        generate_dataset(root, {"train": 2}, seed=0, progress=False)
    assert [i for i, _ in list_videos(root / "train")] == [0]  # nothing was added


def test_a_corrupt_manifest_is_a_one_line_error_naming_it(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / MANIFEST_FILE).write_text("{half a manifest")
    result = run_cli("--out", root, "--train", 1, "--val", 0, "--unlabeled", 0, "--hidden", 0)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(root / MANIFEST_FILE) in lines[0] and "another --out" in lines[0]


def test_rerun_finishes_an_interrupted_generation(tmp_path):
    root = tmp_path / "root"
    generate_dataset(root, {"train": 2}, seed=0, progress=False)
    done = (root / "train/video_1" / MASK_FILE).read_bytes()
    # a crash mid-video leaves only a temp folder, never a video_N that looks complete
    video = root / "train/video_1"
    video.rename(root / "train/.tmp_video_1_999")
    (root / "train/.tmp_video_1_999" / "image_21.png").unlink()
    assert [i for i, _ in list_videos(root / "train")] == [0]
    assert generate_dataset(root, {"train": 2}, seed=0, progress=False) == 1
    assert sorted(p.name for p in (root / "train").iterdir()) == ["video_0", "video_1"]
    assert (video / MASK_FILE).read_bytes() == done


# ---------------------------------------------------------------- what is drawn

def _nearest_color(mean_rgb) -> str:
    """The CLEVR color whose (tone-mapped) RGB has the direction closest to mean_rgb's."""
    v = np.asarray(mean_rgb, np.float64)
    v /= np.linalg.norm(v)
    refs = {c: albedo(c) / np.linalg.norm(albedo(c)) for c in COLORS}
    return max(refs, key=lambda c: float(refs[c] @ v))


def test_masks_agree_with_rendered_colors():
    checked = 0
    for vid in range(4):
        frames, masks = render_video(0, vid, 4)
        for t in range(0, 4, 3):
            for cid in np.unique(masks[t])[1:]:
                inside = masks[t] == cid
                # keep pixels whose 4 neighbours are in the mask too: edges blend with the floor
                core = inside.copy()
                core[1:] &= inside[:-1]
                core[:-1] &= inside[1:]
                core[:, 1:] &= inside[:, :-1]
                core[:, :-1] &= inside[:, 1:]
                if core.sum() < 30:
                    continue
                mean = frames[t][core].mean(0)
                assert _nearest_color(mean) == class_parts(int(cid))[2], (vid, t, cid, mean)
                checked += 1
    assert checked >= 10


def test_nearer_object_hides_farther_one():
    renderer = Renderer()
    far = SceneObject(class_id("sphere", "rubber", "red"), 0.0, 2.0)
    near = SceneObject(class_id("cube", "metal", "blue"), 0.1, 0.6, 0.3)  # in front, on the camera's line
    _, m_far = renderer.render([far])
    _, m_near = renderer.render([near])
    overlap = (m_far > 0) & (m_near > 0)
    assert overlap.sum() > 50
    for order in ([far, near], [near, far]):
        _, mask = renderer.render(order)
        assert (mask[overlap] == near.class_id).all()
        assert (mask == far.class_id).sum() == ((m_far > 0) & ~overlap).sum()


def test_rounded_edges_change_the_shading_only_and_light_the_edges():
    """Looks.bevel: the mask is the sharp-edged one, normals are the faces' own away from the edges, and
    the top-front edge of a metal cube (turned to the camera) catches more light than its faces."""
    sharp, rounded = Renderer(), Renderer(looks=Looks(bevel=0.06))
    cube = SceneObject(class_id("cube", "metal", "gray"), 0.0, 0.0, 0.0)
    img0, m0 = sharp.render([cube])
    img1, m1 = rounded.render([cube])
    assert np.array_equal(m0, m1) and not np.array_equal(img0, img1)
    half = rounded.sizes.cube_half
    face = np.array([[0.1, -half, half], [0.0, 0.0, 2 * half]])  # front face and top centre
    n = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(rounded.bevel_normals(cube, face, n), n)
    edge = rounded.bevel_normals(cube, np.array([[0.0, -half, 2 * half]]), n[:1])[0]
    assert np.allclose(edge, [0.0, -np.sqrt(0.5), np.sqrt(0.5)])
    # down the middle column, the edge between the top and the front face is brighter than either face
    ys, xs = np.nonzero(m1 == cube.class_id)
    col = int(round(xs.mean()))
    rows = slice(ys[xs == col].min(), ys[xs == col].max() + 1)
    assert img1[rows, col].astype(float).mean(1).max() > img0[rows, col].astype(float).mean(1).max() + 3
    cyl = SceneObject(class_id("cylinder", "rubber", "blue"), 0.5, 1.0)
    assert np.array_equal(sharp.render([cyl])[1], rounded.render([cyl])[1])


def test_the_clevr_world_keeps_its_look_and_placement():
    """The defaults of the real world's new parameters are the clevr world's (its videos stay those of
    generator version 2); arena_near above 1 puts objects nearer the camera than a uniform draw."""
    assert WORLDS["clevr"].looks == Looks() and WORLDS["clevr"].arena_near == 1.0
    assert Looks() == Looks(bevel=0.0, sky=(0.12, 0.50), sky_key=0.22, gloss=1.0)
    renderer = Renderer()

    def mean_y(cfg):
        ys = [b.pos[1] for vid in range(60)
              for b in sample_bodies(np.random.default_rng([0, vid]), cfg, NUM_FRAMES, renderer.camera) if b.enter_frame == 0]
        return np.mean(ys)

    assert mean_y(SceneConfig(arena_near=1.5)) < mean_y(SceneConfig()) - 0.4


def test_each_class_at_most_once_per_video():
    renderer = Renderer()
    for vid in range(200):
        bodies = sample_bodies(np.random.default_rng([0, vid]), SceneConfig(), NUM_FRAMES, renderer.camera)
        classes = [b.class_id for b in bodies]
        assert len(classes) == len(set(classes)) and all(1 <= c <= 48 for c in classes)
    for vid in range(5):
        for objects in simulate(np.random.default_rng([1, vid]), SceneConfig()):
            ids = [o.class_id for o in objects]
            assert len(ids) == len(set(ids))


def test_objects_enter_the_view_between_frames_11_and_22():
    entered = 0
    for vid in range(12):
        _, masks = render_video(0, vid)
        entered += bool(set(np.unique(masks[21])) - set(np.unique(masks[10])))
    assert entered >= 1


def test_the_real_world_is_recorded_deterministic_and_its_own(tmp_path):
    """--world real writes its settings (camera, sizes, the smooth floor) into the manifest, draws the same
    bytes again for the same (seed, id), and draws other videos than the default world."""
    out = tmp_path / "real"
    result = run_cli("--out", out, "--train", 1, "--val", 0, "--unlabeled", 0, "--hidden", 0, "--world", "real",
                     "--num_workers", 1)
    assert result.returncode == 0, result.stderr
    settings = json.loads((out / MANIFEST_FILE).read_text())["settings"]
    assert settings["physics"]["floor"] == "smooth" and settings["camera"] == asdict(WORLDS["real"].camera)
    frames, masks = render_video(0, 0, NUM_FRAMES, WORLDS["real"])
    assert np.array_equal(np.load(out / "train" / "video_0" / MASK_FILE), masks)
    assert np.array_equal(render_video(0, 0, NUM_FRAMES, WORLDS["real"])[0], frames)
    assert not np.array_equal(render_video(0, 0, NUM_FRAMES, WORLDS["clevr"])[1], masks)


def test_randomized_worlds_are_deterministic_per_video_and_differ_between_videos():
    cfg = WORLDS["random"]
    one, again, other = video_config(cfg, 0, 5), video_config(cfg, 0, 5), video_config(cfg, 0, 6)
    assert one == again and one.randomize == 0
    assert one.camera != other.camera and one.sizes != other.sizes and one.physics != other.physics
    assert video_config(cfg, 1, 5) != one  # another dataset seed, another world
    assert video_config(WORLDS["real"], 0, 5) is WORLDS["real"]  # no spread: the world itself
    base = WORLDS["real"]
    assert 0.8 * base.camera.hfov_deg < one.camera.hfov_deg < 1.2 * base.camera.hfov_deg
    frames, masks = render_video(0, 5, NUM_FRAMES, cfg)
    again_frames, again_masks = render_video(0, 5, NUM_FRAMES, cfg)
    assert np.array_equal(frames, again_frames) and np.array_equal(masks, again_masks)
