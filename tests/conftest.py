"""Shared fixtures and helpers: a tiny synthetic dataset made once per test session by the repository's
generator, an untrained U-Net checkpoint, and what the trainers' tests share (one thread, the JSON log, a
run killed during its second epoch, torchrun with two CPU processes)."""
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # compared bit for bit: same thread count everywhere


@contextlib.contextmanager
def one_thread():
    """torch on one thread in this process, as ONE_THREAD makes it in a child process."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_script(relpath: str):
    """An entry script (scripts are not a package) as a module, e.g. load_script("scripts/analysis/data_stats.py")."""
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


def run_until_parsed(script: str, argv: list, monkeypatch, check_values: bool = True) -> set:
    """Run an entry script (a path from the repository root) in this process up to its argument parsing, and
    return the flags of every parser it parsed with (a parse_known_args pre-parser of --method or --preset
    included; old spellings left out). check_values: parse argv for real first (SystemExit on an unknown flag or a
    bad value); else stop at the parser. Nothing of the script after its parsing runs."""
    import argparse
    import inspect

    from engine.flags import _OldSpelling

    seen = []
    parse_args, parse_known_args = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args

    def pre_parse(self, args=None, namespace=None):
        seen.append(self)
        return parse_known_args(self, args, namespace)

    def stop(self, args=None, namespace=None):
        if check_values:
            parse_args(self, args, namespace)
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", pre_parse)
    monkeypatch.setattr(sys, "argv", [script, *argv])
    main = load_script(script).main
    try:
        main(argv) if inspect.signature(main).parameters else main()
    except _Parsed as p:
        return {s for parser in (*seen, p.parser) for a in parser._actions if not isinstance(a, _OldSpelling)
                for s in a.option_strings}
    raise AssertionError(f"{script} did not parse its flags")


def read_log(ckpt) -> list:
    """The records of a run's log.jsonl (none when it is absent)."""
    path = Path(ckpt) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def load_ckpt(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def kill_after_first_epoch(cmd: list, ckpt, timeout: float = 120, poll: float = 0.02) -> int:
    """Start a training command and kill it (SIGKILL) as soon as epoch 1's last.pt is in place, i.e. during
    epoch 2; returns its exit status (-9 when it was killed, as the tests expect)."""
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ONE_THREAD)
    try:
        deadline = time.monotonic() + timeout
        while not (Path(ckpt) / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(poll)  # last.pt is the last of epoch 1's writes (renamed into place whole)
        proc.kill()
    finally:
        proc.wait()
    return proc.returncode


def torchrun(script, args: list, nproc: int = 2) -> subprocess.CompletedProcess:
    """The script under torchrun with `nproc` CPU (gloo) processes, one thread each."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           str(script), *[str(a) for a in args]], env=ONE_THREAD, capture_output=True, text=True)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A synthetic dataset root with 2 videos in each split (train, val, unlabeled, hidden); read-only by convention."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    cmd = [sys.executable, str(REPO / "scripts" / "make_synthetic_dataset.py"), "--out", str(root),
           "--train", "2", "--val", "2", "--unlabeled", "2", "--hidden", "2", "--seed", "0", "--num_workers", "1"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"generator failed:\n{result.stderr[-2000:]}"
    return root


@pytest.fixture(scope="module")
def unet_ckpt(tmp_path_factory) -> Path:
    """An (untrained) U-Net checkpoint as train.py writes it; its predictions are deterministic. One per
    test module, so a module that damages its copy harms no other."""
    from engine import atomic_save, make_checkpoint
    from Unets.unet import UNet

    torch.manual_seed(0)
    model = UNet(base_channels=4)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    atomic_save(make_checkpoint(model, torch.optim.AdamW(model.parameters()), None, 1, 0.0, {"base_channels": 4}), path)
    return path
