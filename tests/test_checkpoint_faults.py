"""The engine loses nothing and says nothing wrong: a crash between an epoch's writes is repaired by --resume,
a folder holding only best.pt is not taken as empty, non-finite weights are refused, and an error raised in a
loader worker reaches the user as the same single line as without workers."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import engine
import engine.loop  # noqa: F401  (patched below)
from engine import (
    register_model,
    CheckpointError, DistContext, ResumeError, RunState, atomic_save, fit, load_model, make_checkpoint,
    prepare_optimization,
)

REPO = Path(__file__).resolve().parents[1]
CPU = DistContext(device=torch.device("cpu"))


@register_model("tiny", train_script="tests/test_checkpoint_faults.py")
class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = {}
        self.linear = nn.Linear(2, 1)

    def forward(self, x):
        return self.linear(x)


class Points(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.tensor([float(i), 1.0])


def run(ckpt: Path, resume: bool, epochs: int = 2):
    """A 2-epoch fit whose val score improves every epoch (so both best.pt and last.pt are written each epoch)."""
    torch.manual_seed(0)
    args = dict(root_dir="r", checkpoint_dir=str(ckpt), resume=resume, batch_size=2, num_workers=0, seed=0,
                learning_rate=1e-2, weight_decay=0.0, epochs=epochs)
    ns = type("Args", (), args)()
    model = Tiny()
    setup = prepare_optimization(ns, {**args, "global_batch_size": 2}, CPU, model, Points(), Points(),
                                 must_match=("epochs",))
    return fit(setup, model, lambda m, b: (m(b).pow(2).mean(), len(b)), lambda m: float(setup.run.epoch + 1),
               CPU, epochs=epochs, args=args)


def log_epochs(ckpt: Path) -> list:
    return [json.loads(line)["epoch"] for line in (ckpt / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4])
def test_a_crash_between_an_epochs_writes_is_repaired_by_resume(tmp_path, monkeypatch, crash_at):
    """Each epoch writes best.pt then last.pt (saves 1-2: epoch 1, 3-4: epoch 2); crash at each, then resume
    (or start again when nothing was kept): best.pt, last.pt and the log end as in an uninterrupted run."""
    ckpt, calls = tmp_path / "ckpt", []

    def failing_save(obj, path):
        calls.append(Path(path).name)
        if len(calls) == crash_at:
            raise KeyboardInterrupt("crash")
        atomic_save(obj, path)

    monkeypatch.setattr(engine.loop, "atomic_save", failing_save)  # what fit() writes with
    with pytest.raises(KeyboardInterrupt):
        run(ckpt, resume=False)
    monkeypatch.setattr(engine.loop, "atomic_save", atomic_save)
    resume = (ckpt / "last.pt").exists() or (ckpt / "best.pt").exists()
    run(ckpt, resume=resume)
    last, best = (torch.load(ckpt / name, weights_only=True) for name in ("last.pt", "best.pt"))
    assert last["epoch"] == best["epoch"] == 2 and last["best_score"] == best["best_score"] == 2.0
    assert all(torch.equal(last["model"][k], best["model"][k]) for k in last["model"])
    assert log_epochs(ckpt) == [1, 2]


def test_a_folder_with_only_best_pt_is_not_overwritten(tmp_path):
    ckpt = tmp_path / "ckpt"
    run(ckpt, resume=False)
    (ckpt / "last.pt").unlink()
    before = (ckpt / "best.pt").read_bytes()
    with pytest.raises(ResumeError, match=r"already holds a run \(best.pt\).*--resume"):
        run(ckpt, resume=False)
    assert (ckpt / "best.pt").read_bytes() == before
    run(ckpt, resume=True)  # continues from best.pt, which writes last.pt again
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 2


def test_checkpoint_dir_naming_a_file_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ResumeError, match="--checkpoint_dir .*/f is a file, not a folder"):
        run(tmp_path / "f", resume=False)


def test_non_finite_weights_are_refused_at_load(tmp_path):
    from Unets.unet import UNet

    model = UNet(base_channels=4)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    path = tmp_path / "nan.pt"
    atomic_save(make_checkpoint(model, torch.optim.AdamW(model.parameters()), None, 1, 0.0, {}), path)
    with pytest.raises(CheckpointError, match=f"{path} holds non-finite weights.*earlier checkpoint"):
        load_model(path, UNet)


def test_random_bytes_are_not_advised_to_be_unpickled(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match="unreadable checkpoint .*junk.pt") as e:
        engine.load_checkpoint(path)
    assert "weights_only" not in str(e.value)


def test_non_finite_loss_names_no_checkpoint_that_does_not_exist(tmp_path):
    with pytest.raises(FloatingPointError, match="no checkpoint was written yet"):
        engine.check_finite(float("nan"), 1, 1, tmp_path)


@pytest.mark.parametrize("name", ["foo", "cuda:0" if not torch.cuda.is_available() else "foo"])
def test_bad_device_is_a_value_error_naming_the_flag(name):
    with pytest.raises(ValueError, match=f"--device {name}"):
        engine.choose_device(name)


class Broken(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        from data.readers import DatasetFormatError

        raise DatasetFormatError("/data/val/video_3/image_4.png: image is 10x10, expected 240x160")


def test_an_error_in_a_loader_worker_is_printed_as_its_one_line(capsys):
    def main():
        next(iter(torch.utils.data.DataLoader(Broken(), num_workers=1)))

    assert engine.run_cli(main) == 1
    err = capsys.readouterr().err
    assert err == "error: /data/val/video_3/image_4.png: image is 10x10, expected 240x160\n"


def test_resume_with_another_root_dir_is_refused(tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    run(ckpt, resume=False, epochs=1)
    monkeypatch.chdir(tmp_path)  # the same folder named from elsewhere is the same dataset
    args = dict(root_dir=str(Path.cwd() / "r"), checkpoint_dir=str(ckpt), resume=True, batch_size=2, num_workers=0,
                seed=0, learning_rate=1e-2, weight_decay=0.0, epochs=1)
    model = Tiny()
    opt = torch.optim.AdamW(model.parameters())
    RunState.start(ckpt, True, model, opt, None, {**args, "root_dir": "r"}, CPU)
    with pytest.raises(ResumeError, match="--root_dir was r in the run, now other"):
        RunState.start(ckpt, True, model, opt, None, {**args, "root_dir": "other"}, CPU)


def test_resume_with_other_exclusions_is_refused_and_an_older_run_resumes_without(tmp_path):
    ckpt = tmp_path / "ckpt"
    run(ckpt, resume=False, epochs=1)  # its args hold no exclude_videos: a run from before the flag
    model = Tiny()
    opt = torch.optim.AdamW(model.parameters())
    args = dict(root_dir="r", epochs=1)
    RunState.start(ckpt, True, model, opt, None, {**args, "exclude_videos": []}, CPU, must_match=("exclude_videos",))
    with pytest.raises(ResumeError, match=r"--exclude_videos was None in the run, now \['video_3'\]"):
        RunState.start(ckpt, True, model, opt, None, {**args, "exclude_videos": ["video_3"]}, CPU,
                       must_match=("exclude_videos",))


def test_a_warning_under_run_cli_is_one_line(capsys):
    import warnings

    def main():
        warnings.warn("ROOT/memmap: stale val arrays, ROOT/val/video_4/mask.npy was changed since the conversion")

    assert engine.run_cli(main) == 0
    assert capsys.readouterr().err == ("warning: ROOT/memmap: stale val arrays, ROOT/val/video_4/mask.npy was changed "
                                       "since the conversion\n")
