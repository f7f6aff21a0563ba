"""Recipes: experiments as data, run by pipeline/stages.py (run_recipe). Each is a dict:
    {"names": extra placeholders, "stages": [stage, ...], "table": {"title", "header", "rows": [row, ...]},
     "outputs": a line naming what the run leaves besides the table}
(stage and row: see pipeline/stages.py). To add a stage, add its dict where it runs in order; to add a row to
the results table, give the stage a "scores" path and add {"label", "scores", "key"} to "rows".
"""

UNET = "{out}/unet/best.pt"
RECON = "{out}/reconstructor/best.pt"
DYNAMICS = "{out}/dynamics/best.pt"
REFS = "{out}/scores/reference.json"


def val(name: str, script: str, scores: str, *args) -> dict:
    """A val-scoring stage of one of the inference scripts, its scores written to OUT/scores/SCORES.json."""
    return {"name": name, "cmd": ["{py}", script, "--root_dir", "{data}", *args, "{device}"],
            "scores": f"{{out}}/scores/{scores}.json"}


def hidden(name: str, script: str, output: str, *args) -> dict:
    """A submission stage: done once its --output exists."""
    return {"name": name, "cmd": ["{py}", script, "--root_dir", "{data}", *args, "--output", output, "{device}"],
            "done_when": output}


def train(name: str, script: str, checkpoint_dir: str, *args) -> dict:
    """A training stage: done once best.pt exists; a run cut short is continued with --resume."""
    return {"name": name, "cmd": ["{py}", script, "--root_dir", "{data}", *args, "--checkpoint_dir", checkpoint_dir,
                                  "{device}"],
            "done_when": f"{checkpoint_dir}/best.pt", "resume": checkpoint_dir}


TWO_STAGE = ("--saved_recon_model_dir", RECON)
DYN = ("--saved_seg_model_dir", UNET, "--saved_dynamics_model_dir", DYNAMICS)
TRAIN_VIDEOS = "600"  # the learned dynamics need hundreds of videos' tracks; the U-Net trains on the first 40

