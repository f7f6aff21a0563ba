"""Readers: the real format read unchanged, and every malformed input named in a clear error."""
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.format import HEIGHT, NUM_FRAMES, WIDTH, list_videos
from data.readers import DatasetFormatError, LabeledFrameDataset, SplitIndex, VideoDataset, read_frame

REAL = Path(__file__).resolve().parents[2] / "shared" / "real_samples" / "Dataset_Student"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real samples not found at {REAL} (../shared is absent)")


def write_video(folder: Path, frames=NUM_FRAMES, mask=True, value=0):
    folder.mkdir(parents=True)
    for t in range(frames):
        img = np.full((HEIGHT, WIDTH, 3), (t * 10) % 256, np.uint8)
        Image.fromarray(img).save(folder / f"image_{t}.png")
    if mask:
        m = np.full((NUM_FRAMES, HEIGHT, WIDTH), value, np.uint8)
        m[:, 0, 0] = np.arange(NUM_FRAMES) % 49
        np.save(folder / "mask.npy", m)


@pytest.fixture
def root(tmp_path):
    for vid in (0, 2, 10):  # numeric order is 0, 2, 10; string order would be 0, 10, 2
        write_video(tmp_path / "train" / f"video_{vid}")
    write_video(tmp_path / "val" / "video_11")
    write_video(tmp_path / "unlabeled" / "video_12", mask=False)
    write_video(tmp_path / "hidden" / "video_13", frames=11, mask=False)
    return tmp_path


def test_numeric_order_and_items(root):
    ds = LabeledFrameDataset(root, "train")
    assert ds.index.video_ids == [0, 2, 10]
    assert len(ds) == 3 * NUM_FRAMES
    frame, mask = ds[NUM_FRAMES + 5]  # video_2, frame index 5
    assert frame.shape == (3, HEIGHT, WIDTH) and frame.dtype.is_floating_point is False
    assert int(frame[0, 0, 0]) == 50 and int(mask[0, 0]) == 5
    videos = VideoDataset(root, "val")
    item = videos[0]
    assert item["video_id"] == 11
    assert item["frames"].shape == (11, 3, HEIGHT, WIDTH) and item["masks"].shape == (1, HEIGHT, WIDTH)
    assert int(item["masks"][0, 0, 0]) == 21  # frame 22's mask by default
    hidden = VideoDataset(root, "hidden")
    assert hidden.video_ids == [13] and "masks" not in hidden[0]
    unl = VideoDataset(root, "unlabeled", frame_indices=range(22))
    assert unl[0]["frames"].shape[0] == 22 and "masks" not in unl[0]


def test_missing_root_and_split(tmp_path, root):
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        VideoDataset(tmp_path / "nope", "val")
    (root / "val2").mkdir()
    with pytest.raises(ValueError, match="unknown split"):
        VideoDataset(root, "val2")
    import shutil
    shutil.rmtree(root / "val")
    with pytest.raises(FileNotFoundError, match=r"split folder not found: .*val"):
        VideoDataset(root, "val")


def test_empty_split_and_bad_folder_name(root):
    for v in (root / "val").iterdir():
        import shutil
        shutil.rmtree(v)
    with pytest.raises(ValueError, match="empty split"):
        VideoDataset(root, "val")
    (root / "train" / "video_x").mkdir()
    with pytest.raises(ValueError, match="video_x"):
        LabeledFrameDataset(root, "train")


def test_missing_frame_and_mask_are_named(root):
    (root / "train" / "video_2" / "image_17.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"video_2 is missing image_17\.png"):
        LabeledFrameDataset(root, "train")
    (root / "val" / "video_11" / "mask.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"video_11 is missing mask\.npy"):
        VideoDataset(root, "val")
    # A hidden video has 11 frames only: asking for frame 22 is a clear error, not an index crash.
    with pytest.raises(ValueError, match="frames 0..10 only"):
        VideoDataset(root, "hidden", frame_indices=[21])


def test_unreadable_png_wrong_size_and_mode(root, tmp_path):
    bad = root / "train" / "video_0" / "image_3.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DatasetFormatError, match=r"unreadable PNG .*image_3\.png"):
        LabeledFrameDataset(root, "train")[3]
    Image.fromarray(np.zeros((HEIGHT + 1, WIDTH, 3), np.uint8)).save(bad)
    with pytest.raises(DatasetFormatError, match=r"image_3\.png: image is 240x161, expected 240x160"):
        read_frame(bad)
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 4), np.uint8)).save(bad)
    with pytest.raises(DatasetFormatError, match="mode is RGBA"):
        read_frame(bad)
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(bad)
    with pytest.raises(DatasetFormatError, match="mode is L"):
        read_frame(bad)


