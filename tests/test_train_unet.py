"""Unets/train.py and the shared machinery: checkpoints, exact resume after a kill, torchrun with 2 CPU
processes agreeing with 1 process, metric reduced across ranks, and clear refusals that lose nothing."""
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image

from data.format import HEIGHT, WIDTH
from data.metric import SegmentationScore
from Unets import train
from conftest import ONE_THREAD, kill_after_first_epoch, load_ckpt, one_thread, read_log, torchrun
from engine import CHECKPOINT_KEYS, DistContext, RandomFlips, ResumeError, rng_state, set_rng_state, train_epoch
from Unets.crops import ObjectCrops
from Unets.unet import UNet

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "Unets" / "train.py"
@pytest.fixture(scope="module")
def small_root(tiny_root, tmp_path_factory) -> Path:
    """tiny_root cut to one train and one val video (22 frames each), by symlinks: keeps CPU runs short."""
    root = tmp_path_factory.mktemp("small")
    for split in ("train", "val"):
        first = sorted((tiny_root / split).iterdir(), key=lambda p: int(p.name.split("_")[1]))[0]
        (root / split).mkdir()
        (root / split / first.name).symlink_to(first, target_is_directory=True)
    return root


def flags(root, ckpt, *extra) -> list:
    """A tiny, fast recipe: 5 steps of 4 frames per epoch (22 frames, last partial batch dropped)."""
    return ["--root_dir", str(root), "--checkpoint_dir", str(ckpt), "--base_channels", "4", "--batch_size", "4",
            "--num_workers", "0", "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def two_epochs(small_root, tmp_path_factory):
    """A finished, uninterrupted 2-epoch run, in this process: (checkpoint dir, printed text)."""
    ckpt = tmp_path_factory.mktemp("run") / "ckpt"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), one_thread():
        train.main(flags(small_root, ckpt, "--epochs", "2"))
    return ckpt, out.getvalue()


def test_run_writes_self_describing_checkpoints_and_a_log(two_epochs):
    ckpt, printed = two_epochs
    assert "git commit:" in printed and '"base_channels": 4' in printed
    assert sorted(p.name for p in ckpt.iterdir()) == ["best.pt", "last.pt", "log.jsonl"]  # no temp file left
    last = load_ckpt(ckpt / "last.pt")  # weights_only=True: plain data only
    assert tuple(last) == CHECKPOINT_KEYS
    assert last["model_config"] == {"name": "unet", "kwargs": {"base_channels": 4, "in_channels": 3, "num_classes": 49,
                                                               "head": "factored", "coords": True, "crop_size": 64}}
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in last["model"])
    assert last["epoch"] == 2 and isinstance(last["args"], dict) and last["args"]["batch_size"] == 4
    assert set(last["rng"]) >= {"python", "numpy", "torch"}
    log = read_log(ckpt)
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(set(r) >= {"train_loss", "val_jaccard", "lr", "train_seconds", "samples_per_s"} for r in log)
    assert all(0 <= r["val_jaccard"] <= 1 and np.isfinite(r["train_loss"]) and r["lr"] > 0 for r in log)
    best = load_ckpt(ckpt / "best.pt")
    assert best["best_score"] == pytest.approx(max(r["val_jaccard"] for r in log), abs=1e-6)
    assert best["epoch"] == 1 + int(np.argmax([r["val_jaccard"] for r in log]))
    model = UNet(**last["model_config"]["kwargs"])
    model.load_state_dict(last["model"])  # loads strictly


