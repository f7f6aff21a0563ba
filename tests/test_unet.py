"""The U-Net: named parts, 49 classes at the input's size (odd sizes too), width from one parameter,
and a configuration that rebuilds it from a checkpoint alone."""
import pytest
import torch

from data.classes import NUM_CLASSES, class_id
from data.format import HEIGHT, WIDTH
from engine import CheckpointError, build_model, load_model, make_checkpoint, atomic_save, model_config
from Unets.unet import DoubleConv, Down, FactoredOutConv, OutConv, Up, UNet


@pytest.mark.parametrize("head", ["factored", "flat"])
@pytest.mark.parametrize("size", [(HEIGHT, WIDTH), (37, 51), (16, 16), (33, 18)])
def test_logits_have_49_classes_at_input_size(size, head):
    torch.manual_seed(0)
    model = UNet(base_channels=4, head=head).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, NUM_CLASSES, *size)
    assert torch.isfinite(out).all()


def test_width_is_one_parameter():
    def params(c):
        return sum(p.numel() for p in UNet(base_channels=c).parameters())
    small, big = UNet(base_channels=8), UNet(base_channels=16)
    assert small.inc[0].out_channels == 8 and big.inc[0].out_channels == 16
    assert small.down4[1][0].out_channels == 16 * 8
    assert 3.5 < params(16) / params(8) < 4.1  # convolutions dominate: parameters grow with the width squared


def test_parts_compose_like_the_figure():
    model = UNet(base_channels=4)
    assert [type(getattr(model, n)) for n in ("inc", "down1", "down4", "up1", "up4", "outc")] == \
        [DoubleConv, Down, Down, Up, Up, FactoredOutConv]
    assert type(UNet(base_channels=4, head="flat").outc) is OutConv
    up = Up(8, 4)
    skip, low = torch.rand(1, 4, 9, 7), torch.rand(1, 8, 4, 3)  # 9x7 pooled to 4x3: Up pads back to 9x7
    assert up(low, skip).shape == (1, 4, 9, 7)


def test_one_frame_does_not_depend_on_its_batch():
    """GroupNorm, not BatchNorm: what DDP equivalence and train/eval agreement rest on."""
    torch.manual_seed(0)
    model = UNet(base_channels=4).train()
    x = torch.rand(3, 3, 32, 48)
    assert torch.allclose(model(x)[:1], model(x[:1]), atol=1e-5)


def test_row_channel_places_a_crop_in_its_frame():
    """The row channel (the depth cue): a crop starting at row `top` sees the rows of the whole frame."""
    torch.manual_seed(0)
    model = UNet(base_channels=4).eval()
    frame = torch.rand(1, 3, HEIGHT, WIDTH)
    rows = model.row_channel(frame)[0, 0, :, 0]
    assert rows[0] == -1 and torch.isclose(rows[-1], torch.tensor(1.0))
    tops = torch.tensor([0, 40])
    crops = torch.stack([frame[0, :, t:t + 64, 10:74] for t in tops.tolist()])
    channel = model.row_channel(crops, tops)
    assert torch.allclose(channel[1, 0, :, 0], rows[40:104]) and torch.allclose(channel[0, 0, :, 5], rows[:64])
    with torch.no_grad():  # the same pixels at another row give other logits: the row is an input
        assert not torch.allclose(model(crops[:1], torch.tensor([0])), model(crops[:1], torch.tensor([90])))
        assert torch.equal(model(frame), model(frame, torch.tensor([0])))  # whole frames start at row 0
    plain = UNet(base_channels=4, coords=False)
    assert plain.inc[0].in_channels == 3 and model.inc[0].in_channels == 4
    with pytest.raises(ValueError, match="coords=True"):
        plain(crops, tops)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="base_channels"):
        UNet(base_channels=0)
    with pytest.raises(ValueError, match="head must be one of"):
        UNet(head="tree")
    with pytest.raises(ValueError, match="factored needs the 49 classes"):
        UNet(num_classes=10)  # the factored head knows the competition's classes only
    assert UNet(base_channels=2, num_classes=10, head="flat")(torch.rand(1, 3, 16, 16)).shape[1] == 10


