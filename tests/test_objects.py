"""The U-Net's object head (Unets/objects.py): boxes, windows, the training objects of a batch, the pieces'
classes at segmentation, the color logits it is paired with, and a training run with it."""
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from data.classes import COLORS, NUM_CLASSES, class_id, class_parts
from data.format import HEIGHT
from conftest import ONE_THREAD, kill_after_first_epoch, load_ckpt, one_thread, read_log, torchrun
from engine import load_model
from Unets import train
from Unets.objects import (CLASS_KIND, KINDS, WINDOW, boxes_of, classify_pieces, training_objects, windows)
from Unets.postprocess import CLASS_COLOR, color_logits
from Unets.segment import segment
from Unets.unet import UNet
from test_train_unet import TRAIN, flags, small_root  # noqa: F401  (the fixture, reused)


def test_boxes_match_the_pixels_of_each_id():
    torch.manual_seed(0)
    ids = torch.zeros(3, 20, 30, dtype=torch.long)
    ids[0, 2:5, 7:12] = 1
    ids[0, 10, 3] = 1  # a stray pixel widens the box
    ids[1, 15:20, 25:30] = 3  # touching the frame's bottom right
    pixels, boxes = boxes_of(ids, 3)
    assert pixels.tolist() == [[16, 0, 0], [0, 0, 25], [0, 0, 0]]
    assert boxes[0, 0].tolist() == [2, 11, 3, 12] and boxes[1, 2].tolist() == [15, 20, 25, 30]
    with pytest.raises(ValueError, match="ids in 0..2"):
        boxes_of(ids, 2)
    random = torch.randint(0, 5, (2, 9, 13))
    pixels, boxes = boxes_of(random, 4)
    for b in range(2):
        for k in range(1, 5):
            ys, xs = torch.nonzero(random[b] == k, as_tuple=True)
            assert pixels[b, k - 1] == len(ys)
            assert boxes[b, k - 1].tolist() == [ys.min(), ys.max() + 1, xs.min(), xs.max() + 1]


def test_windows_are_centred_on_their_boxes_in_their_own_frames():
    H, W = 40, 60
    frames = torch.zeros(3, 3, H, W)
    frames[0, 0, 10:20, 10:20] = 1  # a red square in frame 0, a green one in frame 2
    frames[2, 1, 20:30, 40:50] = 1
    which = torch.tensor([0, 2, 2])  # the frame of each object, ascending; two in frame 2
    boxes = torch.tensor([[10, 20, 10, 20], [20, 30, 40, 50], [0, 4, 0, 4]])
    win, extras = windows(frames, which, boxes)
    assert win.shape == (3, 3, WINDOW, WINDOW) and extras.shape == (3, 2)
    c = WINDOW // 2
    assert win[0, 0, c, c] == 1 and win[0, 1:].abs().sum() == 0  # the red square, nothing green
    assert win[1, 1, c, c] == 1 and win[1, 0].abs().sum() == 0
    assert win[0, 0, 0, 0] == 0  # the box's margin shows the floor around the object
    side = 10 * 1.2 + 4
    assert extras[0].tolist() == pytest.approx([side / HEIGHT, 15 * 2 / (HEIGHT - 1) - 1])
    assert extras[1, 1] == pytest.approx(25 * 2 / (HEIGHT - 1) - 1)
    empty, empty_extras = windows(frames, which[:0], boxes[:0])
    assert empty.shape == (0, 3, WINDOW, WINDOW) and empty_extras.shape == (0, 2)
    jittered, _ = windows(frames, which, boxes, jitter=torch.Generator().manual_seed(0))
    assert not torch.equal(jittered, windows(frames, which, boxes)[0])


def test_training_objects_are_the_classes_of_each_frame_with_their_kinds():
    masks = torch.zeros(2, 30, 40, dtype=torch.long)
    a, b = class_id("cylinder", "rubber", "cyan"), class_id("sphere", "metal", "red")
    masks[0, 5:15, 5:15] = a
    masks[1, 10:20, 20:30] = b
    masks[1, 0:2, 0:3] = a  # 6 pixels: too small to teach a shape
    win, extras, kinds = training_objects(torch.rand(2, 3, 30, 40), masks, limit=64)
    assert kinds.tolist() == [2 * 2 + 1, 1 * 2 + 0]  # kind = shape x 2 + material
    assert len(win) == len(extras) == 2
    assert len(training_objects(torch.rand(2, 3, 30, 40), masks, limit=1)[2]) == 1
    win, extras, kinds = training_objects(torch.rand(2, 3, 30, 40), torch.zeros_like(masks), limit=64)
    assert len(win) == len(extras) == len(kinds) == 0  # a batch without objects: the trainer adds a blank window


