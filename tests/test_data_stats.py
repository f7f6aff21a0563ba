"""scripts/analysis/data_stats.py: its measures on hand-made masks, on a synthetic root, and on the real samples."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "analysis" / "data_stats.py"
REAL = Path(__file__).resolve().parents[2] / "shared" / "real_samples" / "Dataset_Student"

KINEMATIC_FIELDS = ("speed median (px/frame)", "speed p90 (px/frame)", "abrupt change (share)",
                    "still then hit (share)", "speed ratio median", "entering speed (px/frame)")
FIELDS = ("videos", "objects/frame mean", "area median (px)", "displacement median (px)", "moving (%)",
          "entering videos (%)", "copy-11 Jaccard", "ceiling Jaccard")


def load_script():
    spec = importlib.util.spec_from_file_location("data_stats", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_measures_on_hand_made_masks():
    """A still 10x10 square and one moving 2 px per frame, entering at frame 15."""
    masks = np.zeros((22, 160, 240), np.uint8)
    for t in range(22):
        masks[t, 10:20, 10:20] = 5
        if t >= 15:
            masks[t, 50:60, 100 + 2 * t:110 + 2 * t] = 30
    s = load_script().mask_stats([masks])
    assert s["videos"] == 1
    assert s["objects/frame mean"] == pytest.approx((22 + 7) / 22)
    assert s["area median (px)"] == 100
    assert s["moving (%)"] == pytest.approx(100 * 6 / (21 + 6))  # 6 moving pairs of 27
    assert s["displacement p90 (px)"] == pytest.approx(2.0)
    assert s["entering videos (%)"] == 100
    # copying frame 11 gets the still square and the floor right and misses the newcomer; the
    # ceiling cannot place the newcomer either (it is not in frame 11): (IoU_bg + 1 + 0) / 3 both
    expected = (38200 / 38300 + 1 + 0) / 3
    assert s["copy-11 Jaccard"] == pytest.approx(expected) and s["ceiling Jaccard"] == pytest.approx(expected)


def test_block_rows_score_each_block_as_its_own_dataset():
    """Two videos: one whose frame 22 equals frame 11 (copy 1.0), one whose only object left (its class scores 0).
    Pooled, the left object's class is a zero beside the kept one's 1; in blocks of one video, each video is its
    own dataset and the two block scores are averaged; a block covering both videos is the pooled score."""
    still = np.zeros((22, 160, 240), np.uint8)
    still[:, 10:20, 10:20] = 5
    gone = np.zeros((22, 160, 240), np.uint8)
    gone[:11, 50:60, 50:60] = 7
    script = load_script()
    from data.metric import jaccard

    copies = np.stack([still[10], gone[10]])
    targets = np.stack([still[21], gone[21]])
    one = [jaccard(copies[i:i + 1], targets[i:i + 1]) for i in range(2)]
    assert one[0] == pytest.approx(1.0) and one[1] < one[0]
    assert script.block_jaccard(copies, targets, 1) == pytest.approx(np.mean(one))
    assert script.block_jaccard(copies, targets, 2) == pytest.approx(jaccard(copies, targets))
    assert script.block_jaccard(np.concatenate([copies, copies[:1]]), np.concatenate([targets, targets[:1]]),
                                2) == pytest.approx(jaccard(copies, targets))  # the short last block is left out
    s = script.mask_stats([still, gone], block_videos=1)
    assert s["copy-11, 1-video blocks"] == pytest.approx(np.mean(one))
    assert s["copy-11 Jaccard"] == pytest.approx(jaccard(copies, targets)) != pytest.approx(np.mean(one))


def test_kinematics_on_hand_made_masks():
    """Four 10x10 squares, by their left edge x per frame: one slides 8 then 6 px and stops dead (as
    if it hit something) at frame 3, when a still one leaves at 12 then 9 px and stops; one creeps
    at 1 px/frame all along; one enters from the left edge at the end, at 4 px/frame."""
    x = {1: [20, 28] + [34] * 20, 2: [100] * 3 + [112] + [121] * 18, 4: [150 + t for t in range(22)]}
    masks = np.zeros((22, 160, 240), np.uint8)
    for t in range(22):
        for cid, row in ((1, 50), (2, 50), (4, 90)):
            masks[t, row:row + 10, x[cid][t]:x[cid][t] + 10] = cid
        if t >= 19:
            x3 = 4 * (t - 17) - 8  # 0 (at the edge), then 4 and 8: one whole velocity
            masks[t, 120:130, x3:x3 + 10] = 3
    k = load_script().kinematic_stats([masks])
    assert k["tracks"] == 3  # the newcomer has one velocity only: no change of speed to judge
    assert k["still objects"] == 1 and k["still then hit (share)"] == 1.0
    assert k["abrupt change (share)"] == pytest.approx(2 / 3)  # the mover stops, the one hit starts; not the creeper
    assert k["speed ratio median"] == pytest.approx(0.75)  # 6 / 8 and 9 / 12; the creeper is too slow to count
    assert k["entering objects"] == 1 and k["entering speed (px/frame)"] == pytest.approx(4.0)
    assert k["speed median (px/frame)"] == pytest.approx(1.0) and k["speed p90 (px/frame)"] > 5


def test_prints_the_fields_for_a_synthetic_root_side_by_side(tiny_root):
    result = run(tiny_root, tiny_root, cwd=REPO / "scripts" / "analysis")  # also: runs from its own folder
    assert result.returncode == 0, result.stderr
    for field in FIELDS + KINEMATIC_FIELDS:
        line = next(l for l in result.stdout.splitlines() if l.startswith(field))
        assert len(line.split()) >= 2 + len(field.split())  # two value columns
    lines = result.stdout.splitlines()
    assert lines[0].split() == [tiny_root.name, tiny_root.name]
    assert lines[1].split() == ["videos", "4", "4"]  # train + val
    assert any(l.startswith("cube horizon h (row)") for l in lines)  # the per-shape geometry table
    assert any(l.startswith("copy-11, 4-video blocks") for l in lines)  # blocks of the smallest root's count
    too_big = run(tiny_root, tiny_root, "--block_videos", "5")
    assert too_big.returncode == 2 and "only 4 labeled videos" in too_big.stderr


def test_exclude_videos_leaves_them_out_and_names_them(tiny_root):
    first = sorted(p.name for p in (tiny_root / "train").iterdir())[0]
    result = run(tiny_root, "--exclude_videos", first)
    assert result.returncode == 0, result.stderr
    assert f"left out {first}" in result.stdout
    assert next(l for l in result.stdout.splitlines() if l.startswith("videos")).split() == ["videos", "3"]


def test_root_without_labels_is_an_error_naming_it(tmp_path):
    result = run(tmp_path)
    assert result.returncode != 0 and str(tmp_path) in result.stderr


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real samples not found at {REAL}")
def test_reproduces_the_real_figures():
    s, k, g = load_script().dataset_stats(REAL)
    assert s["videos"] == 6
    assert round(s["objects/frame mean"], 1) == 4.5
    assert (s["objects/frame min"], s["objects/frame max"]) == (1, 6)
    assert s["area median (px)"] == 469
    assert (s["area p10 (px)"], s["area p90 (px)"]) == (216, 830)
    assert round(s["displacement median (px)"], 1) == 1.6 and round(s["displacement p90 (px)"], 1) == 9.5
    assert round(s["moving (%)"]) == 58
    assert round(s["copy-11 Jaccard"], 2) == 0.32
    # how the real objects move: the figures the generator is calibrated to (README, "Synthetic data")
    assert k["tracks"] == 30 and k["still objects"] == 17
    assert round(k["speed median (px/frame)"], 1) == 3.8 and round(k["speed p90 (px/frame)"], 1) == 12.0
    assert round(k["abrupt change (share)"], 2) == 0.43 and round(k["still then hit (share)"], 2) == 0.53
    assert round(k["speed ratio median"], 2) == 0.92
    # the real camera: where objects would shrink to nothing, and how big each shape looks
    assert [round(g[s]["horizon h (row)"]) for s in ("cube", "sphere", "cylinder")] == [-80, -80, -76]
    assert [round(g[s]["size median (px)"], 1) for s in ("cube", "sphere", "cylinder")] == [22.4, 18.9, 23.1]
    assert [round(g[s]["size at row 60 (px)"], 1) for s in ("cube", "sphere", "cylinder")] == [24.3, 18.4, 22.7]
