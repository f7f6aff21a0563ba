"""pipeline/stages.py: a recipe's stages run in order, a finished stage is skipped on the next run, a training
stage cut short is resumed, and the table is read from the scores the stages wrote as JSON."""
import sys

import pytest

from pipeline.stages import StageFailed, run_recipe

WRITE = "import sys, json; open(sys.argv[sys.argv.index('--scores_json') + 1], 'w').write(json.dumps({KEYS}))"


def recipe(keys: dict, fail: bool = False) -> dict:
    stages = [{"name": "score", "cmd": ["{py}", "-c", WRITE.replace("{KEYS}", repr(keys))],
               "scores": "{out}/scores/s.json"},
              {"name": "count", "cmd": ["{py}", "-c", "import sys; open(sys.argv[1], 'a').write('x')", "{out}/count"]}]
    if fail:
        stages.append({"name": "fail", "cmd": ["{py}", "-c", "raise SystemExit(3)"]})
    return {"stages": stages, "table": {"title": "test", "header": ("row", "value"), "rows": [
        {"label": "a", "scores": "{out}/scores/s.json", "key": "a"},
        {"label": "b", "scores": "{out}/scores/s.json", "key": "b", "optional": True}]}}


def test_stages_run_once_and_the_table_comes_from_json(tmp_path, capsys):
    rows = run_recipe(recipe({"a": 0.25}), tmp_path)
    assert rows == [("a", 0.25, "")]  # the optional row without its key is left out
    assert "| a | 0.2500 |  |" in (tmp_path / "results.md").read_text().splitlines()  # with its (empty) "why"
    run_recipe(recipe({"a": 0.25}), tmp_path)
    assert (tmp_path / "count").read_text() == "x"  # the finished stage was skipped
    assert "count: done already" in capsys.readouterr().out


def test_a_failed_stage_stops_the_run_and_the_rest_is_kept(tmp_path):
    with pytest.raises(StageFailed, match="stage 'fail' failed"):
        run_recipe(recipe({"a": 1.0}, fail=True), tmp_path)
    assert (tmp_path / "logs" / "count.log").exists() and not (tmp_path / "logs" / "fail.log").exists()


def test_a_started_training_stage_is_resumed(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"")
    stage = {"name": "train", "cmd": ["{py}", "-c", "import sys; open(sys.argv[1], 'w').write(' '.join(sys.argv[2:]))",
                                      "{out}/argv"], "resume": "{out}/run", "done_when": "{out}/run/best.pt"}
    run_recipe({"stages": [stage], "table": {"title": "t", "header": ("r", "v"), "rows": []}}, tmp_path)
    assert (tmp_path / "argv").read_text() == "--resume"
    assert sys.executable  # the stages ran with this interpreter ({py})
