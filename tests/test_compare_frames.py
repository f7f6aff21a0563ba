"""scripts/analysis/compare_frames.py: object crops per shape and material, side by side."""
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