def png_16bit_rgb(path: Path, value: int = 0x8080) -> None:
    """A 240x160 16-bit RGB PNG (PIL writes none): it decodes as mode RGB, one level off, so only its header tells."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + struct.pack(">H", value) * 3 * WIDTH
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", WIDTH, HEIGHT, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(row * HEIGHT)) + chunk(b"IEND", b""))


def test_frames_are_checked_by_content_not_by_name(root):
    bad = root / "train" / "video_0" / "image_3.png"
    png_16bit_rgb(bad)
    assert Image.open(bad).mode == "RGB"  # what the old check looked at
    with pytest.raises(DatasetFormatError, match=r"image_3\.png: image mode is RGB \(16-bit\), expected 8-bit RGB"):
        read_frame(bad)
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(bad, format="JPEG")
    with pytest.raises(DatasetFormatError, match=r"image_3\.png: JPEG data; frames must be 8-bit RGB PNGs"):
        read_frame(bad)


def test_video_problems_lists_every_fault_of_a_video(root):
    from data.readers import video_problems

    video = root / "train" / "video_2"
    assert video_problems(video, "train", level="decode") == []
    (video / "image_4.png").unlink()
    Image.fromarray(np.zeros((HEIGHT, WIDTH + 2, 3), np.uint8)).save(video / "image_7.png")
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(video / "image_22.png")
    np.save(video / "mask.npy", np.full((NUM_FRAMES, HEIGHT, WIDTH), 60, np.uint8))
    found = [str(e) for e in video_problems(video, "train", level="headers")]
    assert len(found) == 4
    assert "missing image_4.png" in found[0] and "image_22.png" in found[1]
    assert "image_7.png: image is 242x160" in found[2] and "value 60 out of range" in found[3]
    assert len(video_problems(video, "train", level="names")) == 1  # what SplitIndex checks at start


@pytest.mark.parametrize("mask, message", [
    (np.zeros((21, HEIGHT, WIDTH), np.uint8), r"mask shape \(21, 160, 240\)"),
    (np.zeros((NUM_FRAMES, HEIGHT, WIDTH), np.int64), "dtype int64"),
    (np.full((NUM_FRAMES, HEIGHT, WIDTH), 49, np.uint8), "value 49 out of range"),
])
def test_bad_masks(root, mask, message):
    np.save(root / "val" / "video_11" / "mask.npy", mask)
    with pytest.raises(DatasetFormatError, match=message):
        VideoDataset(root, "val")[0]


def test_garbage_mask_file(root):
    (root / "val" / "video_11" / "mask.npy").write_bytes(b"garbage")
    with pytest.raises(DatasetFormatError, match="unreadable mask"):
        VideoDataset(root, "val")[0]


def test_unlabeled_split_has_no_masks(root):
    with pytest.raises(ValueError, match="no masks"):
        LabeledFrameDataset(root, "unlabeled")
    with pytest.raises(ValueError, match="no masks"):
        SplitIndex(root, "hidden", need_mask=True)


@needs_real
def test_reads_the_real_samples_unchanged():
    train = LabeledFrameDataset(REAL, "train")
    assert train.index.video_ids == [0, 1, 2] and len(train) == 66
    frame, mask = train[21]
    real_png = np.asarray(Image.open(REAL / "train" / "video_0" / "image_21.png"))
    assert (frame.permute(1, 2, 0).numpy() == real_png).all()
    assert (mask.numpy() == np.load(REAL / "train" / "video_0" / "mask.npy")[21]).all()
    val = VideoDataset(REAL, "val")
    assert val.video_ids == [1000, 1001, 1002]
    unl = VideoDataset(REAL, "unlabeled", frame_indices=range(22))
    assert unl.video_ids == [2000, 2002, 2005] and unl[1]["frames"].shape == (22, 3, HEIGHT, WIDTH)
    assert [v for v, _ in list_videos(REAL / "val")] == [1000, 1001, 1002]


def test_one_number_names_one_video_of_a_root(root):
    import shutil
    write_video(root / "train" / "video_05")
    assert LabeledFrameDataset(root, "train").index.video_ids == [0, 2, 5, 10]  # a padded name reads by number
    shutil.copytree(root / "train" / "video_05", root / "train" / "video_5")
    with pytest.raises(ValueError, match=r"train: 1 video numbers name two folders \(video_05 and video_5\)"):
        LabeledFrameDataset(root, "train")
    shutil.rmtree(root / "train" / "video_5")
    shutil.copytree(root / "val" / "video_11", root / "train" / "video_11")  # a val video in train too
    with pytest.raises(DatasetFormatError, match="1 video numbers are in both .*val and .*train \\(video_11\\)"):
        VideoDataset(root, "val")
    shutil.rmtree(root / "train" / "video_11")
    shutil.rmtree(root / "val")
    (root / "val").symlink_to(root / "train", target_is_directory=True)  # val is train
    with pytest.raises(DatasetFormatError, match="are one folder"):
        VideoDataset(root, "val")


def test_a_png_cut_after_its_header_is_found_by_header(root):
    from data.readers import check_png_header
    frame = root / "train" / "video_0" / "image_3.png"
    frame.write_bytes(frame.read_bytes()[:300])
    with pytest.raises(DatasetFormatError, match="truncated \\(it does not end with the PNG IEND chunk\\)"):
        check_png_header(frame)
