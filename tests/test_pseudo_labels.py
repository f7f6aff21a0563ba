"""The pseudo-label command and store: writes, resumes without redoing finished videos, refuses mixes;
the train split is read as its true masks."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data.pseudo_labels import StoredMaskVideos, TrueMaskVideos, label_split, open_store
from Unets.postprocess import vote_per_video
from data.readers import DatasetFormatError, SplitIndex
from engine import atomic_save, make_checkpoint
from Unets.unet import UNet

REPO = Path(__file__).resolve().parents[1]


def fake_segment(frames: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for the U-Net: (N, 3, H, W) uint8 -> (N, H, W) ids."""
    return (frames[:, 0].long() // 6) % 49


@pytest.fixture(scope="module")
def unet_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = UNet(base_channels=2)
    path = tmp_path_factory.mktemp("unet") / "best.pt"
    atomic_save(make_checkpoint(model, torch.optim.AdamW(model.parameters()), None, 0, 0.0, {}), path)
    return path


def test_the_command_writes_every_frame_of_every_video(tiny_root, unet_ckpt, tmp_path):
    out = tmp_path / "pl"
    cmd = [sys.executable, "scripts/make_pseudo_labels.py", "--root_dir", tiny_root, "--saved_seg_model_dir",
           unet_ckpt, "--split", "unlabeled", "--out", out, "--device", "cpu", "--batch_size", 1]
    result = subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    masks, ids, meta = open_store(out, "unlabeled", tiny_root)
    index = SplitIndex(tiny_root, "unlabeled")
    assert masks.shape == (len(index), 22, 160, 240) and masks.dtype == np.uint8
    assert ids.tolist() == index.video_ids and meta["frames"] == 22
    assert masks.max() < 49
    # val and hidden: the 11 input frames only
    cmd[cmd.index("unlabeled")] = "hidden"
    assert subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True).returncode == 0
    assert open_store(out, "hidden", tiny_root)[0].shape[1] == 11


def test_resumes_after_an_interruption_without_redoing_finished_videos(tiny_root, unet_ckpt, tmp_path):
    out, calls = tmp_path / "pl", []

    def dies_after_one_batch(frames):
        if calls:
            raise KeyboardInterrupt
        calls.append(len(frames))
        return fake_segment(frames)

    with pytest.raises(KeyboardInterrupt):
        label_split(dies_after_one_batch, tiny_root, "unlabeled", out, segmenter=unet_ckpt, batch_size=1)
    assert np.load(out / "unlabeled" / "done.npy").tolist() == [True, False]
    with pytest.raises(ValueError, match="unfinished"):
        StoredMaskVideos(out, "unlabeled", tiny_root)

    seen = []

    def counting(frames):
        seen.append(len(frames))
        return fake_segment(frames)

    label_split(counting, tiny_root, "unlabeled", out, segmenter=unet_ckpt, batch_size=1)
    assert seen == [22]  # only the second video was segmented again
    index = SplitIndex(tiny_root, "unlabeled")
    store = StoredMaskVideos(out, "unlabeled", tiny_root)
    for i in range(len(index)):
        frames = torch.from_numpy(index.frames(i, range(22))).movedim(-1, 1)
        assert torch.equal(store[i]["masks"], fake_segment(frames).to(torch.uint8))
    label_split(counting, tiny_root, "unlabeled", out, segmenter=unet_ckpt)
    assert seen == [22]  # finished: nothing to do


def test_refuses_another_segmenter_and_the_train_split(tiny_root, unet_ckpt, tmp_path):
    out = tmp_path / "pl"
    label_split(fake_segment, tiny_root, "val", out, segmenter=unet_ckpt, num_videos=1)
    other = tmp_path / "other.pt"
    other.write_bytes(unet_ckpt.read_bytes() + b"x")
    with pytest.raises(ValueError, match="another segmenter"):
        label_split(fake_segment, tiny_root, "val", out, segmenter=other)
    with pytest.raises(ValueError, match="other videos"):
        label_split(fake_segment, tiny_root, "val", out, segmenter=unet_ckpt, num_videos=2)
    with pytest.raises(ValueError, match="true masks"):
        label_split(fake_segment, tiny_root, "train", out, segmenter=unet_ckpt)
    assert json.loads((out / "val" / "meta.json").read_text())["frames"] == 11


def test_the_train_split_is_read_as_its_true_masks(tiny_root):
    videos = TrueMaskVideos(tiny_root, "train")
    index = SplitIndex(tiny_root, "train")
    assert len(videos) == len(index)
    for i in range(len(videos)):
        item = videos[i]
        assert item["video_id"] == index.video_ids[i]
        assert np.array_equal(item["masks"].numpy(), np.load(index.paths[i] / "mask.npy"))


