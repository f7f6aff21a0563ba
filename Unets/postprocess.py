"""Optional clean-ups of predicted frame-22 masks, each switched on by its own inference flag.

- restrict_to_input_classes: a class absent from the input masks (the U-Net's frames 1-11) cannot
  be in frame 22 (an object entering later is invisible to every model), so its logits are removed
  and the pixel takes the best class that was seen.
- remove_small_blobs: connected pieces of one object class smaller than min_size pixels (specks at
  object edges, a class flickering inside another object) become background.
- vote_per_object: every connected piece of one predicted color takes the one class (of that
  color) with the most summed log-probability over its pixels, so an object gets a single shape and
  material instead of a patchwork (pixels at an object's rim, far from its telling parts, are the
  ones a segmenter gets wrong). Used by the U-Net's inference (Unets/segment.py: segment).
- vote_per_video: over the frames of one video, a class that names its color's pixels in under a quarter of the
  frames where that color is seen is a flicker: in each frame it becomes the kept class of its color that the frame
  lacks, or stays itself where the frame lacks none (another object of that color, one entering late); an object
  keeps its shape and material from frame to frame, and two objects of one color each keep theirs. A color that no
  frame shows on an object-sized piece is a sliver, and becomes background.
  Used wherever a video's frames are segmented together (Unets/segment.py: segment_videos).
All work on batches, on any device, with torch alone.
"""
import torch
import torch.nn.functional as F

from data.classes import BACKGROUND, COLORS, NUM_CLASSES, class_parts


def input_classes(inputs: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, C) bool: the classes present anywhere in each video's input masks (B, T, H, W); background always."""
    B = inputs.shape[0]
    present = torch.zeros(B, num_classes, dtype=torch.bool, device=inputs.device)
    present.scatter_(1, inputs.reshape(B, -1).long(), True)
    present[:, BACKGROUND] = True
    return present


