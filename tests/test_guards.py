"""Nothing is lost by an output flag or a shared folder: the output guard refuses an input, a checkpoint or a
mask; --fresh deletes only a folder the stage runner made; a second run on a folder in use is refused; --resume
passes over a damaged last.pt for a good best.pt."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import CheckpointError, OutputPathError, RunLock, atomic_save, check_output, make_checkpoint
from pipeline.stages import MARKER, run_recipe
from test_checkpoint_faults import Tiny, log_epochs, run as fit_tiny

REPO = Path(__file__).resolve().parents[1]
EMPTY_RECIPE = {"stages": [], "table": {"title": "t", "header": ("r", "v"), "rows": []}}


def script(*args):
    result = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


@pytest.fixture
def victims(tmp_path, unet_ckpt):
    """A checkpoint and a dataset mask (in a video folder of a split), with their bytes to compare after."""
    ckpt = tmp_path / "m" / "unet.pt"
    ckpt.parent.mkdir()
    shutil.copy(unet_ckpt, ckpt)
    mask = tmp_path / "D" / "train" / "video_0" / "mask.npy"
    mask.parent.mkdir(parents=True)
    np.save(mask, np.zeros((22, 160, 240), np.uint8))
    loose = tmp_path / "loose_mask.npy"  # the same kind of file outside any dataset
    shutil.copy(mask, loose)
    return {p: p.read_bytes() for p in (ckpt, mask, loose)}


def test_scores_json_never_replaces_an_input_a_checkpoint_or_a_mask(tiny_root, victims):
    from Unets import inference_val_without_reconstructor as val_script
    ckpt, mask, loose = victims
    base = ["--root_dir", str(tiny_root), "--saved_seg_model_dir", str(ckpt), "--num_workers", "0"]
    for target, message in [(ckpt, "is the input passed as --saved_seg_model_dir"),
                            (ckpt.parent / "best.pt", None), (mask, "inside a dataset's video folder"),
                            (loose, "is a NumPy array")]:
        if message is None:  # a run folder passed as the model: its best.pt is the input
            shutil.copy(ckpt, target)
            victims[target] = target.read_bytes()
            base_dir = base[:3] + [str(ckpt.parent)] + base[4:]
            with pytest.raises(OutputPathError, match="is the input passed as --saved_seg_model_dir"):
                val_script.main(base_dir + ["--scores_json", str(target)])
            continue
        with pytest.raises(OutputPathError, match=message):
            val_script.main(base + ["--scores_json", str(target)])
    assert all(p.read_bytes() == b for p, b in victims.items())  # every file intact


def test_fit_motion_out_never_replaces_a_mask_or_a_checkpoint(tiny_root, victims):
    spec = importlib.util.spec_from_file_location("fit_motion", REPO / "scripts" / "fit_motion.py")
    fit_motion = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit_motion)
    for target, message in [(list(victims)[1], "inside a dataset's video folder"),
                            (list(victims)[0], "is a checkpoint"), (list(victims)[2], "is a NumPy array")]:
        with pytest.raises(OutputPathError, match=message):
            fit_motion.main(["--root_dir", str(tiny_root), "--out", str(target)])
    result = script("scripts/fit_motion.py", "--root_dir", tiny_root, "--out", list(victims)[0])
    assert result.returncode == 1 and "error: --out" in result.stderr  # one line through the CLI wrapper
    assert all(p.read_bytes() == b for p, b in victims.items())


def test_a_scores_file_replaces_a_scores_file(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"jaccard": 0.1}))
    assert check_output(tmp_path / "s.json", "--scores_json", "json") == tmp_path / "s.json"


def test_a_scores_file_never_replaces_a_run_log_or_a_dataset_manifest(tmp_path):
    """A one-epoch log.jsonl and a dataset's manifest are JSON objects too: both are refused, not replaced."""
    log = tmp_path / "run" / "log.jsonl"
    log.parent.mkdir()
    log.write_text(json.dumps({"epoch": 1, "val_jaccard": 0.1}) + "\n")
    manifest = tmp_path / "D" / "synthetic_manifest.json"
    (tmp_path / "D" / "train").mkdir(parents=True)
    manifest.write_text(json.dumps({"settings": {}}))
    for target, message in [(log, "is a run's log"), (manifest, "is a file of a dataset root")]:
        before = target.read_bytes()
        with pytest.raises(OutputPathError, match=message):
            check_output(target, "--scores_json", "json")
        assert target.read_bytes() == before


def test_no_output_folder_is_a_dataset_split(tmp_path):
    """--checkpoint_dir D/train once wrote best.pt, last.pt and log.jsonl among the train videos."""
    from engine import check_output_folder
    split = tmp_path / "D" / "train"
    (split / "video_0").mkdir(parents=True)
    with pytest.raises(OutputPathError, match="is a dataset's split folder"):
        check_output_folder(split, "--checkpoint_dir")
    assert [p.name for p in split.iterdir()] == ["video_0"]


