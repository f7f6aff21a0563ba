"""pipeline/stages.py: a recipe's stages run in order, a finished stage is skipped on the next run, a training
stage cut short is resumed, and the table is read from the scores the stages wrote as JSON."""
import sys
from pathlib import Path

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


def test_the_recipe_env_reaches_every_stage(tmp_path):
    stage = {"name": "env", "cmd": ["{py}", "-c", "import os, sys; open(sys.argv[1], 'w').write(os.environ['X_RECIPE'])",
                                    "{out}/env"]}
    run_recipe({"env": {"X_RECIPE": "{out}/y"}, "stages": [stage], "table": {"title": "t", "header": ("r", "v"),
                                                                         "rows": []}}, tmp_path)
    assert (tmp_path / "env").read_text() == f"{tmp_path.resolve()}/y"  # placeholders filled, as in commands


BENCHES = [  # (script, its flags): each bench script's recipe, in the variants its flags choose
    ("bench_pipeline", []), ("bench_pipeline", ["--root_dir", "d", "--saved_seg_model_dir", "u.pt", "--reference", "frame11"]),
    ("bench_unet", []), ("bench_unet", ["--skip_quality"]), ("bench_unet", ["--checkpoint_dir", "r", "--speed_widths"]),
]


@pytest.mark.parametrize("script,argv", BENCHES)
def test_each_bench_recipe_runs_existing_scripts_and_its_rows_are_written(script, argv):
    """A bench script's recipe names only scripts of the repository, and every table row reads a JSON file that
    one of its stages writes (--scores_json): none is left to scrape from printed output."""
    import importlib

    from pipeline import recipes
    from pipeline.stages import REPO

    module = importlib.import_module(f"scripts.bench.{script}")
    recipe = getattr(recipes, f"{script}_recipe")(module.parse_args(argv))
    for stage in recipe["stages"]:
        assert stage["cmd"][0] == "{py}" and (REPO / stage["cmd"][1]).is_file(), stage
    written = {stage["scores"] for stage in recipe["stages"] if "scores" in stage}
    assert all(row["scores"] in written for row in recipe["table"]["rows"])
    if script != "bench_unet" or "--skip_quality" not in argv:
        assert recipe["table"]["rows"]


@pytest.mark.parametrize("preset", ["smoke", "cpu_mid", "cpu", "gpu"])
def test_the_field_bench_runs_existing_scripts_and_fits_its_budget(preset, tmp_path):
    """scripts/bench/bench_field.py: every stage of each preset is a command of the repository; a trained model is
    validated after its last epoch only; the epochs of a budget come from the calibration epoch's cost."""
    import json

    from pipeline.recipes import FIELD_MODELS, field_data_stages, field_train_stage
    from pipeline.stages import REPO
    from scripts.bench import bench_field

    args = bench_field.parse_args(["--preset", preset])
    stages = field_data_stages(args) + [field_train_stage(args, model, 3, calibrate=calibrate)
                                        for model in FIELD_MODELS for calibrate in (True, False)]
    for stage in stages:
        assert stage["cmd"][0] == "{py}" and (REPO / stage["cmd"][1]).is_file(), stage
    cmd = stages[-1]["cmd"]
    assert cmd[cmd.index("--epochs") + 1] == cmd[cmd.index("--val_every") + 1] == "3"
    (tmp_path / "log.jsonl").write_text(json.dumps({"epoch": 1, "train_seconds": 60.0}) + "\n")
    # 100 s of CPU for the 1-epoch run, 60% of its wall time training: 60 s an epoch, 40 s once
    assert bench_field.epochs_in_budget(tmp_path, {"cpu_s": 100.0, "wall_s": 100.0}, 400.0, gpu=False) == 6
    assert bench_field.epochs_in_budget(tmp_path, {"cpu_s": 50.0, "wall_s": 100.0}, 400.0, gpu=False) == 12  # shared CPU: 30 s an epoch
    assert bench_field.epochs_in_budget(tmp_path, {"cpu_s": 100.0, "wall_s": 100.0}, 50.0, gpu=False) == 1
    # calibrated on a fifth of the videos: an epoch of all of them costs 5 x 60 s
    assert bench_field.epochs_in_budget(tmp_path, {"cpu_s": 100.0, "wall_s": 100.0}, 940.0, gpu=False, scale=5) == 3
    calib = field_train_stage(args, "simvp", 1, calibrate=True)["cmd"]
    assert [int(calib[calib.index(f) + 1]) for f in ("--train_videos", "--unlabeled_videos")] == [
        max(1, round(n * args.calibrate_share)) for n in (args.train, args.unlabeled)]


def parses_with_its_script(cmd: list, monkeypatch) -> None:
    """Run a stage's command in this process up to its argument parser, which must accept every flag."""
    from conftest import run_until_parsed
    from pipeline.stages import REPO

    run_until_parsed(str(Path(cmd[1]).relative_to(REPO)) if Path(cmd[1]).is_absolute() else cmd[1], cmd[2:],
                     monkeypatch)


def test_the_quickstart_stages_expand_and_every_command_parses(tmp_path, monkeypatch, capsys):
    """The README's main command: every stage is a script of the repository whose parser takes the stage's flags,
    every placeholder is filled, every table row reads a JSON file a stage writes; --dry_run prints the commands
    and touches nothing."""
    from pipeline.recipes import QUICKSTART
    from pipeline.stages import REPO, recipe_names, stage_command
    from conftest import load_script

    names = recipe_names(QUICKSTART, tmp_path / "q")
    for stage in QUICKSTART["stages"]:
        cmd = stage_command(stage, names, "cpu")
        assert cmd[0] == sys.executable and (REPO / cmd[1]).is_file(), stage["name"]
        assert not any("{" in c and "}" in c for c in cmd), (stage["name"], cmd)  # no placeholder left
        parses_with_its_script(cmd, monkeypatch)
    written = {expand_one(stage["scores"], names) for stage in QUICKSTART["stages"] if "scores" in stage}
    assert QUICKSTART["table"]["rows"] and all(expand_one(r["scores"], names) in written
                                               for r in QUICKSTART["table"]["rows"])
    monkeypatch.undo()
    load_script("scripts/quickstart.py").main(["--dry_run", "--out", str(tmp_path / "q")])
    out = capsys.readouterr().out
    assert out.count("\n$ ") == len(QUICKSTART["stages"]) and "Unets/train.py" in out
    assert not (tmp_path / "q").exists()


def expand_one(value, names) -> str:
    from pipeline.stages import expand

    return expand(value, names)[0]


@pytest.mark.parametrize("script,argv", BENCHES)
def test_each_bench_recipe_command_parses_with_its_script(script, argv, tmp_path, monkeypatch):
    import importlib

    from pipeline import recipes
    from pipeline.stages import recipe_names, stage_command

    recipe = getattr(recipes, f"{script}_recipe")(importlib.import_module(f"scripts.bench.{script}").parse_args(argv))
    names = recipe_names(recipe, tmp_path / "b")
    for stage in recipe["stages"]:
        parses_with_its_script(stage_command(stage, names, "cpu"), monkeypatch)