def test_a_store_of_another_dataset_with_the_same_video_ids_is_refused(tiny_root, unet_ckpt, tmp_path):
    out, other = tmp_path / "pl", tmp_path / "other"
    label_split(fake_segment, tiny_root, "unlabeled", out, segmenter=unet_ckpt)
    shutil.copytree(tiny_root, other)
    video = sorted((other / "unlabeled").iterdir())[0]
    Image.fromarray(np.zeros((160, 240, 3), np.uint8)).save(video / "image_5.png")  # same ids, other frames
    assert SplitIndex(other, "unlabeled").video_ids == SplitIndex(tiny_root, "unlabeled").video_ids
    with pytest.raises(ValueError, match=f"{out / 'unlabeled'} holds pseudo-labels of another dataset than "
                                         f"{other / 'unlabeled'}.*make_pseudo_labels.py"):
        StoredMaskVideos(out, "unlabeled", other)
    with pytest.raises(ValueError, match="another dataset"):
        label_split(fake_segment, other, "unlabeled", out, segmenter=unet_ckpt)
    store = StoredMaskVideos(out, "unlabeled", tiny_root)  # its own dataset: accepted
    first, second = store.video_ids
    kept = StoredMaskVideos(out, "unlabeled", tiny_root, exclude=[first])  # a video found bad since: left out
    assert kept.video_ids == [second] and len(kept) == 1 and torch.equal(kept[0]["masks"], store[1]["masks"])


def test_a_damaged_store_is_named_and_never_grown_back_with_zeros(tiny_root, unet_ckpt, tmp_path):
    out = tmp_path / "pl"
    label_split(fake_segment, tiny_root, "unlabeled", out, segmenter=unet_ckpt)
    masks = out / "unlabeled" / "masks.npy"
    size = masks.stat().st_size
    with open(masks, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(DatasetFormatError, match=f"{masks} is damaged.*delete {out / 'unlabeled'}"):
        label_split(fake_segment, tiny_root, "unlabeled", out, segmenter=unet_ckpt)  # every row was marked done
    assert masks.stat().st_size == size // 2
    with pytest.raises(DatasetFormatError, match=f"{masks} is damaged"):
        StoredMaskVideos(out, "unlabeled", tiny_root)
    np.save(out / "unlabeled" / "ids.npy", np.array([{"a": 1}], dtype=object))  # a pickled array
    with pytest.raises(DatasetFormatError, match="ids.npy is damaged"):
        StoredMaskVideos(out, "unlabeled", tiny_root)
    (out / "unlabeled" / "meta.json").write_text("{not json")
    with pytest.raises(DatasetFormatError, match="meta.json is damaged"):
        StoredMaskVideos(out, "unlabeled", tiny_root)


def test_a_reconstructor_passed_as_the_segmenter_is_named_not_blamed_on_the_store(tiny_root, unet_ckpt, tmp_path):
    from pipeline.val_inputs import prepare_val_inputs
    from engine import CheckpointError

    out = tmp_path / "pl"
    label_split(fake_segment, tiny_root, "val", out, segmenter=unet_ckpt, per_video=vote_per_video)
    recon = tmp_path / "recon.pt"
    torch.save({**torch.load(unet_ckpt, weights_only=True), "model_config": {"name": "reconstructor", "kwargs": {}}},
               recon)
    with pytest.raises(CheckpointError, match="--saved_seg_model_dir: .*holds a 'reconstructor' model") as e:
        prepare_val_inputs(tiny_root, out, recon, "cpu")
    assert "delete" not in str(e.value)
    prepare_val_inputs(tiny_root, out, unet_ckpt, "cpu", print_fn=lambda m: None)  # the store is fine
    plain = tmp_path / "plain"  # made without the per-video vote (or by an older version): refused, with the fix
    label_split(fake_segment, tiny_root, "val", plain, segmenter=unet_ckpt)
    with pytest.raises(ValueError, match="per-video vote .*delete"):
        prepare_val_inputs(tiny_root, plain, unet_ckpt, "cpu")
    with pytest.raises(ValueError, match="per-video step None, not vote_per_video v3"):
        label_split(fake_segment, tiny_root, "val", plain, segmenter=unet_ckpt, per_video=vote_per_video)


def test_a_training_store_made_without_the_vote_is_refused_by_the_forecasters_readers(tiny_root, unet_ckpt, tmp_path):
    """The trainers read the unlabeled store with per_video=STORE_VOTE: one made without the vote (an older
    version's) is refused with the fix, one made with it is read."""
    from pipeline.val_inputs import STORE_VOTE

    label_split(fake_segment, tiny_root, "unlabeled", tmp_path / "plain", segmenter=unet_ckpt)
    with pytest.raises(ValueError, match="per-video step None, not vote_per_video.*delete .*make_pseudo_labels"):
        StoredMaskVideos(tmp_path / "plain", "unlabeled", tiny_root, per_video=STORE_VOTE)
    label_split(fake_segment, tiny_root, "unlabeled", tmp_path / "voted", segmenter=unet_ckpt, per_video=vote_per_video)
    assert len(StoredMaskVideos(tmp_path / "voted", "unlabeled", tiny_root, per_video=STORE_VOTE)) == 2


def test_a_run_folder_names_its_best_pt_as_the_segmenter(tiny_root, unet_ckpt, tmp_path):
    """--saved_seg_model_dir takes a run folder as every such flag does; the store records its best.pt's hash."""
    from pipeline.val_inputs import prepare_val_inputs

    prepare_val_inputs(tiny_root, tmp_path / "pl", unet_ckpt.parent, "cpu")
    assert open_store(tmp_path / "pl", "val", tiny_root)[2]["segmenter"] == str(unet_ckpt)
    prepare_val_inputs(tiny_root, tmp_path / "pl", unet_ckpt.parent, "cpu")  # reused: the same segmenter