def test_fresh_deletes_only_a_folder_the_runner_made(tmp_path):
    decoy = tmp_path / "decoy"
    (decoy / "thesis").mkdir(parents=True)
    (decoy / "thesis" / "chapter1.tex").write_text("years of work")
    with pytest.raises(OutputPathError, match="was not made by the stage runner"):
        run_recipe(EMPTY_RECIPE, decoy, fresh=True)
    assert (decoy / "thesis" / "chapter1.tex").read_text() == "years of work"
    for here in (REPO, REPO.parent):  # the checkout and a folder above it: never, even made by the runner
        with pytest.raises(OutputPathError, match="is the checkout"):
            run_recipe(EMPTY_RECIPE, here, fresh=True)
    assert (REPO / "README.md").is_file()
    ours = tmp_path / "ours"
    run_recipe(EMPTY_RECIPE, ours)
    (ours / "stale.txt").write_text("from the last run")
    run_recipe(EMPTY_RECIPE, ours, fresh=True)  # the runner's own folder starts over
    assert (ours / MARKER).is_file() and not (ours / "stale.txt").exists()


def test_a_second_process_on_a_locked_folder_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
                               "from engine import RunLock; RunLock(sys.argv[2]).acquire(); print('held', flush=True); "
                               "time.sleep(60)", str(REPO), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputPathError, match=f"in use by pid {holder.pid} on host .*delete {tmp_path}/.lock"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with pytest.warns(UserWarning, match=f"taking over the lock of pid {holder.pid}"):
        lock = RunLock(tmp_path).acquire()  # its holder is dead: a kill -9 leaves no folder locked for ever
    lock.release()
    assert not (tmp_path / ".lock").exists()


def test_two_trainers_on_one_folder_the_second_is_refused_and_the_first_loses_nothing(tmp_path):
    ckpt = tmp_path / "run"
    ckpt.mkdir()
    (ckpt / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "started": "now",
                                            "command": "train.py (the first run)"}))  # a live process holds it
    with pytest.raises(OutputPathError, match=r"in use by pid \d+ .*train.py \(the first run\)"):
        fit_tiny(ckpt, resume=False)
    assert sorted(p.name for p in ckpt.iterdir()) == [".lock"]  # nothing written, the holder's lock kept
    (ckpt / ".lock").unlink()
    fit_tiny(ckpt, resume=False)
    assert not (ckpt / ".lock").exists()  # released at the end of fit: a later run may use the folder


@pytest.mark.parametrize("damage", ["nan", "truncated"])
def test_resume_passes_over_a_damaged_last_pt_for_best_pt(tmp_path, damage):
    ckpt = tmp_path / "run"
    fit_tiny(ckpt, resume=False, epochs=2)
    best = torch.load(ckpt / "best.pt", weights_only=True)
    atomic_save({**best, "epoch": 1}, ckpt / "best.pt")  # a best.pt of epoch 1, a last.pt of epoch 2
    if damage == "nan":
        last = torch.load(ckpt / "last.pt", weights_only=True)
        last["model"] = {k: torch.full_like(v, float("nan")) for k, v in last["model"].items()}
        atomic_save(last, ckpt / "last.pt")
    else:
        (ckpt / "last.pt").write_bytes((ckpt / "last.pt").read_bytes()[:300])
    with pytest.warns(UserWarning, match=f"last.pt is unusable .*resuming from {ckpt / 'best.pt'} \\(epoch 1\\)"):
        fit_tiny(ckpt, resume=True, epochs=2)
    assert log_epochs(ckpt) == [1, 2]  # epoch 2 trained again from best.pt, its old log line dropped
    last = torch.load(ckpt / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and all(torch.isfinite(v).all() for v in last["model"].values())


def test_resume_with_no_usable_checkpoint_says_to_start_again(tmp_path):
    ckpt = tmp_path / "run"
    fit_tiny(ckpt, resume=False, epochs=1)
    for name in ("last.pt", "best.pt"):
        (ckpt / name).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no usable checkpoint .*start it again in a new --checkpoint_dir"):
        fit_tiny(ckpt, resume=True)


def test_a_checkpoint_whose_config_does_not_fit_its_weights_is_one_line(tmp_path):
    model = Tiny()
    state = make_checkpoint(model, torch.optim.AdamW(model.parameters()), None, 1, 0.0, {})
    state["model"]["linear.weight"] = torch.zeros(3, 2)
    atomic_save(state, tmp_path / "edited.pt")
    from engine import load_model
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "edited.pt")
    assert "\n" not in str(e.value) and "linear.weight is (3, 2) in the file, (1, 2) in the model" in str(e.value)
