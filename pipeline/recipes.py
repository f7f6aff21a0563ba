"""Recipes: experiments as data, run by pipeline/stages.py (run_recipe). Each is a dict:
    {"names": extra placeholders, "stages": [stage, ...], "table": {"title", "header", "rows": [row, ...]},
     "outputs": a line naming what the run leaves besides the table}
(stage and row: see pipeline/stages.py). To add a stage, add its dict where it runs in order; to add a row to
the results table, give the stage a "scores" path and add {"label", "scores", "key"} to "rows".
"""

UNET = "{out}/unet/best.pt"
RECON = "{out}/reconstructor/best.pt"
FORECASTER = "{out}/forecaster/best.pt"
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
FC = ("--saved_seg_model_dir", UNET, "--saved_forecaster_model_dir", FORECASTER)

# The README's main-job command (scripts/quickstart.py): the whole pipeline on a small synthetic dataset.
QUICKSTART = {
    "stages": [
        # 1. Data: a small synthetic set in the competition's layout, its statistics and the reference bounds.
        {"name": "dataset", "cmd": ["{py}", "scripts/make_synthetic_dataset.py", "--out", "{data}", "--train", "40",
                                    "--val", "20", "--unlabeled", "60", "--hidden", "10", "--seed", "0",
                                    "--workers", "2"],
         "done_when": "{data}/hidden"},
        {"name": "statistics", "cmd": ["{py}", "scripts/data_stats.py", "{data}"]},
        # The motion model (forecasting/motion.py) fitted once on the train split's true masks: every stage reads it.
        {"name": "fit motion", "cmd": ["{py}", "scripts/fit_motion.py", "--root_dir", "{data}", "--out",
                                       "{out}/motion.json"],
         "done_when": "{out}/motion.json"},
        {"name": "reference scores", "cmd": ["{py}", "scripts/reference_scores.py", "--root_dir", "{data}", "--split",
                                             "val", "--motion", "{out}/motion.json"],
         "scores": REFS},
        # 2. U-Net on labeled frames (the default recipe for 15 short epochs, validated once at the end: scoring
        #    every val frame costs more than an epoch of crops on a CPU), then the frame-11 baseline.
        train("train U-Net", "Unets/train.py", "{out}/unet", "--epochs", "15", "--val_every", "15"),
        val("val, U-Net on frame 11", "Unets/inference_val_without_reconstructor.py", "unet",
            "--saved_seg_model_dir", UNET, "--visualize", "{out}/grids_unet"),
        hidden("hidden, U-Net on frame 11", "Unets/inference_hidden_without_reconstructor.py",
               "{out}/submission_unet.pt", "--saved_seg_model_dir", UNET),
        # 3. The U-Net's pseudo-labels of unlabeled videos: the objects the reconstructor moves and the
        #    forecaster's training masks.
        {"name": "pseudo-labels", "cmd": ["{py}", "scripts/make_pseudo_labels.py", "--root_dir", "{data}",
                                          "--saved_seg_model_dir", UNET, "--split", "unlabeled", "--num_videos", "40",
                                          "--out", "{out}/pseudo_labels", "{device}"]},
        # 4. Reconstructor: frames 1-11 -> frame 22, as a change of frame 11 with its objects moved along their
        #    velocities; the U-Net segments its prediction, then a copy of the U-Net fine-tuned on predicted frames.
        train("train reconstructor", "SSL_convLSTM_Reconstructor/train_reconstructor.py", "{out}/reconstructor",
              "--epochs", "10", "--batch_size", "4", "--downsample", "4", "--intermediate_weight", "0",
              "--reference", "extrapolated", "--pseudo_labels", "{out}/pseudo_labels", "--saved_seg_model_dir", UNET,
              "--motion", "{out}/motion.json"),
        val("val, two-stage", "Unets/inference_val_with_reconstructor.py", "two_stage", *TWO_STAGE,
            "--saved_seg_model_dir", UNET, "--visualize", "{out}/grids_two_stage"),
        train("fine-tune U-Net on predicted frames", "Unets/train.py", "{out}/unet_finetuned", "--init_from", UNET,
              *TWO_STAGE, "--epochs", "1", "--batch_size", "16"),
        val("val, two-stage fine-tuned", "Unets/inference_val_with_reconstructor.py", "two_stage_finetuned",
            *TWO_STAGE, "--saved_seg_model_dir", "{out}/unet_finetuned/best.pt"),
        hidden("hidden, two-stage", "Unets/inference_hidden_with_reconstructor.py", "{out}/submission_two_stage.pt",
               *TWO_STAGE, "--saved_seg_model_dir", "{out}/unet_finetuned/best.pt"),
        # 5. Mask forecaster: a ConvLSTM from the U-Net's masks 1-11 to mask 22, trained on the pseudo-labels.
        train("train forecaster", "forecasting/train_forecaster.py", "{out}/forecaster", "--pseudo_labels",
              "{out}/pseudo_labels", "--saved_seg_model_dir", UNET, "--epochs", "1", "--batch_size", "4",
              "--learning_rate", "3e-3", "--downsample", "4", "--motion", "{out}/motion.json"),
        val("val, forecaster", "Unets/inference_val_with_forecaster.py", "forecaster", *FC,
            "--visualize", "{out}/grids_forecaster"),
        hidden("hidden, forecaster", "Unets/inference_hidden_with_forecaster.py", "{out}/submission_forecaster.pt",
               *FC),
    ],
    "table": {
        "title": "val", "header": ("prediction of frame 22", "val Jaccard"),
        "rows": [
            {"label": "copy the frame-11 mask", "scores": REFS, "key": "copy_frame_11"},
            {"label": "U-Net on frame 11", "scores": "{out}/scores/unet.json", "key": "jaccard"},
            {"label": "two-stage: reconstructor -> U-Net", "scores": "{out}/scores/two_stage.json", "key": "jaccard"},
            {"label": "two-stage with the fine-tuned U-Net", "scores": "{out}/scores/two_stage_finetuned.json",
             "key": "jaccard"},
            {"label": "mask forecaster", "scores": "{out}/scores/forecaster.json", "key": "jaccard"},
            {"label": "true frame-11 mask moved by the motion model (forecasting/motion.py, no learning)",
             "scores": REFS, "key": "extrapolate"},
            # absent when the fit found no collisions
            {"label": "the same without collisions", "scores": REFS, "key": "no_collisions", "optional": True},
            {"label": "ceiling (true frame 22, objects absent from frame 11 removed)", "scores": REFS, "key": "ceiling"},
        ],
    },
    "outputs": "Submissions: {out}/submission_*.pt; PNG grids: {out}/grids_*/; ",
}

RECIPES = {"quickstart": QUICKSTART}
