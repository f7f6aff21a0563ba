"""Object tracks from masks: what the learned dynamics model (forecasting/dynamics.py) reads and predicts.

A class appears at most once per video, so a class id is an object's identity. For each object of a
video, each frame of a mask sequence (T, H, W) gives: whether it is there (at least MIN_PIXELS pixels),
its area, centroid, bounding box, which of the frame's four edges it touches (an object cut by the
edge shows only part of itself), and its move since the frame before.

A segmenter's masks flip an object's class now and then (the shape or material, rarely the color, for a frame
or two). Such a flip would end the object's track and start a new one-frame object beside it, so a class seen
in at most MAX_FLIP consecutive frames, where an object of the same color is missing in just those frames and
was seen next to that place in the frame before (and after, when there is one), is counted as that object.
True masks, whose classes never flip, are left as they are (tested).

A move is measured so that it follows the object, not its visible part: along an axis where the object
touches the frame's edge on one side only (entering or leaving), its visible centroid moves faster or
slower than it does, so the move along that axis is that of its other edge (the one inside the frame).
Along an axis where it touches both sides, or neither, it is the centroid's move. `shift` measures a
move between any two frames the same way; it is what the model learns to predict from frame 11 on, and
what painting applies to the object's frame-11 pixels.
"""
from dataclasses import dataclass

import numpy as np

from data.classes import BACKGROUND, MATERIALS, NUM_CLASSES, SHAPES

MAX_FLIP = 2  # frames: a class seen this briefly, where an object of its color is missing, is that object
MIN_PIXELS = 20  # fewer pixels of a class in a frame: a stray blob of a segmenter, not an object
MAX_OBJECTS = 16  # slots per video: a video holds 2-10 objects; a noisy segmenter's extra classes beyond this are dropped
TOP, LEFT, BOTTOM, RIGHT = range(4)  # order of the edge flags in Tracks.cut