def test_refusals_are_clear_and_lose_nothing(two_epochs, small_root, tmp_path):
    ckpt, _ = two_epochs
    before = (ckpt / "last.pt").read_bytes()
    with pytest.raises(ResumeError, match="already holds a run.*--resume"):
        train.main(flags(small_root, ckpt, "--epochs", "2"))
    with pytest.raises(ResumeError, match="base_channels': 4.*base_channels': 8"):
        train.main(flags(small_root, ckpt, "--epochs", "2", "--resume", "--base_channels", "8"))
    with pytest.raises(ResumeError, match="--epochs was 2 in the run, now 3"):
        train.main(flags(small_root, ckpt, "--epochs", "3", "--resume"))
    with pytest.raises(ResumeError, match="no last.pt or best.pt in .*nothing to resume"):
        train.main(flags(small_root, tmp_path / "empty", "--epochs", "1", "--resume"))
    (tmp_path / "no_val").mkdir()
    (tmp_path / "no_val" / "train").symlink_to(small_root / "train", target_is_directory=True)
    with pytest.raises(FileNotFoundError, match="split folder not found: .*no_val/val"):
        train.main(flags(tmp_path / "no_val", tmp_path / "c", "--epochs", "1"))
    assert (ckpt / "last.pt").read_bytes() == before
    assert not (tmp_path / "empty").exists() and not (tmp_path / "c").exists()


def test_cli_from_its_own_folder_prints_the_error_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "train.py", "--root_dir", str(tmp_path / "nowhere"),
                             "--checkpoint_dir", str(tmp_path / "c")], cwd=REPO / "Unets", capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("error: dataset root not found") and "Traceback" not in result.stderr


def test_killed_run_resumes_to_the_same_weights(two_epochs, small_root, tmp_path):
    """Kill a 2-epoch run during epoch 2 (after epoch 1's last.pt), resume it: same final weights, bit for bit."""
    reference = two_epochs[0]
    killed = tmp_path / "killed"
    returncode = kill_after_first_epoch([sys.executable, TRAIN, *flags(small_root, killed, "--epochs", "2")], killed)
    assert returncode == -9, "the run ended before it could be killed during epoch 2"
    assert [r["epoch"] for r in read_log(killed)] == [1] and load_ckpt(killed / "last.pt")["epoch"] == 1

    subprocess.run([sys.executable, str(TRAIN), *flags(small_root, killed, "--epochs", "2", "--resume")],
                   check=True, capture_output=True, env=ONE_THREAD)
    resumed, uninterrupted = load_ckpt(killed / "last.pt"), load_ckpt(reference / "last.pt")
    assert resumed["epoch"] == uninterrupted["epoch"] == 2
    assert all(torch.equal(resumed["model"][k], uninterrupted["model"][k]) for k in uninterrupted["model"])
    assert [r["epoch"] for r in read_log(killed)] == [1, 2]
    assert read_log(killed)[1]["train_loss"] == read_log(reference)[1]["train_loss"]


def test_torchrun_two_processes_agree_with_one(small_root, tmp_path):
    """--batch_size is per process: 2 processes x 5 frames take the same 2 steps as 1 process x 10."""
    two, one = tmp_path / "two", tmp_path / "one"
    common = ("--epochs", "1", "--learning_rate", "0.01")
    result = torchrun(TRAIN, [*flags(small_root, two, *common), "--batch_size", "5"])
    assert result.returncode == 0, result.stderr[-3000:]
    with one_thread():
        train.main(flags(small_root, one, *common) + ["--batch_size", "10"])
    log_two, log_one = read_log(two), read_log(one)
    assert len(log_two) == 1, "rank 0 alone writes the log"
    assert log_two[0]["samples_per_s"] > 0 and log_two[0]["train_loss"] == pytest.approx(log_one[0]["train_loss"], rel=1e-5)
    assert log_two[0]["val_jaccard"] == pytest.approx(log_one[0]["val_jaccard"], abs=1e-4)
    w2, w1 = load_ckpt(two / "last.pt")["model"], load_ckpt(one / "last.pt")["model"]
    torch.manual_seed(0)
    w0 = UNet(base_channels=4).state_dict()  # the initial weights both runs started from
    moved = max((w1[k] - w0[k]).abs().max().item() for k in w0)
    apart = max((w1[k] - w2[k]).abs().max().item() for k in w0)
    # Adam divides by the root of tiny second moments on its first steps, so summation-order noise in
    # the gradients shows at about 1e-3 of the move; different data or steps would be of its order.
    assert moved > 1e-3 and apart < 1e-2 * moved