def test_class_kinds_and_colors_compose_every_object_class():
    for cid in range(1, NUM_CLASSES):
        shape, material, color = class_parts(cid)
        assert CLASS_KIND[cid] == ("cube", "sphere", "cylinder").index(shape) * 2 + ("metal", "rubber").index(material)
        assert COLORS[CLASS_COLOR[cid] - 1] == color
    assert CLASS_KIND[0] == -1 and CLASS_COLOR[0] == 0


class KindByRedness(nn.Module):
    """A stand-in head: kind 5 (rubber cylinder) for windows with much red, else kind 0 (metal cube)."""

    def forward(self, win, extras):
        out = torch.zeros(len(win), KINDS)
        red = win[:, 0].mean(dim=(1, 2)) > 0.1
        out[red, 5], out[~red, 0] = 1, 1
        return out


def test_each_piece_takes_its_color_and_the_kind_of_its_window():
    frames = torch.zeros(1, 3, 40, 60)
    colors = torch.zeros(1, 40, 60, dtype=torch.long)
    blue, red = 1 + COLORS.index("blue"), 1 + COLORS.index("red")
    colors[0, 5:15, 5:15] = blue  # two blue pieces, apart: one sits on red pixels of the frame
    colors[0, 25:35, 40:50] = blue
    frames[0, 0, 25:35, 40:50] = 1
    colors[0, 5:10, 30:35] = red
    out = classify_pieces(KindByRedness(), frames, colors)
    assert out[0, 10, 10] == class_id("cube", "metal", "blue")
    assert out[0, 30, 45] == class_id("cylinder", "rubber", "blue")
    assert out[0, 7, 32] == class_id("cube", "metal", "red")
    assert ((out == 0) == (colors == 0)).all()  # background stays, every piece gets a class
    assert classify_pieces(KindByRedness(), frames, torch.zeros_like(colors)).eq(0).all()


@pytest.mark.parametrize("head", ["factored", "flat"])
def test_color_logits_are_the_log_sum_of_each_colors_classes(head):
    torch.manual_seed(0)
    model = UNet(base_channels=4, head=head, object_head=4).eval()
    for p in model.parameters():
        p.data.normal_()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        logits, colors = model(x), model(x, colors=True)
    assert colors.shape == (2, 1 + len(COLORS), 32, 48)
    expected = torch.stack([logits[:, 0]] + [logits[:, CLASS_COLOR == c].logsumexp(dim=1) for c in range(1, 9)], 1)
    assert torch.allclose(colors, expected, atol=1e-4) and torch.allclose(color_logits(logits), expected, atol=1e-4)


def test_object_head_is_recorded_and_segmentation_follows_the_colors():
    torch.manual_seed(0)
    model = UNet(base_channels=4, object_head=4, norm="batch", scale=2, crop_size=32).eval()
    assert model.config["object_head"] == 4 and "object_head" not in UNet(base_channels=4).config
    with pytest.raises(ValueError, match="object_head"):
        UNet(base_channels=4, object_head=-1)
    with pytest.raises(ValueError, match="objects only apply"):
        UNet(base_channels=4)(torch.rand(1, 3, 32, 32), objects=(torch.rand(1, 3, WINDOW, WINDOW), torch.rand(1, 2)))
    with torch.no_grad():
        model.outc.conv.bias[1] += 10  # every pixel an object: pieces everywhere
    frames = torch.rand(2, 3, 48, 64)
    pred = segment(model, frames)
    with torch.no_grad():
        colors = model(frames, colors=True).argmax(dim=1)
    assert (CLASS_COLOR[pred] == colors).all()  # each pixel keeps its predicted color; the head picks the rest


def test_training_with_the_object_head_records_it_resumes_exactly_and_segments(small_root, tmp_path):  # noqa: F811
    """A 2-epoch run with --object_head; killed during epoch 2 and resumed: the same weights, bit for bit."""
    extra = ("--epochs", "2", "--object_head", "4", "--norm", "batch", "--scale", "2", "--crop_size", "32")
    whole = tmp_path / "whole"
    with contextlib.redirect_stdout(io.StringIO()), one_thread():
        train.main(flags(small_root, whole, *extra))
    last = load_ckpt(whole / "last.pt")
    assert last["model_config"]["kwargs"]["object_head"] == 4
    assert any(k.startswith("objects.") for k in last["model"])
    assert all(0 <= r["val_jaccard"] <= 1 for r in read_log(whole))
    model = load_model(whole / "best.pt")
    assert segment(model, torch.zeros(1, 3, 160, 240, dtype=torch.uint8)).shape == (1, 160, 240)

    killed = tmp_path / "killed"
    returncode = kill_after_first_epoch([sys.executable, TRAIN, *flags(small_root, killed, *extra)], killed)
    assert returncode == -9, "the run ended before it could be killed during epoch 2"
    subprocess.run([sys.executable, str(TRAIN), *flags(small_root, killed, *extra, "--resume")],
                   check=True, capture_output=True, env=ONE_THREAD)
    resumed = load_ckpt(killed / "last.pt")["model"]
    assert all(torch.equal(resumed[k], last["model"][k]) for k in last["model"])