def class_features(classes) -> np.ndarray:
    """(N,) object class ids -> (N, 5) float32: one-hot shape (3) and material (2). Color tells nothing of motion."""
    k = np.asarray(classes, dtype=np.int64) - 1
    out = np.zeros((len(k), len(SHAPES) + len(MATERIALS)), np.float32)
    out[np.arange(len(k)), k // 16] = 1
    out[np.arange(len(k)), len(SHAPES) + (k // 8) % 2] = 1
    return out


@dataclass
class Tracks:
    """The objects of one mask sequence, N of them (sorted by class id), over T frames.

    classes (N,) int64; present (T, N) bool; area (T, N) float32 pixels; centroid (T, N, 2) float32
    (row, column); box (T, N, 4) float32 (first row, first column, last row, last column); cut (T, N, 4)
    bool (touches the top, left, bottom, right edge); velocity (T, N, 2) float32 pixels per frame: the
    move from the frame before (`shift`), zero where the object is absent in either frame.
    Entries of frames where an object is absent are zero.
    """

    classes: np.ndarray
    present: np.ndarray
    area: np.ndarray
    centroid: np.ndarray
    box: np.ndarray
    cut: np.ndarray
    velocity: np.ndarray
    height: int
    width: int
    pixel_class: np.ndarray = None  # (T, N): the class the object's pixels carry in each frame (its own, but where a
    # flip was merged into it, merge_class_flips); what finds its pixels in a frame to move them


    def __len__(self) -> int:
        return len(self.classes)

    def shift(self, a, b):
        """The move of every object from frame a to frame b: (moves (N, 2) float32, valid (N,) bool). Valid where
        the object is present in both frames and, along each axis, not cut on both sides (it then fills the
        frame along that axis, and no edge of it can be followed). a and b may be equal-length arrays of frames:
        then (K, N, 2) and (K, N)."""
        cut_a, cut_b = self.cut[a], self.cut[b]
        low = cut_a[..., [TOP, LEFT]] | cut_b[..., [TOP, LEFT]]  # (..., N, 2) per axis
        high = cut_a[..., [BOTTOM, RIGHT]] | cut_b[..., [BOTTOM, RIGHT]]
        box_a, box_b = self.box[a], self.box[b]
        centre = self.centroid[b] - self.centroid[a]
        first_edge = box_b[..., :2] - box_a[..., :2]  # follows an object cut at its far (high) side
        last_edge = box_b[..., 2:] - box_a[..., 2:]  # ... at its near (low) side
        moves = np.where(low & ~high, last_edge, np.where(high & ~low, first_edge, centre))
        valid = self.present[a] & self.present[b] & ~(low & high).any(-1)
        return np.where(valid[..., None], moves, 0).astype(np.float32), valid

    def whole(self, t: int) -> np.ndarray:
        """(N,) bool: present in frame t and touching no edge (its area is its true apparent size)."""
        return self.present[t] & ~self.cut[t].any(1)


def merge_class_flips(count, by_row, by_col, min_pixels: int = MIN_PIXELS) -> list:
    """In place, on the per-(frame, class) pixel counts (T, C) and row / column histograms (T, C, H), (T, C, W):
    the pixels of a class flipped for at most MAX_FLIP frames go to the object they belong to (module docstring).
    Returns the merges [(flipped class, the object's class, first frame, last frame)]."""
    T = count.shape[0]
    merges = []
    if T < 3:
        return merges
    present = count >= min_pixels
    present[:, BACKGROUND] = False
    rows, cols = np.arange(by_row.shape[2]), np.arange(by_col.shape[2])
    for c in np.flatnonzero(present.any(0)):
        frames = np.flatnonzero(present[:, c])
        first, last = frames[0], frames[-1]
        if len(frames) > MAX_FLIP or last - first + 1 != len(frames) or first == 0:
            continue
        after = last + 1 if last + 1 < T else None
        where = np.array([by_row[first, c] @ rows, by_col[first, c] @ cols]) / count[first, c]
        best, best_dist = None, None
        for d in np.flatnonzero(present.any(0)):
            if d == c or (d - 1) % 8 != (c - 1) % 8 or present[first:last + 1, d].any() or not present[first - 1, d]:
                continue
            if after is not None and not present[after, d]:
                continue
            seen = np.array([by_row[first - 1, d] @ rows, by_col[first - 1, d] @ cols]) / count[first - 1, d]
            dist = np.hypot(*(where - seen))
            if dist <= max(10.0, 1.5 * np.sqrt(count[first - 1, d])) and (best is None or dist < best_dist):
                best, best_dist = d, dist
        if best is not None:
            span = slice(first, last + 1)
            count[span, best] += count[span, c]
            by_row[span, best] += by_row[span, c]
            by_col[span, best] += by_col[span, c]
            count[span, c], by_row[span, c], by_col[span, c] = 0, 0, 0
            present[span, best], present[span, c] = True, False
            merges.append((int(c), int(best), int(first), int(last)))
    return merges


def extract_tracks(masks, max_objects: int = MAX_OBJECTS, min_pixels: int = MIN_PIXELS,
                   repair_flips: bool = True) -> Tracks:
    """masks (T, H, W) class ids (numpy or torch) -> Tracks of every object present (min_pixels or more) in at
    least one frame; at most max_objects of them, the largest over the frames first. Vectorised over frames and
    classes (bincounts over the object pixels). repair_flips: merge_class_flips first."""
    masks = np.asarray(masks.cpu() if hasattr(masks, "cpu") else masks)
    if masks.ndim != 3:
        raise ValueError(f"tracks need (T, H, W) masks, got shape {masks.shape}")
    T, H, W = masks.shape
    C = NUM_CLASSES
    # Objects cover a few percent of a frame: work on the object pixels alone.
    where = np.flatnonzero(masks)  # (P,) flat indices into (T, H, W)
    t, rest = np.divmod(where, H * W)
    rows, cols = np.divmod(rest, W)
    keys = t * C + masks.ravel()[where]  # (P,) frame-and-class bins
    # Pixels per (frame, class, row) and per (frame, class, column): the areas, the centroids and, from the
    # first and last occupied row (column), the bounding boxes.
    by_row = np.bincount(keys * H + rows, minlength=T * C * H).reshape(T, C, H)
    by_col = np.bincount(keys * W + cols, minlength=T * C * W).reshape(T, C, W)
    count = by_row.sum(-1)
    merges = merge_class_flips(count, by_row, by_col, min_pixels) if repair_flips else []
    sum_r, sum_c = by_row @ np.arange(H), by_col @ np.arange(W)
    by_row, by_col = by_row > 0, by_col > 0

    present_all = count >= min_pixels  # (T, C)
    present_all[:, BACKGROUND] = False
    candidates = np.flatnonzero(present_all.any(0))
    if len(candidates) > max_objects:  # keep the largest: a segmenter's stray classes are small
        candidates = np.sort(candidates[np.argsort(-count[:, candidates].sum(0), kind="stable")[:max_objects]])
    present = present_all[:, candidates]  # (T, N)
    n = count[:, candidates].astype(np.float64)
    safe = np.maximum(n, 1)
    centroid = np.stack([sum_r[:, candidates] / safe, sum_c[:, candidates] / safe], -1)  # (T, N, 2)
    r_occ, c_occ = by_row[:, candidates], by_col[:, candidates]  # (T, N, H), (T, N, W)
    box = np.stack([r_occ.argmax(-1), c_occ.argmax(-1),
                    H - 1 - r_occ[..., ::-1].argmax(-1), W - 1 - c_occ[..., ::-1].argmax(-1)], -1).astype(np.float64)
    cut = np.stack([box[..., 0] == 0, box[..., 1] == 0, box[..., 2] == H - 1, box[..., 3] == W - 1], -1) & present[..., None]
    keep = present[..., None]
    tracks = Tracks(classes=candidates.astype(np.int64), present=present, area=np.where(present, n, 0).astype(np.float32),
                    centroid=np.where(keep, centroid, 0).astype(np.float32), box=np.where(keep, box, 0).astype(np.float32),
                    cut=cut, velocity=np.zeros((T, len(candidates), 2), np.float32), height=H, width=W)
    tracks.pixel_class = np.repeat(tracks.classes[None], T, 0)
    slot = {int(c): k for k, c in enumerate(candidates)}
    for flipped, into, first, last in merges:
        if into in slot:
            tracks.pixel_class[first:last + 1, slot[into]] = flipped
    if T > 1:
        tracks.velocity[1:] = tracks.shift(np.arange(T - 1), np.arange(1, T))[0]
    return tracks


def _shrink(obj: np.ndarray) -> np.ndarray:
    """The (H, W) bool region less its boundary (4-neighbour erosion; the frame's edge is not a boundary)."""
    out = obj.copy()
    out[1:] &= obj[:-1]
    out[:-1] &= obj[1:]
    out[:, 1:] &= obj[:, :-1]
    out[:, :-1] &= obj[:, 1:]
    return out


def _grow(obj: np.ndarray) -> np.ndarray:
    """The (H, W) bool region and its 4-neighbours."""
    out = obj.copy()
    out[1:] |= obj[:-1]
    out[:-1] |= obj[1:]
    out[:, 1:] |= obj[:, :-1]
    out[:, :-1] |= obj[:, 1:]
    return out


def segmenter_errors(masks, rng, rate: float) -> np.ndarray:
    """A copy of masks (T, H, W) class ids with the errors a segmenter's masks show, each object in each frame
    independently with probability `rate`: left out (it missed the object in that frame), given another
    shape's or material's class of its color (a class flip), or its boundary moved out or in by a pixel
    (out over background only). What the learned dynamics can train on, so that their inputs at inference,
    a U-Net's masks, are nothing new to them."""
    out = np.array(masks, copy=True)
    for t in range(out.shape[0]):
        frame = out[t]
        for c in np.unique(frame):
            if c == BACKGROUND or rng.random() >= rate:
                continue
            obj = frame == c
            kind = rng.integers(4)
            if kind == 0:
                frame[obj] = BACKGROUND
            elif kind == 1:
                color = (int(c) - 1) % 8
                others = [k for k in range(1, NUM_CLASSES) if (k - 1) % 8 == color and k != c and not (frame == k).any()]
                if others:
                    frame[obj] = others[rng.integers(len(others))]
            elif kind == 2:
                frame[_grow(obj) & (frame == BACKGROUND)] = c
            else:
                frame[obj & ~_shrink(obj)] = BACKGROUND
    return out