def _score_worker(rank: int, world: int, port: int, preds, targets, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    score = SegmentationScore()
    score.update(preds[rank::world], targets[rank::world])  # each rank its strided share, as validation does
    Path(out_dir, f"rank{rank}").write_text(repr(score.compute()))
    dist.destroy_process_group()


def test_segmentation_score_is_reduced_across_ranks(tmp_path):
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 5, (4, HEIGHT, WIDTH), generator=g)
    preds = targets.clone()
    preds[1::2, :80] = 0  # rank 1's share is worse than rank 0's: a rank-local score would differ
    whole, rank0_alone = SegmentationScore(), SegmentationScore()
    whole.update(preds, targets)
    rank0_alone.update(preds[0::2], targets[0::2])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_score_worker, args=(2, port, preds, targets, str(tmp_path)), nprocs=2)
    scores = [float((tmp_path / f"rank{r}").read_text()) for r in (0, 1)]
    assert scores[0] == scores[1] == pytest.approx(whole.compute(), abs=1e-6)
    assert abs(rank0_alone.compute() - whole.compute()) > 0.05


def test_nonfinite_loss_stops_with_a_clear_message(tmp_path):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(model.parameters())
    loader = [torch.ones(3, 2)] * 3

    def compute_loss(model, batch):
        return model(batch).sum() * float("nan"), len(batch)

    with pytest.raises(FloatingPointError, match=r"non-finite loss \(nan\) at epoch 4, step 3.*--learning_rate.*last.pt"):
        train_epoch(model, loader, optimizer, None, compute_loss, DistContext(torch.device("cpu")), epoch=4,
                    checkpoint_dir=tmp_path)


def test_dice_loss_is_zero_when_right_and_counts_each_wrong_class():
    target = torch.randint(0, 3, (2, 8, 8))
    right = torch.nn.functional.one_hot(target, 49).permute(0, 3, 1, 2).float() * 50  # (B, 49, H, W) logits
    assert train.dice_loss(right, target).item() == pytest.approx(0, abs=1e-3)
    wrong = torch.nn.functional.one_hot((target + 1) % 3, 49).permute(0, 3, 1, 2).float() * 50
    assert train.dice_loss(wrong, target).item() == pytest.approx(3 / 49, abs=2e-3)  # 3 of 49 classes all wrong


def test_flips_are_geometric_shared_and_reproducible():
    frame = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)  # stands for (C, H, W)
    mask = frame[0].clone()
    flips = RandomFlips([(frame, mask)] * 16, seed=0)
    seen = set()
    for epoch in (1, 2):
        flips.set_epoch(epoch)
        for i in range(16):
            f, m = flips[i]
            assert torch.equal(f[0], m) and sorted(f.flatten().tolist()) == sorted(frame.flatten().tolist())
            seen.add(torch.equal(f, frame.flip(-1)))
            again = flips[i][0]
            assert torch.equal(f, again)  # the same (seed, epoch, index) gives the same flip
    assert seen == {True, False}


def test_object_crops_hold_objects_match_their_frame_and_are_reproducible():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (3, HEIGHT, WIDTH), dtype=torch.uint8)
    mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.uint8)
    mask[100:120, 200:225] = 7  # one object near the bottom-right corner
    crops = ObjectCrops([(frame, mask)] * 32, size=64, seed=0, object_share=1.0)
    corners = set()
    for epoch in (1, 2):
        crops.set_epoch(epoch)
        for i in range(32):
            f, m, top = crops[i]
            assert f.shape == (3, 64, 64) and m.shape == (64, 64)
            assert (m == 7).any()  # centred near an object pixel, shifted by at most a quarter of the crop
            hits = [(y, x) for y in range(HEIGHT - 63) for x in range(WIDTH - 63)
                    if torch.equal(frame[:, y:y + 64, x:x + 64], f)]
            assert len(hits) == 1 and torch.equal(mask[hits[0][0]:hits[0][0] + 64, hits[0][1]:hits[0][1] + 64], m)
            assert top == hits[0][0]  # the crop's first row, for the U-Net's row channel
            corners.add(hits[0])
            assert torch.equal(crops[i][0], f)  # the same (seed, epoch, index) gives the same crop
    assert len(corners) > 10  # and different samples or epochs differ
    anywhere = ObjectCrops([(frame, mask)] * 64, size=64, seed=0, object_share=0.0)
    assert sum(bool((anywhere[i][1] == 7).any()) for i in range(64)) < 48  # not always on the object
    assert ObjectCrops([(frame, mask)], size=HEIGHT, seed=0)[0][0].shape == (3, HEIGHT, HEIGHT)
    whole = ObjectCrops([(frame, mask)], size=WIDTH, seed=0)[0]
    assert torch.equal(whole[0], frame) and torch.equal(whole[1], mask) and whole[2] == 0
    with pytest.raises(ValueError, match="size >= 1"):
        ObjectCrops([], size=0, seed=0)


