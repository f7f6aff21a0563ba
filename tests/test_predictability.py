"""data/predictability.py (scripts/analysis/predictability.py, the field table's limit rows): frame 22 re-simulated in the
generator's engine from frame 11."""
from data.physics import Physics
from data.synthetic import SceneConfig


def test_rows_and_smooth_free_motion():
    """Every row is scored over all videos and both parts; re-simulating from the exact frame-11 state beats
    copying frame 11; on the smooth floor no free body is moved by a 1e-6 nudge."""
    from data.predictability import format_report, predictability

    res = predictability(3, range(4), SceneConfig(physics=Physics(floor="smooth")), progress=False)
    s = res["scores"]
    assert set(s) == {"copy 11", "ceiling", "perfect motion", "re-simulated", "nudged 1e-06", "nudged 0.001"}
    assert all(set(v) == {"all", "with entering", "without entering"} for v in s.values())
    assert s["re-simulated"]["all"] > s["copy 11"]["all"]
    assert s["ceiling"]["all"] >= s["re-simulated"]["all"] - 1e-9
    assert res["videos"] == 4 and res["free bodies"] > 0
    assert res["free moved share"] == 0.0
    assert "free bodies" in format_report(res)


def test_limit_rows_redraw_the_stored_val_videos(tiny_root, tmp_path):
    """The field table's limit rows: a generator dataset's val videos drawn again from its manifest come out as
    stored (frames 11 and 22), their rows are scored and appear in the table from true masks only (— elsewhere), and
    a re-run reads them back; a manifest whose seed is not the videos' one is refused, as is a folder without one."""
    import json
    import shutil

    import pytest

    from data.predictability import dataset_world, limit_predictions
    from data.synthetic import DEFAULT_WORLD, MANIFEST_FILE
    from pipeline.field import LIMIT_LABELS, field_table, limit_rows, limit_scores, true_inputs

    seed, _, world = dataset_world(tiny_root)
    assert (seed, world) == (0, DEFAULT_WORLD)  # the fixture is drawn with the generator's defaults
    _, targets, _, ids = true_inputs(tiny_root, ["val"])
    cache = tmp_path / "limits.json"
    limits = limit_scores(tiny_root, "val", ids, targets, cache, progress=False)
    assert set(limits["jaccard"]) == set(LIMIT_LABELS) and limits["videos"] == len(ids) == 2
    assert all(0.0 <= v <= 1.0 for v in limits["jaccard"].values())
    table = field_table(limit_rows(limits))
    for name, label in LIMIT_LABELS.items():
        line = next(r for r in table.splitlines() if r.startswith(f"| {label} |"))
        assert line.count("—") == 5 and f"{limits['jaccard'][name]:.4f}" in line
    kept = json.loads(cache.read_text())
    kept["jaccard"]["re-simulated"] = -1.0  # a re-run with the same videos reads the file, not the engine
    cache.write_text(json.dumps(kept))
    assert limit_scores(tiny_root, "val", ids, targets, cache)["jaccard"]["re-simulated"] == -1.0

    other = tmp_path / "other"
    shutil.copytree(tiny_root, other)
    manifest = json.loads((other / MANIFEST_FILE).read_text())
    (other / MANIFEST_FILE).write_text(json.dumps({**manifest, "seed": manifest["seed"] + 1}))
    with pytest.raises(ValueError, match="differs from the stored mask"):
        limit_predictions(other, "val", progress=False)
    (other / MANIFEST_FILE).unlink()
    with pytest.raises(ValueError, match="no synthetic_manifest.json"):
        dataset_world(other)
