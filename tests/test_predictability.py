"""scripts/analysis/predictability.py: frame 22 re-simulated in the generator's engine from frame 11."""
from conftest import load_script
from data.physics import Physics
from data.synthetic import SceneConfig


def test_rows_and_smooth_free_motion():
    """Every row is scored over all videos and both parts; re-simulating from the exact frame-11 state beats
    copying frame 11; on the smooth floor no free body is moved by a 1e-6 nudge."""
    mod = load_script("scripts/analysis/predictability.py")
    res = mod.predictability(3, range(4), SceneConfig(physics=Physics(floor="smooth")), progress=False)
    s = res["scores"]
    assert set(s) == {"copy 11", "ceiling", "perfect motion", "re-simulated", "nudged 1e-06", "nudged 0.001"}
    assert all(set(v) == {"all", "with entering", "without entering"} for v in s.values())
    assert s["re-simulated"]["all"] > s["copy 11"]["all"]
    assert s["ceiling"]["all"] >= s["re-simulated"]["all"] - 1e-9
    assert res["videos"] == 4 and res["free bodies"] > 0
    assert res["free moved share"] == 0.0
    assert "free bodies" in mod.format_report(res)