def test_object_head_refuses_dice():
    with pytest.raises(SystemExit):
        train.parse_args(["--object_head", "4", "--dice_weight", "1"])


def _diagnose_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("diagnose_unet", Path(__file__).resolve().parents[1] / "scripts"
                                                  / "analysis" / "diagnose_unet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_diagnosis_gives_pieces_the_truths_parts_and_counts_objects_by_error():
    diagnose = _diagnose_module()
    truth = torch.zeros(1, 20, 30, dtype=torch.long)
    pred = torch.zeros_like(truth)
    truth[0, 2:8, 2:8] = class_id("cube", "rubber", "red")
    pred[0, 2:8, 2:9] = class_id("cylinder", "metal", "red")  # wrong shape and material, one column too wide
    truth[0, 10:16, 10:16] = class_id("sphere", "metal", "blue")
    pred[0, 10:16, 10:16] = class_id("sphere", "metal", "green")  # wrong color
    shape = diagnose.with_true_parts(pred, truth, "shape")
    assert shape[0, 3, 3] == class_id("cube", "metal", "red") and shape[0, 3, 8] == shape[0, 3, 3]
    assert diagnose.with_true_parts(pred, truth, "shape+material")[0, 3, 3] == class_id("cube", "rubber", "red")
    assert diagnose.with_true_parts(pred, truth, "class")[0, 12, 12] == class_id("sphere", "metal", "blue")
    errors = diagnose.object_errors(pred, truth)
    assert errors == {"shape and material": 0.5, "color": 0.5, "objects": 2}


def test_diagnosis_runs_on_a_dataset(tiny_root, tmp_path):
    torch.manual_seed(0)
    model = UNet(base_channels=4, object_head=4, norm="batch", scale=2, crop_size=32)
    from engine import atomic_save, make_checkpoint
    atomic_save(make_checkpoint(model, torch.optim.AdamW(model.parameters()), None, 1, 0.0, {}), tmp_path / "best.pt")
    out = tmp_path / "scores.json"
    result = subprocess.run([sys.executable, "scripts/analysis/diagnose_unet.py", "--root_dir", str(tiny_root),
                             "--saved_seg_model_dir", str(tmp_path), "--val_videos", "1", "--device", "cpu",
                             "--scores_json", str(out)], capture_output=True, text=True, env=ONE_THREAD,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(out.read_text())
    assert all(0 <= scores[k] <= 1 for k in ("jaccard", "true_shape", "true_shape+material", "true_class"))
    assert 0 <= scores["head"]["kind"] <= 1 and scores["objects"]["objects"] > 0
    assert "val Jaccard over 22 frames" in result.stdout


def test_torchrun_trains_the_object_head_in_every_process(small_root, tmp_path):  # noqa: F811
    """Under DDP every parameter must take part in each step's graph: the object head's too."""
    ckpt = tmp_path / "two"
    result = torchrun(TRAIN, [*flags(small_root, ckpt, "--epochs", "1", "--object_head", "4"), "--batch_size", "5"])
    assert result.returncode == 0, result.stderr[-3000:]
    log = read_log(ckpt)
    assert len(log) == 1 and 0 <= log[0]["val_jaccard"] <= 1
    assert load_ckpt(ckpt / "last.pt")["model_config"]["kwargs"]["object_head"] == 4


def test_fine_tuning_takes_the_object_head_from_the_model_and_refuses_a_different_one(small_root, tmp_path):  # noqa: F811
    base = tmp_path / "base"
    extra = ("--object_head", "4", "--norm", "batch", "--scale", "2", "--crop_size", "32")
    with contextlib.redirect_stdout(io.StringIO()), one_thread():
        train.main(flags(small_root, base, "--epochs", "1", *extra))
        with pytest.raises(ValueError, match="--object_head 8, but .* has an object head of width 4"):
            train.main(flags(small_root, tmp_path / "x", "--epochs", "1", "--init_from", str(base / "best.pt"),
                             "--object_head", "8"))
        with pytest.raises(ValueError, match="has an object head .*no --dice_weight"):
            train.main(flags(small_root, tmp_path / "y", "--epochs", "1", "--init_from", str(base / "best.pt"),
                             "--dice_weight", "1"))
        tuned = tmp_path / "tuned"  # no --object_head: the model brings its own, trained on whole frames' objects
        train.main(flags(small_root, tuned, "--epochs", "1", "--crop_size", "32", "--init_from", str(base / "best.pt")))
    last = load_ckpt(tuned / "last.pt")
    assert last["model_config"]["kwargs"]["object_head"] == 4 and last["args"]["object_head"] == 4
    before = load_ckpt(base / "last.pt")["model"]
    assert any(not torch.equal(last["model"][k], before[k]) for k in before if k.startswith("objects."))
