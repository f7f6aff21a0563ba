"""Every script runs under the same CLI error wrapper: a bad flag or path gives one line, `error: ...`, that
names the flag or path and the fix, exit status 1, no traceback, and nothing left behind."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*args):
    result = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def one_error_line(result) -> str:
    assert result.returncode in (1, 2), result.stdout[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error") or ": error:" in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_fit_motion_checks_out_before_fitting(tiny_root, tmp_path):
    assert "dataset root not found" in one_error_line(run("scripts/fit_motion.py", "--root_dir", tmp_path / "nowhere",
                                                          "--out", tmp_path / "m.json"))
    (tmp_path / "folder").mkdir()
    line = one_error_line(run("scripts/fit_motion.py", "--root_dir", tiny_root, "--out", tmp_path / "folder"))
    assert f"--out {tmp_path / 'folder'} is a folder" in line
    (tmp_path / "file").write_text("")
    line = one_error_line(run("scripts/fit_motion.py", "--root_dir", tiny_root, "--out", tmp_path / "file" / "m.json"))
    assert f"--out's folder {tmp_path / 'file'} is a file, not a folder" in line
    line = one_error_line(run("scripts/fit_motion.py", "--root_dir", tiny_root, "--out", tmp_path / "m.json",
                              "--motion_videos", "-5"))
    assert "--motion_videos must be >= 1" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]  # no temporary file left


@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--out", "FILE"], "is a file: give a folder"),
    (["--val", "-1"], "--val must be >= 0, got -1"),
])
def test_make_synthetic_dataset_names_the_flag_and_writes_nothing(tmp_path, flags, message):
    (tmp_path / "FILE").write_text("")
    out = tmp_path / "d"
    flags = [str(tmp_path / "FILE") if f == "FILE" else f for f in flags]
    args = ["--out", out, "--train", "1", "--val", "0", "--unlabeled", "0", "--hidden", "0", "--num_workers", "1"]
    assert message in one_error_line(run("scripts/make_synthetic_dataset.py", *args, *flags))
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--device", "foo"], "--device foo: not a device"),
    (["--crop_size", "3"], "--crop_size must be 0 (whole frames) or >= 16"),
])
def test_train_flags_are_named(tiny_root, tmp_path, flags, message):
    line = one_error_line(run("Unets/train.py", "--root_dir", tiny_root, "--checkpoint_dir", tmp_path / "c",
                              "--epochs", "1", "--num_workers", "0", *flags))
    assert message in line
    assert not (tmp_path / "c" / "last.pt").exists()


def test_every_bad_flag_gets_its_own_line_naming_it(tiny_root, tmp_path):
    result = run("Unets/train.py", "--root_dir", tiny_root, "--checkpoint_dir", tmp_path / "c", "--learning_rate", "nan",
                 "--weight_decay", "inf", "--dice_weight", "nan", "--crop_size", "1000", "--device", "cpu:7",
                 "--scale", "1000")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert [line.split(": error: ")[1].split()[0] for line in lines] == [
        "--learning_rate", "--weight_decay", "--dice_weight", "--scale", "--device", "--crop_size"]
    assert "<= 160, the frame's height; got 1000" in lines[-1] and "there is one CPU device" in lines[4]
    assert "--scale must be in [1, 10], got 1000" in lines[3]
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("script, flags, message", [
    ("scripts/fit_motion.py", ["--damping", "-3", "--motion", "m.json"], "--damping must be in [0, 2], got -3.0"),
    ("scripts/analysis/diagnose_unet.py", ["--saved_seg_model_dir", "u.pt", "--val_videos", "-3"], "--val_videos must be >= 0"),
    ("scripts/predict.py", ["--method", "copy", "--batch_size", "0"], "--batch_size must be >= 1, got 0"),
])
def test_script_flags_are_range_checked(tiny_root, tmp_path, script, flags, message):
    out = ["--out", tmp_path / "m.json"] if script.endswith("fit_motion.py") else []
    assert message in one_error_line(run(script, "--root_dir", tiny_root, *out, *flags))


def test_quickstart_checks_its_device_before_its_first_stage(tmp_path):
    line = one_error_line(run("scripts/quickstart.py", "--out", tmp_path / "q", "--device", "tpu"))
    assert "--device tpu: not a device" in line and not (tmp_path / "q").exists()


def test_train_simvp_names_every_bad_flag_on_its_own_line(tmp_path):
    result = run("forecasting/train_simvp.py", "--checkpoint_dir", tmp_path / "c", "--downsample", "0", "--hid_S", "-4",
                 "--N_T", "1", "--sampling_max", "2", "--device", "cpu")
    assert result.returncode == 2
    lines = [line.split(": error: ")[1] for line in result.stderr.splitlines() if ": error: " in line]
    assert sorted(line.split()[0] for line in lines) == ["--N_T", "--downsample", "--hid_S", "--sampling_max"]
    assert not (tmp_path / "c").exists()