# The README's main-job command (scripts/quickstart.py): the whole pipeline on a small synthetic dataset.
QUICKSTART = {
    "stages": [
        # 1. Data: a small synthetic set in the competition's layout, its statistics and the reference bounds.
        {"name": "dataset", "cmd": ["{py}", "scripts/make_synthetic_dataset.py", "--out", "{data}", "--train",
                                    TRAIN_VIDEOS, "--val", "20", "--unlabeled", "40", "--hidden", "10", "--seed", "0",
                                    "--workers", "2"],
         "done_when": "{data}/hidden"},
        {"name": "statistics", "cmd": ["{py}", "scripts/data_stats.py", "{data}"]},
        # The motion model (forecasting/motion.py) fitted once on the train split's true masks: every stage reads it.
        {"name": "fit motion", "cmd": ["{py}", "scripts/fit_motion.py", "--root_dir", "{data}", "--out",
                                       "{out}/motion.json", "--motion_videos", "40"],
         "done_when": "{out}/motion.json"},
        {"name": "reference scores", "cmd": ["{py}", "scripts/reference_scores.py", "--root_dir", "{data}", "--split",
                                             "val", "--motion", "{out}/motion.json"],
         "scores": REFS},
        # 2. U-Net on labeled frames: the preset for a few CPU minutes (Unets/train.py --preset small) on the frames
        #    of the first 40 train videos, validated once at the end.
        train("train U-Net", "Unets/train.py", "{out}/unet", "--preset", "small", "--train_videos", "40",
              "--val_every", "20"),
        {"name": "curve, U-Net", "cmd": ["{py}", "scripts/plot_curves.py", "{out}/unet", "--out_dir", "{out}/curves"]},
        val("val, U-Net on frame 11", "Unets/inference_val_without_reconstructor.py", "unet",
            "--saved_seg_model_dir", UNET, "--visualize", "{out}/grids_unet"),
        hidden("hidden, U-Net on frame 11", "Unets/inference_hidden_without_reconstructor.py",
               "{out}/submission_unet.pt", "--saved_seg_model_dir", UNET),
        # 3. The U-Net's pseudo-labels of the unlabeled videos: the reconstructor's objects and, beside the train
        #    split's true masks, the learned dynamics' training tracks.
        {"name": "pseudo-labels", "cmd": ["{py}", "scripts/make_pseudo_labels.py", "--root_dir", "{data}",
                                          "--saved_seg_model_dir", UNET, "--split", "unlabeled", "--num_videos", "40",
                                          "--out", "{out}/pseudo_labels", "{device}"]},
        # 4. Reconstructor: frames 1-11 -> frame 22, as a change of frame 11 with its objects moved along their
        #    velocities; the U-Net segments its prediction. (Fine-tuning the U-Net on predicted frames lowered
        #    the score, and the mask forecaster adds nothing to its motion-model start: README, both left out.)
        train("train reconstructor", "SSL_convLSTM_Reconstructor/train_reconstructor.py", "{out}/reconstructor",
              "--epochs", "6", "--batch_size", "4", "--downsample", "4", "--intermediate_weight", "0",
              "--reference", "extrapolated", "--pseudo_labels", "{out}/pseudo_labels", "--saved_seg_model_dir", UNET,
              "--motion", "{out}/motion.json"),
        {"name": "curve, reconstructor", "cmd": ["{py}", "scripts/plot_curves.py", "{out}/reconstructor", "--out_dir",
                                                 "{out}/curves"]},
        val("val, two-stage", "Unets/inference_val_with_reconstructor.py", "two_stage", *TWO_STAGE,
            "--saved_seg_model_dir", UNET, "--visualize", "{out}/grids_two_stage"),
        # 5. The motion model on the U-Net's masks (no learning) and the learned object dynamics, trained on the
        #    tracks of the train masks and the pseudo-labels.
        val("val, motion model", "scripts/predict.py", "motion", "--method", "motion", "--saved_seg_model_dir", UNET,
            "--motion", "{out}/motion.json", "--visualize", "{out}/grids_motion"),
        train("train dynamics", "forecasting/train_dynamics.py", "{out}/dynamics", "--pseudo_labels",
              "{out}/pseudo_labels", "--saved_seg_model_dir", UNET, "--epochs", "8", "--val_every", "2"),
        {"name": "curve, dynamics", "cmd": ["{py}", "scripts/plot_curves.py", "{out}/dynamics", "--out_dir",
                                            "{out}/curves"]},
        val("val, dynamics", "Unets/inference_val_with_dynamics.py", "dynamics", *DYN,
            "--visualize", "{out}/grids_dynamics"),
        {"name": "dynamics on true masks", "cmd": ["{py}", "scripts/bench_dynamics.py", "--root_dir", "{data}",
                                                   "--saved_dynamics_model_dir", DYNAMICS, "--motion",
                                                   "{out}/motion.json"],
         "scores": "{out}/scores/dynamics_true_masks.json"},
        hidden("hidden, dynamics", "Unets/inference_hidden_with_dynamics.py", "{out}/submission_dynamics.pt", *DYN),
    ],
    "table": {
        "title": "val", "header": ("prediction of frame 22", "val Jaccard"),
        "rows": [
            {"label": "copy the frame-11 mask", "scores": REFS, "key": "copy_frame_11",
             "why": "the true frame-11 mask submitted as frame 22: a perfect segmenter that ignores motion"},
            {"label": "U-Net on frame 11", "scores": "{out}/scores/unet.json", "key": "jaccard",
             "why": "the U-Net's mask of frame 11 submitted as frame 22: the copy row, with the U-Net's errors"},
            {"label": "two-stage: reconstructor -> U-Net", "scores": "{out}/scores/two_stage.json", "key": "jaccard",
             "why": "the ConvLSTM reconstructor draws frame 22 as an image, the U-Net segments it"},
            {"label": "motion model on the U-Net's masks", "scores": "{out}/scores/motion.json", "key": "jaccard",
             "why": "the U-Net's frame-11 objects moved by the hand-written motion model (no learning)"},
            {"label": "learned dynamics on the U-Net's masks", "scores": "{out}/scores/dynamics.json",
             "key": "jaccard",
             "why": "the U-Net's frame-1-11 objects rolled forward by the learned dynamics: compare with the row above"},
            {"label": "true frame-11 mask moved by the motion model", "scores": REFS, "key": "extrapolate",
             "why": "the motion model on perfect masks"},
            {"label": "true frame-11 mask moved by the learned dynamics", "scores":
             "{out}/scores/dynamics_true_masks.json", "key": "true.dynamics",
             "why": "the learned dynamics on perfect masks: compare with the row above"},
            {"label": "ceiling (true frame 22, objects absent from frame 11 removed)", "scores": REFS, "key": "ceiling",
             "why": "the best any mover of frame-11 objects can score: objects that enter later cannot be known"},
        ],
    },
    "outputs": "Submissions: {out}/submission_*.pt; PNG grids: {out}/grids_*/; curves: {out}/curves/; ",
    "notes": ("Pictures: {out}/grids_*/video_*.png show, for the first val videos, the input frame 11, the predicted "
              "mask of frame 22, the true one and the wrong pixels in red (grids_two_stage also the predicted image). "
              "Training curves (train loss and validation per epoch, from each run's log.jsonl): {out}/curves/. "
              "Stage times and logs: {out}/logs/.\n"),
}

RECIPES = {"quickstart": QUICKSTART}
