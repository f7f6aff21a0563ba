"""The memory-mapped copy of a split (data/memmap.py, scripts/convert_to_memmap.py) reads back exactly the PNGs and masks,
is used only while it holds the split's videos, and the loader benchmark runs on it."""
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.format import HEIGHT, NUM_FRAMES, TARGET_INDEX, WIDTH
from data.readers import LabeledFrameDataset, SplitIndex, VideoDataset, memmap_paths
from scripts import convert_to_memmap
from scripts.bench import bench_loader

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def converted(tiny_root, tmp_path_factory) -> Path:
    """A copy of tiny_root with every split converted, by the script run from its own folder."""
    root = tmp_path_factory.mktemp("mm") / "data"
    shutil.copytree(tiny_root, root)
    result = subprocess.run([sys.executable, "convert_to_memmap.py", "--root_dir", str(root), "--split", "train",
                             "val", "unlabeled", "hidden", "--num_workers", "2"], cwd=REPO / "scripts",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "unlabeled: 2 videos" in result.stdout
    return root


@pytest.mark.parametrize("split", ["train", "val", "unlabeled", "hidden"])
def test_memmap_reads_back_the_pngs_and_masks(converted, split):
    mm, png = SplitIndex(converted, split), SplitIndex(converted, split, memmap=False)
    assert mm.memmap is not None and png.memmap is None and mm.video_ids == png.video_ids
    for i in range(len(png)):
        assert np.array_equal(mm.frames(i, range(png.num_frames)), png.frames(i, range(png.num_frames)))
        if png.has_mask:
            assert np.array_equal(mm.masks(i, range(NUM_FRAMES)), png.masks(i, range(NUM_FRAMES)))
    assert not list((converted / "memmap").glob(".*tmp"))  # no temporary file left


def test_datasets_give_identical_items(converted):
    a, b = VideoDataset(converted, "val", frame_indices=[0, 10, 21]), VideoDataset(converted, "val", frame_indices=[0, 10, 21], memmap=False)
    assert a.index.memmap is not None
    for x, y in zip(a, b):
        assert x["video_id"] == y["video_id"] and (x["frames"] == y["frames"]).all() and (x["masks"] == y["masks"]).all()
    f1, m1 = LabeledFrameDataset(converted, "train")[25]
    f2, m2 = LabeledFrameDataset(converted, "train", memmap=False)[25]
    assert (f1 == f2).all() and (m1 == m2).all()


def test_stale_arrays_are_ignored_with_a_warning(converted, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(converted, root)
    vid = sorted((root / "unlabeled").iterdir())[-1]
    shutil.rmtree(vid)  # the split lost a video since the conversion
    with pytest.warns(UserWarning, match="stale unlabeled arrays.*reading the files instead.*convert_to_memmap.py"):
        index = SplitIndex(root, "unlabeled")
    assert index.memmap is None and len(index) == 1
    convert_to_memmap.main(["--root_dir", str(root), "--split", "unlabeled", "--num_workers", "1"])  # refreshed
    assert SplitIndex(root, "unlabeled").memmap is not None
    assert np.load(memmap_paths(root, "unlabeled")["ids"]).tolist() == SplitIndex(root, "unlabeled").video_ids


def test_loader_benchmark_reports_both_sources(converted, capsys):
    rows = bench_loader.main(["--root_dir", str(converted), "--videos", "2", "--batch_size", "2", "--num_workers", "0",
                              "--passes", "1"])
    assert [r["source"] for r in rows] == ["PNG", "memmap"] and all(r["frames_per_s"] > 0 for r in rows)
    assert "frames/s" in capsys.readouterr().out


def test_a_file_changed_since_the_conversion_is_read_not_the_old_arrays(converted, tmp_path):
    """A frame overwritten, a mask edited or a frame deleted after the conversion: the arrays are stale (file
    sizes and modification times are recorded), so the files are read, with a warning naming the file."""
    root = tmp_path / "data"
    shutil.copytree(converted, root)  # copy2 keeps the times: the copy's arrays are in use
    assert SplitIndex(root, "hidden").memmap is not None and SplitIndex(root, "val").memmap is not None
    hidden = sorted((root / "hidden").iterdir())[0]
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(hidden / "image_10.png")
    with pytest.warns(UserWarning, match=f"stale hidden arrays, .*{hidden.name}/image_10.png was changed"):
        index = SplitIndex(root, "hidden")
    assert index.memmap is None and index.frames(0, [10]).max() == 0  # the black frame, not the converted one

    val = sorted((root / "val").iterdir())[0]
    mask = np.load(val / "mask.npy")
    mask[TARGET_INDEX] = 0
    np.save(val / "mask.npy", mask)
    with pytest.warns(UserWarning, match=f"stale val arrays, .*{val.name}/mask.npy was changed"):
        index = SplitIndex(root, "val")
    assert index.masks(0, [TARGET_INDEX]).max() == 0

    (hidden / "image_3.png").unlink()
    with pytest.warns(UserWarning, match=f"{hidden.name}/image_3.png was deleted"), \
            pytest.raises(FileNotFoundError, match=f"{hidden.name} is missing image_3.png"):
        SplitIndex(root, "hidden")


def test_a_split_converted_without_a_bad_video_is_used_with_the_same_exclusion(converted, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(converted, root)
    bad = sorted((root / "val").iterdir())[0]
    (bad / "image_5.png").unlink()
    vid = int(bad.name.split("_")[1])
    convert_to_memmap.main(["--root_dir", str(root), "--split", "val", "--num_workers", "1",
                            "--exclude_videos", bad.name])
    index = SplitIndex(root, "val", exclude=[vid])
    assert index.memmap is not None and vid not in index.video_ids and index.excluded == [vid]


def process_gone(pid: int) -> bool:
    """True when `pid` has exited (gone, or a zombie waiting for a reaper that is not ours)."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return True


def test_pool_workers_exit_when_the_converter_is_killed(tiny_root, tmp_path):
    """kill -9 gives the converter no chance to stop its pool; its workers, blocked on work that never comes,
    used to stay forever with their memory."""
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    script = tmp_path / "slow_convert.py"
    script.write_text(f"""
import os, sys, time
sys.path.insert(0, {str(REPO)!r})
from data import memmap as c

def slow(rows):  # the workers are forked: they run this stand-in, which says who they are and waits
    os.write(1, f"{{os.getpid()}}\\n".encode())  # one write: the two workers' lines never interleave
    time.sleep(120)
    return len(rows)

c._convert_rows = slow
c.convert_split({str(root)!r}, "val", workers=2, chunk=1)
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        workers = [int(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while not all(process_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(process_gone(pid) for pid in workers)
