"""The field table (scripts/bench/bench_field.py): every forecaster of frame 22 scored from the same masks of frames 1-11.

A method here maps masks (B, 11, H, W) uint8 to frame 22's class ids (B, H, W): the U-Net is left out, so every
method gets the same inputs (the U-Net's masks of the val videos, the true masks, or the real videos' true
masks) and its speed is the forecaster's own.
"""
import json
import time
from pathlib import Path

import torch

from data.format import LAST_INPUT_INDEX, NUM_INPUT_FRAMES, TARGET_INDEX
from data.metric import SegmentationScore, ceiling_prediction
from data.pseudo_labels import StoredMaskVideos, TrueMaskVideos
from engine import atomic_write, autocast, count_parameters, load_model
from forecasting.dynamics import ObjectDynamics, predict_masks
from forecasting.motion import Motion, extrapolate_mask
from forecasting.simvp import SimVP


def field_methods(motion_json=None, dynamics=None, simvp=None, device="cpu") -> dict:
    """{name: (predict(masks (B, 11, H, W)) -> (B, H, W) ids, parameters)} of copy, the motion model (its fitted
    JSON), the learned dynamics and SimVP (checkpoints); a method whose file is not given is left out."""
    methods = {"copy": (lambda masks: masks[:, LAST_INPUT_INDEX].long(), 0)}
    if motion_json:
        config = json.loads(Path(motion_json).read_text())
        motion = Motion.from_config(config)
        fitted = sum(isinstance(v, (int, float)) and not isinstance(v, bool) for v in config.values())
        methods["motion"] = (lambda masks: torch.stack([extrapolate_mask(m, motion) for m in masks]).long(), fitted)
    if dynamics:
        model = load_model(dynamics, ObjectDynamics)
        methods["dynamics"] = (lambda masks: predict_masks(model, masks).long(), count_parameters(model))
    if simvp:
        net = load_model(simvp, SimVP, device)
        device = torch.device(device)

        def predict_simvp(masks):
            with autocast(device):
                return net.predict(masks.to(device)).cpu()

        methods["simvp"] = (predict_simvp, count_parameters(net))
    return methods


def true_inputs(root, splits) -> tuple:
    """([masks of frames 1-11 (11, H, W)], [true frame 22 (H, W)], [ceiling prediction (H, W)], [video ids]) of
    every video of root's splits, from their true masks."""
    inputs, targets, ceilings, ids = [], [], [], []
    for split in splits:
        videos = TrueMaskVideos(root, split)
        for i in range(len(videos)):
            masks = videos[i]["masks"]
            inputs.append(masks[:NUM_INPUT_FRAMES])
            targets.append(masks[TARGET_INDEX])
            ceilings.append(ceiling_prediction(masks))
        ids += videos.video_ids
    return inputs, targets, ceilings, ids


def unet_inputs(pseudo_labels, root) -> tuple:
    """([the U-Net's masks of val frames 1-11 (11, H, W)], [true frame 22 (H, W)]): the stored val inputs
    (PSEUDO_LABELS/val, made by the trainers) against ROOT/val's truth."""
    stored = StoredMaskVideos(pseudo_labels, "val", root)
    _, targets, _, ids = true_inputs(root, ["val"])
    truth = dict(zip(ids, targets))
    return [stored[i]["masks"][:NUM_INPUT_FRAMES] for i in range(len(stored))], [truth[v] for v in stored.video_ids]


@torch.no_grad()
def score(predict, inputs: list, targets: list, batch: int = 16) -> dict:
    """{"jaccard": the competition's score of predict's frame 22, "videos", "videos_per_s": of predict alone}."""
    metric, seconds = SegmentationScore(), 0.0
    for i in range(0, len(inputs), batch):
        masks, truth = torch.stack(inputs[i:i + batch]), torch.stack(targets[i:i + batch])
        start = time.perf_counter()
        pred = predict(masks)
        seconds += time.perf_counter() - start
        metric.update(pred, truth)
    return {"jaccard": round(metric.compute(), 4), "videos": len(inputs),
            "videos_per_s": round(len(inputs) / max(seconds, 1e-9), 1)}


# the limit rows (data/predictability.py) the table shows, in its order; the ceiling row is bench_field's own
LIMIT_LABELS = {
    "re-simulated": "limit: re-simulated in the generator's engine from the exact frame-11 state",
    "nudged 0.001": "limit: the same from a frame-11 state nudged by up to 1e-3",
    "perfect motion": "limit: perfect motion (each object of frames 1-11 at its true frame-22 place)",
}


def limit_scores(root, split: str, video_ids: list, targets: list, cache: Path, progress: bool = True) -> dict:
    """{"jaccard": {row: score}, "world", "seed", "generator_version", "videos", "entering videos"} of the limit
    rows on ROOT/SPLIT's videos, drawn again by the generator (data/predictability.py: limit_predictions, which
    raises ValueError when that dataset cannot be drawn again, or was not drawn as its manifest says), scored
    against targets (the stored frame 22s of video_ids, in that order). Kept in cache: a re-run with the same
    videos and generator version reads it instead of re-simulating."""
    from data.predictability import limit_predictions
    from data.synthetic import GENERATOR_VERSION

    if cache.is_file():
        kept = json.loads(cache.read_text())
        if kept.get("video_ids") == list(video_ids) and kept.get("generator_version") == GENERATOR_VERSION:
            return kept
    limits = limit_predictions(root, split, progress=progress)
    if limits["video_ids"] != list(video_ids):
        raise ValueError(f"{root}/{split}: the videos drawn again are not the ones scored")
    res = {"jaccard": {name: jaccard_of(limits["rows"][name], targets) for name in LIMIT_LABELS},
           "world": limits["world"], "seed": limits["seed"], "generator_version": GENERATOR_VERSION,
           "videos": len(video_ids), "entering videos": limits["entering videos"], "video_ids": list(video_ids)}
    atomic_write(cache, lambda f: f.write((json.dumps(res, indent=1) + "\n").encode()))
    return res


def limit_rows(limits: dict) -> list:
    """The table's rows of limit_scores' result: a value from true masks only (the other columns do not apply)."""
    return [{"method": label, "parameters": None, "train_cpu_min": None, "videos_per_s": None, "unet": None,
             "true": limits["jaccard"][name], "real": None} for name, label in LIMIT_LABELS.items()]


def jaccard_of(preds: list, targets: list) -> float:
    """The competition's score of a set of frame-22 masks (numpy or torch, (H, W) each), rounded as the table's."""
    metric = SegmentationScore()
    for pred, truth in zip(preds, targets):
        metric.update(torch.as_tensor(pred)[None], torch.as_tensor(truth)[None])
    return round(metric.compute(), 4)


def field_table(rows: list) -> str:
    """The markdown table of the field: rows of {"method", "parameters", "train_cpu_min", "videos_per_s", "unet",
    "true", "real"} (None: not measured, or not applicable: written —)."""
    def cell(v, fmt="{:.4f}"):
        return "—" if v is None else (fmt.format(v) if isinstance(v, float) else str(v))

    head = ("| method | parameters | training (CPU-min) | inference (videos/s, masks to frame 22) | "
            "Jaccard from the U-Net's masks | Jaccard from true masks | six real videos (true masks) |\n"
            "|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['method']} | {cell(r['parameters'])} | {cell(r['train_cpu_min'], '{:.1f}')} | "
        f"{cell(r['videos_per_s'], '{:.1f}')} | {cell(r['unet'])} | {cell(r['true'])} | {cell(r['real'])} |\n"
        for r in rows)