def test_validation_every_n_epochs_and_after_the_last(small_root, tmp_path, capsys):
    with one_thread(), contextlib.redirect_stdout(io.StringIO()) as out:
        train.main(flags(small_root, tmp_path / "c", "--epochs", "3", "--val_every", "2"))
    log = read_log(tmp_path / "c")
    assert [("val_jaccard" in r) for r in log] == [False, True, True]
    assert "epoch 1/3: loss" in out.getvalue() and "not validated (every 2 epochs)" in out.getvalue()
    assert load_ckpt(tmp_path / "c" / "best.pt")["epoch"] in (2, 3)
    with pytest.raises(SystemExit):  # refused as the flags are parsed, naming the flag
        train.main(flags(small_root, tmp_path / "d", "--val_every", "0"))
    assert "--val_every must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_rng_state_round_trips_as_plain_data(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3))
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


def test_excluded_videos_are_left_out_and_named(tiny_root, tmp_path):
    train_ids = [int(p.name.split("_")[1]) for p in (tiny_root / "train").iterdir()]
    val_ids = [int(p.name.split("_")[1]) for p in (tiny_root / "val").iterdir()]
    excluded = [min(train_ids), min(val_ids)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), one_thread():
        train.main(flags(tiny_root, tmp_path / "c", "--epochs", "1", "--exclude_videos",
                         *[f"video_{v}" for v in excluded]))
    printed = out.getvalue()
    assert f"train: 1 of 2 train videos; excluded: video_{excluded[0]}" in printed
    assert f"val: 1 of 2 val videos; excluded: video_{excluded[1]}" in printed
    assert load_ckpt(tmp_path / "c" / "last.pt")["args"]["exclude_videos"] == [f"video_{v}" for v in excluded]


def test_flips_of_items_that_are_not_images_use_the_given_mirror_and_change_with_the_epoch():
    items = [{"x": i} for i in range(64)]
    flips = RandomFlips(items, seed=3, flip=lambda item: {"x": -item["x"] - 1})
    def drawn(epoch):
        flips.set_epoch(epoch)
        return [flips[i]["x"] < 0 for i in range(len(items))]
    first, again, second = drawn(0), drawn(0), drawn(1)
    assert first == again and first != second and 10 < sum(first) < 54  # reproducible, per epoch, about half
    assert all(flips[i]["x"] in (i, -i - 1) for i in range(len(items)))


def test_a_bad_file_in_the_last_val_video_stops_the_run_before_training(tiny_root, tmp_path, capsys):
    root = tmp_path / "data"
    for split in ("train", "val"):
        shutil.copytree(tiny_root / split, root / split)
    val = sorted((root / "val").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    Image.fromarray(np.zeros((160, 240), np.uint8)).save(val[-1] / "image_20.png")  # grayscale, the last val video
    Image.fromarray(np.zeros((160, 240, 3), np.uint8)).save(val[-1] / "image_22.png")  # a frame too many
    ckpt = tmp_path / "c"
    with pytest.raises(ValueError) as e:
        train.main(flags(root, ckpt, "--epochs", "1"))
    message = str(e.value)
    assert message.startswith("2 problems in 1 videos, found before training")
    assert f"{val[-1] / 'image_20.png'}: image mode is L" in message and "beyond image_21.png" in message
    assert message.splitlines()[-1].startswith(f"to train and score without the bad videos, pass --exclude_videos "
                                               f"{val[-1].name}")
    assert "epoch 1" not in capsys.readouterr().err and not (ckpt / "log.jsonl").exists()