def test_rebuilt_from_checkpoint_alone(tmp_path):
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    opt = torch.optim.AdamW(model.parameters())
    path = tmp_path / "best.pt"
    atomic_save(make_checkpoint(model, opt, None, 3, 0.5, {"base_channels": 4}), path)
    loaded = load_model(path, UNet)  # no width flag needed
    assert loaded.config == model.config and not loaded.training
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert model_config(model) == {"name": "unet", "kwargs": {"base_channels": 4, "in_channels": 3, "num_classes": 49,
                                                               "head": "factored", "coords": True, "crop_size": 0}}


def test_wrong_kind_of_model_is_named():
    class Other(torch.nn.Module):
        NAME = "reconstructor"
    with pytest.raises(CheckpointError, match="holds a 'unet' model, expected a 'reconstructor' model"):
        build_model({"name": "unet", "kwargs": {}}, Other)
    with pytest.raises(CheckpointError, match="cannot build UNet"):
        build_model({"name": "unet", "kwargs": {"width": 3}}, UNet)


@pytest.mark.parametrize("head", ["factored", "flat"])
def test_untrained_model_starts_from_the_class_prior(head):
    torch.manual_seed(0)
    model = UNet(base_channels=4, head=head).eval()
    with torch.no_grad():
        probs = model(torch.rand(1, 3, 32, 32)).softmax(dim=1)  # (1, 49, H, W)
    assert probs[:, 0].mean() > 0.5 and (probs.argmax(dim=1) == 0).float().mean() > 0.5
    assert probs[:, 1:].max() < probs[:, 0].min()  # objects start rare, none preferred over background


def test_factored_head_sums_the_parts_of_each_class():
    """Logit of (shape, material, color) = object + shape + material + color; background on its own."""
    torch.manual_seed(0)
    head = FactoredOutConv(5)
    x = torch.randn(2, 5, 3, 4)
    p = head.conv(x)  # (2, 15, 3, 4): background, object, 3 shapes, 2 materials, 8 colors
    out = head(x)
    assert out.shape == (2, NUM_CLASSES, 3, 4)
    assert torch.equal(out[:, 0], p[:, 0])
    # metal green sphere: shape 1, material 0, color 3 (data/classes.py)
    cid = class_id("sphere", "metal", "green")
    assert torch.allclose(out[:, cid], p[:, 1] + p[:, 2 + 1] + p[:, 5 + 0] + p[:, 7 + 3])
    cid = class_id("cylinder", "rubber", "yellow")
    assert torch.allclose(out[:, cid], p[:, 1] + p[:, 2 + 2] + p[:, 5 + 1] + p[:, 7 + 7])
    # its argmax over objects is the best shape, material and color taken apart
    objects = out[:, 1:].argmax(1) + 1
    best = (p[:, 2:5].argmax(1), p[:, 5:7].argmax(1), p[:, 7:15].argmax(1))
    assert torch.equal(objects, 1 + best[2] + 8 * best[1] + 16 * best[0])


def test_batch_norm_and_scale_are_options_recorded_only_when_set():
    """norm="batch" (eval: a pixel's logits depend on its neighbourhood only, so a crop and its whole frame
    agree away from the crop's border) and scale=2 (the network at half resolution, logits at the input's)."""
    torch.manual_seed(0)
    assert "norm" not in UNet(base_channels=4).config and "scale" not in UNet(base_channels=4).config
    model = UNet(base_channels=4, norm="batch", scale=2)
    assert model.config["norm"] == "batch" and model.config["scale"] == 2
    model.train()
    model(torch.rand(4, 3, 64, 64))  # running statistics move off their start
    model.eval()
    frame = torch.rand(1, 3, HEIGHT, WIDTH)
    with torch.no_grad():
        whole = model(frame)
        assert whole.shape == (1, NUM_CLASSES, HEIGHT, WIDTH) and model(torch.rand(1, 3, 37, 51)).shape[-2:] == (37, 51)
        crop = model(frame[:, :, 32:128, 64:160], torch.tensor([32]))
    # the centre of a 96 x 96 crop sees what the whole frame's pass sees there (the edges see zero padding)
    assert (crop[..., 40:56, 40:56] - whole[..., 72:88, 104:120]).abs().max() < 1e-3
    rebuilt = UNet(**model.config)
    assert rebuilt.config == model.config
    with pytest.raises(ValueError, match="norm must be one of"):
        UNet(norm="layer")
    with pytest.raises(ValueError, match="scale must be an int"):
        UNet(scale=0)
