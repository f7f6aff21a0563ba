"""scripts/analysis/compare_frames.py: object crops per shape and material, side by side."""
import numpy as np
from conftest import load_script
from data.synthetic import WORLDS, render_video


def test_crops_are_whole_objects_matched_by_shape_material_and_row():
    mod = load_script("scripts/analysis/compare_frames.py")
    videos = [render_video(0, i, cfg=WORLDS["real"]) for i in range(3)]
    crops = mod.object_crops(videos)
    assert crops and all(c[3].shape == (mod.CROP, mod.CROP, 3) for c in crops)
    assert {c[0] for c in crops} <= {"cube", "sphere", "cylinder"} and {c[1] for c in crops} <= {"metal", "rubber"}
    picture = mod.crops_picture(crops, crops, per_row=3)
    kinds = len({c[:2] for c in crops})
    cell = 2 * mod.CROP
    assert picture.shape == (kinds * cell + (kinds - 1) * 2, 6 * cell + 5 * 2, 3)


def test_looks_table_compares_the_same_classes_and_measures_the_gap():
    mod = load_script("scripts/analysis/compare_frames.py")
    videos = [render_video(0, i, cfg=WORLDS["real"]) for i in range(3)]
    stats = mod.surface_stats(videos)
    assert stats and all(len(v) == 4 and v[1] <= v[0] <= v[2] for vals in stats.values() for v in vals)
    text, gap = mod.looks_table(stats, stats)
    assert set(gap) <= {"metal", "rubber"} and all((g == 0).all() for g in gap.values())
    brighter = {k: [(m + 10, p5 + 10, p95 + 10, sd) for m, p5, p95, sd in v] for k, v in stats.items()}
    _, gap = mod.looks_table(stats, brighter)
    assert all(np.allclose(g, [10, 10, 10, 0]) for g in gap.values())
    assert len(text.splitlines()) == 2 + len(stats) + len(gap)
