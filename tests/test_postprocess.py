"""Post-processing of predicted masks (Unets/postprocess.py) on hand-made masks."""
import torch

from data.classes import class_id
from Unets.postprocess import (
    connected_components, input_classes, remove_small_blobs, restrict_to_input_classes, vote_per_object, vote_per_video,
)


def hand_made() -> torch.Tensor:
    m = torch.zeros(1, 6, 8, dtype=torch.uint8)
    m[0, 0:3, 0:3] = 5  # a 9-pixel blob of class 5
    m[0, 5, 7] = 5  # a 1-pixel blob of the same class, apart
    m[0, 3, 4:6] = 7  # a 2-pixel blob of class 7
    m[0, 4, 4] = 5  # 1 pixel of class 5 touching the class-7 blob: its own blob
    m[0, 3, 0], m[0, 4, 1] = 9, 9  # diagonal neighbours: two blobs under 4-connectivity
    return m


def test_connected_components_split_by_class_and_4_connectivity():
    labels = connected_components(hand_made())[0]
    assert labels[0:3, 0:3].unique().numel() == 1 and labels[0, 0] > 0
    assert labels[5, 7] != labels[0, 0]
    assert labels[3, 4] == labels[3, 5] and labels[4, 4] != labels[3, 4]
    assert labels[3, 0] != labels[4, 1]
    assert (labels[hand_made()[0] == 0] == 0).all()
    assert len(set(labels[labels > 0].tolist())) == 6


def test_remove_small_blobs_keeps_big_ones_and_clears_the_rest():
    m = hand_made()
    out = remove_small_blobs(m, 3)
    expected = torch.zeros_like(m)
    expected[0, 0:3, 0:3] = 5
    assert torch.equal(out, expected)
    assert torch.equal(remove_small_blobs(m, 2)[0, 3, 4:6], torch.tensor([7, 7], dtype=torch.uint8))
    assert torch.equal(remove_small_blobs(m, 0), m) and torch.equal(remove_small_blobs(m, 1), m)


def test_remove_small_blobs_works_per_video_of_a_batch():
    a, b = hand_made(), torch.zeros(1, 6, 8, dtype=torch.uint8)
    b[0, 1:5, 1:5] = 3
    out = remove_small_blobs(torch.cat([a, b]), 3)
    assert torch.equal(out[1], b[0]) and out[0].count_nonzero() == 9


def test_restrict_to_input_classes_picks_the_best_class_seen():
    logits = torch.zeros(2, 49, 2, 2)
    logits[:, 9] = 5.0  # the best class, but seen in neither video's inputs
    logits[:, 3] = 1.0
    logits[1, 4] = 2.0
    inputs = torch.zeros(2, 3, 2, 2, dtype=torch.uint8)
    inputs[0, 0, 0, 1] = 3
    inputs[1, 2, 1, 1] = 4
    inputs[1, 1, 0, 0] = 3
    assert input_classes(inputs, 49).sum(1).tolist() == [2, 3]  # background always counts
    pred = restrict_to_input_classes(logits, inputs).argmax(1)
    assert (pred[0] == 3).all() and (pred[1] == 4).all()


def test_vote_per_object_gives_each_piece_of_one_color_a_single_class():
    red_cube, red_sphere = class_id("cube", "metal", "red"), class_id("sphere", "metal", "red")
    blue_cyl, blue_cube = class_id("cylinder", "rubber", "blue"), class_id("cube", "rubber", "blue")
    logits = torch.zeros(2, 49, 6, 8)
    logits[:, 0] = 5.0  # background everywhere ...
    logits[0, red_sphere, 0:3, 0:4] = 10.0  # ... but a red object: mostly sphere, confidently,
    logits[0, red_cube, 0:1, 0:4] = 10.5  # its top row a little more cube
    logits[0, blue_cube, 4:6, 4:8] = 9.0  # a blue object touching nothing red: cube,
    logits[0, blue_cyl, 4:6, 4:5] = 12.0  # one column strongly cylinder (2 px x 12 < 6 px x ...)
    out = vote_per_object(logits)
    assert torch.equal(out[0, 0:3, 0:4], torch.full((3, 4), red_sphere))
    assert out[0, 4:6, 4:8].unique().tolist() == [blue_cube]
    assert (out[0][logits[0].argmax(0) == 0] == 0).all() and (out[1] == 0).all()  # background stays
    # a piece's class keeps its color, whatever the logits of other colors say
    logits[0, class_id("cube", "metal", "green"), 0:3, 0:4] = 9.9
    assert torch.equal(vote_per_object(logits)[0, 0:3, 0:4], torch.full((3, 4), red_sphere))


def test_vote_per_video_removes_flickers_and_keeps_two_objects_of_one_color():
    """A red cube seen in 10 frames, called a red sphere in 2 of them (a flicker: it becomes the cube); a green cube
    and a green cylinder each seen in every frame (both kept); a 5-pixel blue speck in one frame, no blue object
    seen in any frame (background); a video of a batch does not vote on another's."""
    red_cube, red_sphere = class_id("cube", "metal", "red"), class_id("sphere", "metal", "red")
    green_cube, green_cyl = class_id("cube", "rubber", "green"), class_id("cylinder", "rubber", "green")
    blue = class_id("sphere", "rubber", "blue")
    video = torch.zeros(10, 40, 40, dtype=torch.uint8)
    video[:, 0:6, 0:6] = red_cube
    video[3:5, 0:6, 0:6] = red_sphere
    video[:, 10:16, 10:16] = green_cube
    video[:, 20:26, 20:26] = green_cyl
    video[7, 30, 30:35] = blue
    out = vote_per_video(video)
    assert out.shape == video.shape and out.dtype == video.dtype
    assert (out[:, 0:6, 0:6] == red_cube).all()
    assert (out[:, 10:16, 10:16] == green_cube).all() and (out[:, 20:26, 20:26] == green_cyl).all()
    assert (out[7, 30, 30:35] == 0).all()  # no blue object anywhere in the video: a sliver, made background
    other = torch.zeros_like(video)
    other[:, 0:6, 0:6] = red_sphere  # the sphere in every frame of the other video: kept there
    both = vote_per_video(torch.stack([video, other]))
    assert torch.equal(both[0], out) and torch.equal(both[1], other)
    at_10 = vote_per_video(video, share=0.1)  # 2 of 10 frames is no flicker at a 10% share
    assert torch.equal(at_10[:, :28], video[:, :28]) and (at_10[7, 30] == 0).all()
    late = video.clone()  # a green sphere enters in the last frame, beside the green cube and cylinder
    green_sphere = class_id("sphere", "rubber", "green")
    late[9, 30:36, 0:6] = green_sphere
    late[3, 10:16, 10:16] = green_sphere  # ... and the cube flickers to a sphere in frame 4: the cube it misses
    out = vote_per_video(late)
    assert (out[9, 30:36, 0:6] == green_sphere).all() and (out[3, 10:16, 10:16] == green_cube).all()
    assert (out[3, 20:26, 20:26] == green_cyl).all()