def restrict_to_input_classes(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """logits (B, C, H, W) with the classes absent from inputs (B, T, H, W) set to -inf (argmax never picks them)."""
    present = input_classes(inputs, logits.shape[1])  # (B, C)
    return logits.masked_fill(~present[:, :, None, None], float("-inf"))


def connected_components(mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W) class ids -> (B, H, W) int64 component labels (4-connectivity, same class), 0 on background.

    Label propagation: every object pixel starts with its own label (1 + its flat index) and takes the
    largest label of its same-class neighbours until nothing changes. After each pass a pixel also
    takes the label of the pixel its label names (pointer jumping: that pixel is in the same piece,
    its label is at least as large), so a blob settles in a few passes instead of one per pixel of
    its length: 3-4 times faster on frames of the synthetic data.
    """
    B, H, W = mask.shape
    labels = torch.arange(1, H * W + 1, device=mask.device).reshape(1, H, W).expand(B, H, W).clone()
    labels[mask == BACKGROUND] = 0
    padded_mask = F.pad(mask.long(), (1, 1, 1, 1), value=-1)  # (B, H+2, W+2): -1 matches no class
    shifts = ((0, 1), (2, 1), (1, 0), (1, 2))  # up, down, left, right, as offsets into the padded frame
    same = [padded_mask[:, dy:dy + H, dx:dx + W] == mask for dy, dx in shifts]  # neighbour of the same class
    while True:
        padded = F.pad(labels, (1, 1, 1, 1))
        new = labels
        for (dy, dx), s in zip(shifts, same):
            new = torch.maximum(new, torch.where(s, padded[:, dy:dy + H, dx:dx + W], 0))
        new = torch.where(mask == BACKGROUND, 0, new)
        flat = new.reshape(B, -1)
        jumped = torch.gather(flat, 1, (flat - 1).clamp(min=0)).reshape(B, H, W)
        new = torch.where(new > 0, torch.maximum(new, jumped), 0)
        if torch.equal(new, labels):
            return labels
        labels = new


def remove_small_blobs(mask: torch.Tensor, min_size: int) -> torch.Tensor:
    """(B, H, W) class ids with every same-class 4-connected blob of fewer than min_size pixels set to background."""
    if min_size <= 1:
        return mask
    labels = connected_components(mask)
    B = mask.shape[0]
    flat = labels.reshape(B, -1)
    sizes = torch.zeros(B, flat.shape[1] + 1, dtype=torch.long, device=mask.device)
    sizes.scatter_add_(1, flat, torch.ones_like(flat))  # (B, H*W+1): pixels per label
    small = torch.gather(sizes, 1, flat).reshape(mask.shape) < min_size
    return torch.where(small & (labels > 0), torch.full_like(mask, BACKGROUND), mask)


# Color of each class, 1..8 (0 for the background): what vote_per_object groups pixels by.
CLASS_COLOR = torch.tensor([0] + [1 + COLORS.index(class_parts(c)[2]) for c in range(1, NUM_CLASSES)])


_COLOR_CLASSES = torch.stack([torch.nonzero(CLASS_COLOR == c).flatten() for c in range(1, len(COLORS) + 1)])  # (8, 6)


def color_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, 49, H, W) class logits -> (B, 9, H, W) logits of background and the 8 colors (each the
    log-sum-exp of its classes'), indexed like CLASS_COLOR."""
    objects = logits[:, _COLOR_CLASSES.to(logits.device)]  # (B, 8, 6, H, W)
    return torch.cat([logits[:, :1], objects.logsumexp(dim=2)], dim=1)


def _vote(logp: torch.Tensor, pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One video or frame: logp (C, N) log-probabilities, pred (N,) argmax ids, labels (N,) pieces (0: none)
    -> (N,) ids, every piece its color's class of largest summed log-probability."""
    C = logp.shape[0]
    class_color = CLASS_COLOR.to(logp.device)
    pieces, inverse = torch.unique(labels, return_inverse=True)  # compact: a few dozen pieces, not N labels
    sums = torch.zeros(len(pieces), C, device=logp.device)
    sums.index_add_(0, inverse, logp.t())  # (pieces, C)
    piece_color = torch.zeros(len(pieces), dtype=torch.long, device=logp.device)
    piece_color[inverse] = class_color[pred]  # one color per piece
    allowed = class_color.view(1, C) == piece_color.unsqueeze(1)  # (pieces, C)
    best = sums.masked_fill(~allowed, float("-inf")).argmax(dim=1)  # (pieces,)
    return torch.where(labels > 0, best[inverse], pred)


def color_pieces(pred: torch.Tensor) -> torch.Tensor:
    """(B, H, W) class ids -> (B, H, W) labels of the 4-connected pieces of one color (0: background):
    the objects a segmentation shows, whatever shape and material it gives their pixels."""
    return connected_components(CLASS_COLOR.to(pred.device)[pred])


def vote_per_object(logits: torch.Tensor) -> torch.Tensor:
    """logits (B, 49, H, W) -> (B, H, W) class ids: the argmax, then within every 4-connected piece of
    one predicted color, the class of that color with the largest sum of log-probabilities over the
    piece. Background pixels stay background; colors (learned first and best) are not changed."""
    B, C, H, W = logits.shape
    if C != NUM_CLASSES:
        raise ValueError(f"vote_per_object needs the {NUM_CLASSES} class logits, got {C}")
    pred = logits.argmax(dim=1)
    labels = color_pieces(pred).reshape(B, -1)  # (B, H*W)
    out = pred.reshape(B, -1).clone()
    for b in range(B):  # object pixels only (a few % of a frame): background pixels keep their argmax
        where = torch.nonzero(labels[b] > 0).squeeze(1)
        if len(where):
            logp = logits[b].reshape(C, -1)[:, where].float().log_softmax(dim=0)  # (C, object pixels)
            out[b, where] = _vote(logp, out[b, where], labels[b, where])
    return out.reshape(B, H, W)


VIDEO_SHARE = 0.25  # a class seen in fewer than this share of its color's frames is a flicker (chosen on synthetic val)
MIN_SEEN_PIXELS = 20  # a class counts as seen in a frame from this many pixels on
# what a pseudo-label store records of the vote that made it (data/pseudo_labels.py: per_video_name): a store made
# by another version or setting is refused, not mixed
VIDEO_VOTE = f"vote_per_video v3 share {VIDEO_SHARE} min_pixels {MIN_SEEN_PIXELS}"


def vote_per_video(masks: torch.Tensor, share: float = VIDEO_SHARE) -> torch.Tensor:
    """masks (..., T, H, W) class ids, the frames of one video along T -> the same, where a class seen (at least
    MIN_SEEN_PIXELS pixels of it in a frame) in fewer than `share` of the frames in which its color is seen, or never
    seen, is a flicker if its color has a kept class: in a frame where it is seen it becomes the kept class of its
    color that the frame misses (the most frequent), or stays itself if the frame misses none (another object, one
    entering late); elsewhere (slivers) it becomes the color's most frequent kept class. A class never seen, of a
    color never seen in the video either, becomes background (no frame shows that color on an object-sized share of
    pixels)."""
    shape = masks.shape
    T = shape[-3]
    videos = masks.reshape(-1, T, shape[-2] * shape[-1]).long()
    class_color = CLASS_COLOR.to(masks.device)
    onehot = F.one_hot(class_color, len(COLORS) + 1).to(torch.float32)  # (49, 9)
    out = []
    for video in videos:
        counts = torch.zeros(T, NUM_CLASSES, device=masks.device, dtype=torch.long)
        counts.scatter_add_(1, video, torch.ones_like(video))
        seen = counts >= MIN_SEEN_PIXELS  # (T, 49)
        seen[:, BACKGROUND] = False
        class_frames = seen.sum(0).float()  # (49,)
        color_frames = ((seen.float() @ onehot) > 0).sum(0).float()  # (9,): frames in which each color is seen
        kept = (class_frames > 0) & (class_frames >= share * color_frames[class_color])
        # A flickering class of a color with kept classes: in each frame, an object-sized piece of it is the kept
        # object of its color that this frame misses (the most frequent of them); when the frame misses none, it is
        # another object (one entering late, say) and keeps its class. Smaller pieces are slivers of the color's
        # most frequent kept class.
        lut = torch.arange(NUM_CLASSES, device=masks.device).repeat(T, 1)  # (T, 49)
        for c in torch.nonzero(~kept).flatten().tolist():
            if c == BACKGROUND:
                continue
            mates = torch.nonzero(kept & (class_color == class_color[c])).flatten()  # ascending: ties go to the first
            if len(mates) == 0:
                continue
            order = mates[torch.argsort(class_frames[mates], descending=True, stable=True)]
            lut[:, c] = order[0]
            for t in torch.nonzero(seen[:, c]).flatten().tolist():
                missing = order[~seen[t, order]]
                lut[t, c] = int(missing[0]) if len(missing) else c
        noise = (class_frames == 0) & (color_frames[class_color] == 0)
        noise[BACKGROUND] = False
        lut = torch.where(noise, torch.full_like(lut, BACKGROUND), lut)
        out.append(torch.gather(lut, 1, video))
    return torch.stack(out).reshape(shape).to(masks.dtype)


vote_per_video.describe = VIDEO_VOTE
