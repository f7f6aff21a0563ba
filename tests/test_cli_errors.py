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
])
def test_make_synthetic_dataset_names_the_flag_and_writes_nothing(tmp_path, flags, message):
    (tmp_path / "FILE").write_text("")
    out = tmp_path / "d"
    flags = [str(tmp_path / "FILE") if f == "FILE" else f for f in flags]
    args = ["--out", out, "--train", "1", "--val", "0", "--unlabeled", "0", "--hidden", "0", "--workers", "1"]
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
