"""Recipes: experiments as data, run by pipeline/stages.py (run_recipe). Each is a dict:
    {"names": extra placeholders, "env": environment of every stage, "stages": [stage, ...],
     "table": {"title", "header", "rows": [row, ...]}, "outputs": a line naming what the run leaves besides the table}
(stage and row: see pipeline/stages.py). To add a stage, add its dict where it runs in order; to add a row to
the results table, give the stage a "scores" path and add {"label", "scores", "key"} to "rows".

QUICKSTART is the README's main-job command (scripts/quickstart.py); bench_pipeline_recipe and bench_unet_recipe
build the benchmarks' recipes from their scripts' flags (scripts/bench/bench_*.py); field_stages the field benchmark's
(scripts/bench/bench_field.py).
"""
import os

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


def add_world_arg(p) -> None:
    """--world of a bench script that makes its own dataset (make_synthetic_dataset.py --world)."""
    from data.synthetic import DEFAULT_WORLD, WORLDS
    p.add_argument("--world", choices=sorted(WORLDS), default=DEFAULT_WORLD,
                   help="the generator's world of the dataset it makes (unless --root_dir); tables measured before "
                        "the real world became the default (550a8a9) were drawn with --world clevr")


def dataset(train, val, unlabeled, hidden, seed, workers=2, world=None) -> dict:
    """A synthetic dataset in the competition's layout at {data}: done once its hidden split exists. world: the
    generator's --world (None: its default)."""
    return {"name": "dataset", "cmd": ["{py}", "scripts/make_synthetic_dataset.py", "--out", "{data}", "--train",
                                       str(train), "--val", str(val), "--unlabeled", str(unlabeled), "--hidden",
                                       str(hidden), "--seed", str(seed), "--num_workers", str(workers),
                                       *(("--world", world) if world else ())],
            "done_when": "{data}/hidden"}


def fit_motion(*args) -> dict:
    """The motion model (forecasting/motion.py) fitted once on the train split's true masks: every stage reads it."""
    return {"name": "fit motion", "cmd": ["{py}", "scripts/fit_motion.py", "--root_dir", "{data}", "--out",
                                          "{out}/motion.json", *args], "done_when": "{out}/motion.json"}


def references(*args) -> dict:
    """Copy the true frame-11 mask, the ceiling and (unless --motion none) the motion model on true masks: REFS."""
    return {"name": "reference scores", "cmd": ["{py}", "scripts/analysis/reference_scores.py", "--root_dir", "{data}",
                                                "--split", "val", *args], "scores": REFS}


def pseudo_labels(unet: str, out: str = "{out}/pseudo_labels", num_videos="0") -> dict:
    """The U-Net's masks of the unlabeled videos (scripts/make_pseudo_labels.py; a finished store is reused)."""
    return {"name": "pseudo-labels", "cmd": ["{py}", "scripts/make_pseudo_labels.py", "--root_dir", "{data}",
                                             "--saved_seg_model_dir", unet, "--split", "unlabeled", "--out", out,
                                             "--num_videos", str(num_videos), "{device}"]}


def row(label: str, scores: str, key: str = "jaccard", why: str = "", optional: bool = False) -> dict:
    """A table row: figure `key` of OUT/scores/SCORES.json (or of the path `scores` when it names a .json)."""
    path = scores if scores.endswith(".json") else f"{{out}}/scores/{scores}.json"
    return {"label": label, "scores": path, "key": key, "why": why, "optional": optional}


def user_path(path) -> str:
    """A path given on a bench script's command line, absolute: the stages run in the repository root."""
    return os.path.abspath(path)


TWO_STAGE = ("--saved_recon_model_dir", RECON)
DYN = ("--saved_seg_model_dir", UNET, "--saved_dynamics_model_dir", DYNAMICS)
TRAIN_VIDEOS = "600"  # the learned dynamics need hundreds of videos' tracks; the U-Net trains on the first 250

# The README's main-job command (scripts/quickstart.py): the whole pipeline on a small synthetic dataset.
QUICKSTART = {
    "stages": [
        # 1. Data: a small synthetic set in the competition's layout, drawn through the real videos' camera with
        #    their objects' sizes and kinematics (the "real" world: what is learned on it is meant for real videos),
        #    and the reference bounds (its statistics are one more command, scripts/analysis/data_stats.py, left
        #    out to keep the run within ten minutes).
        dataset(TRAIN_VIDEOS, 20, 40, 10, 0, world="real"),
        fit_motion("--motion_videos", "40"),
        references("--motion", "{out}/motion.json"),
        # 2. U-Net on labeled frames: the preset for a few CPU minutes (Unets/train.py --preset small: colors by
        #    pixel, shape and material by its object head) on the frames of the first 250 train videos, validated
        #    once at the end.
        train("train U-Net", "Unets/train.py", "{out}/unet", "--preset", "small", "--train_videos", "250",
              "--epochs", "3", "--val_every", "3"),
        val("val, U-Net on frame 11", "Unets/inference_val_without_reconstructor.py", "unet",
            "--saved_seg_model_dir", UNET, "--visualize", "{out}/grids_unet"),
        hidden("hidden, U-Net on frame 11", "Unets/inference_hidden_without_reconstructor.py",
               "{out}/submission_unet.pt", "--saved_seg_model_dir", UNET),
        # 3. The U-Net's pseudo-labels of the unlabeled videos: the reconstructor's objects and, beside the train
        #    split's true masks, the learned dynamics' training tracks.
        pseudo_labels(UNET, num_videos=40),
        # 4. Reconstructor: frames 1-11 -> frame 22, as a change of frame 11 with its objects moved along their
        #    velocities; the U-Net segments its prediction. (Fine-tuning the U-Net on predicted frames lowered
        #    the score: README, left out. SimVP, the mask-space method, is measured by scripts/bench/bench_field.py.)
        train("train reconstructor", "SSL_convLSTM_Reconstructor/train_reconstructor.py", "{out}/reconstructor",
              "--epochs", "4", "--batch_size", "4", "--downsample", "4", "--intermediate_weight", "0",
              "--reference", "extrapolated", "--pseudo_labels", "{out}/pseudo_labels", "--saved_seg_model_dir", UNET,
              "--motion", "{out}/motion.json"),
        val("val, two-stage", "Unets/inference_val_with_reconstructor.py", "two_stage", *TWO_STAGE,
            "--saved_seg_model_dir", UNET, "--visualize", "{out}/grids_two_stage"),
        # 5. The motion model on the U-Net's masks (no learning) and the learned object dynamics, trained on the
        #    tracks of the train masks and the pseudo-labels, forecasting half way between their own and the motion
        #    model's frame 22 (--motion: the blend travels in the checkpoint; docs/MODELS.md says why). 15 epochs,
        #    validated once at the end: on other synthetic videos every extra epoch helped (as many as the ten
        #    minutes allow), and keeping the best of several validations on 20 val videos chose worse models than
        #    the last (docs/RESULTS.md: "What the quickstart's dynamics budget buys").
        val("val, motion model", "scripts/predict.py", "motion", "--method", "motion", "--saved_seg_model_dir", UNET,
            "--motion", "{out}/motion.json", "--visualize", "{out}/grids_motion"),
        train("train dynamics", "forecasting/train_dynamics.py", "{out}/dynamics", "--pseudo_labels",
              "{out}/pseudo_labels", "--saved_seg_model_dir", UNET, "--epochs", "15", "--val_every", "15",
              "--motion", "{out}/motion.json"),
        # the three runs' training curves in one process (matplotlib's start-up paid once)
        {"name": "curves", "cmd": ["{py}", "scripts/plot_curves.py", "{out}/unet", "{out}/reconstructor",
                                   "{out}/dynamics", "--out", "{out}/curves"]},
        val("val, dynamics", "Unets/inference_val_with_dynamics.py", "dynamics", *DYN,
            "--visualize", "{out}/grids_dynamics"),
        {"name": "dynamics on true masks", "cmd": ["{py}", "scripts/bench/bench_dynamics.py", "--root_dir", "{data}",
                                                   "--saved_dynamics_model_dir", DYNAMICS, "--motion",
                                                   "{out}/motion.json"],
         "scores": "{out}/scores/dynamics_true_masks.json"},
        hidden("hidden, dynamics", "Unets/inference_hidden_with_dynamics.py", "{out}/submission_dynamics.pt", *DYN),
    ],
    "table": {
        "title": "val", "header": ("prediction of frame 22", "val Jaccard"),
        "rows": [
            {"label": "copy the true frame-11 mask", "scores": REFS, "key": "copy_frame_11",
             "why": "the true frame-11 mask submitted as frame 22: a perfect segmenter that ignores motion"},
            {"label": "U-Net on frame 11", "scores": "{out}/scores/unet.json", "key": "jaccard",
             "why": "the U-Net's mask of frame 11 submitted as frame 22: the copy row, with the U-Net's errors"},
            {"label": "two-stage: reconstructor -> U-Net", "scores": "{out}/scores/two_stage.json", "key": "jaccard",
             "why": "the ConvLSTM reconstructor draws frame 22 as an image, the U-Net segments it"},
            {"label": "motion model on the U-Net's masks", "scores": "{out}/scores/motion.json", "key": "jaccard",
             "why": "the U-Net's frame-11 objects moved by the hand-written motion model (no learning)"},
            {"label": "learned dynamics, blended with the motion model, on the U-Net's masks",
             "scores": "{out}/scores/dynamics.json", "key": "jaccard",
             "why": "the U-Net's frame-1-11 objects rolled forward by the learned dynamics, each landing half way "
                    "between its forecast and the motion model's (what the dynamics' inference scripts submit)"},
            {"label": "true frame-11 mask moved by the motion model", "scores": REFS, "key": "extrapolate",
             "why": "the motion model on perfect masks"},
            {"label": "true frame-11 mask moved by the learned dynamics alone", "scores":
             "{out}/scores/dynamics_true_masks.json", "key": "true.dynamics",
             "why": "the learned dynamics on perfect masks: compare with the row above"},
            {"label": "true frame-11 mask moved by the learned dynamics, blended with the motion model", "scores":
             "{out}/scores/dynamics_true_masks.json", "key": "true.blend",
             "why": "each object half way between the two rows above"},
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



def threads_env(threads, *names) -> dict:
    """--threads of a bench script as the stages' environment (0 or None: leave it as it is)."""
    return {name: str(threads) for name in names or ("OMP_NUM_THREADS",)} if threads else {}


def bench_pipeline_recipe(args) -> dict:
    """scripts/bench/bench_pipeline.py: the two-stage pipeline (reconstructor -> U-Net) against the frame-11 baselines
    and the U-Net on the true frame 22 (oracle)."""
    unet = user_path(args.unet_checkpoint) if args.unet_checkpoint else UNET
    few = ("--num_workers", "0")  # the stages run one thread each (--threads): workers would only compete
    stages = [] if args.root_dir else [dataset(args.train, args.val, args.unlabeled, args.hidden, args.seed,
                                               world=args.world)]
    stages += [
        # memmap frames (scripts/convert_to_memmap.py): no stage waits on PNG decoding
        {"name": "memmap", "cmd": ["{py}", "scripts/convert_to_memmap.py", "--root_dir", "{data}", "--split", "train",
                                   "val", "unlabeled"], "done_when": "{data}/memmap/unlabeled_video_ids.npy"},
        fit_motion(),
        references("--motion", "{out}/motion.json"),
    ]
    if not args.unet_checkpoint:
        stages.append(train("train U-Net", "Unets/train.py", "{out}/unet", *few, "--epochs", str(args.unet_epochs)))
    stages.append(val("val U-Net on frame 11", "Unets/inference_val_without_reconstructor.py", "unet", *few,
                      "--saved_seg_model_dir", unet))
    reference = ["--reference", args.reference]
    if args.reference == "extrapolated":
        labels = user_path(args.pseudo_labels) if args.pseudo_labels else "{out}/pseudo_labels"
        stages.append(pseudo_labels(unet, labels, args.pseudo_videos))
        reference += ["--pseudo_labels", labels, "--saved_seg_model_dir", unet, "--motion", "{out}/motion.json"]
    stages += [
        train("train reconstructor", "SSL_convLSTM_Reconstructor/train_reconstructor.py", "{out}/reconstructor", *few,
              "--epochs", str(args.recon_epochs), *reference, *args.recon_flags.split()),
        val("val two stages", "Unets/inference_val_with_reconstructor.py", "two_stage", *few, *TWO_STAGE,
            "--saved_seg_model_dir", unet, "--visualize", "{out}/grids_two_stage"),
        {"name": "oracle", "cmd": ["{py}", "scripts/analysis/oracle_scores.py", "--root_dir", "{data}", "--saved_seg_model_dir",
                                   unet, *few, "{device}"], "scores": "{out}/scores/oracle.json"},
    ]
    return {
        "names": {"data": user_path(args.root_dir)} if args.root_dir else {},
        "env": threads_env(args.threads),
        "stages": stages,
        "table": {"title": "val", "header": ("prediction of frame 22", "val Jaccard"), "rows": [
            row("copy the frame-11 mask", REFS, "copy_frame_11"),
            row("U-Net on frame 11", "unet"),
            row("two stages: reconstructor -> U-Net", "two_stage"),
            row("U-Net on the true frame 22 (oracle)", "oracle", "oracle",
                why="what a perfect reconstructor would give with this U-Net"),
            row("ceiling (true frame 22, objects absent from frame 11 removed)", REFS, "ceiling"),
        ]},
        "outputs": "PNG grids: {out}/grids_two_stage*/; ",
    }


# train.py flags bench_unet.py can override, and that it reports as the recipe
UNET_RECIPE_FLAGS = ("epochs", "base_channels", "batch_size", "learning_rate", "crop_size", "head", "val_every")


def bench_unet_recipe(args) -> dict:
    """scripts/bench/bench_unet.py: the U-Net's recipe (Unets/train.py's defaults and the overrides given) scored on val
    (oracle on the true frame 22 and its ablations, frame 11, the true frame-11 mask), and its speed per width."""
    workers = ("--num_workers", str(args.num_workers))
    stages = [] if args.root_dir else [dataset(args.train, args.val, args.unlabeled, args.hidden, args.seed,
                                               world=args.world)]
    unet = user_path(args.checkpoint_dir) if args.checkpoint_dir else "{out}/unet"
    rows = []
    if not args.skip_quality:
        if not args.checkpoint_dir:
            overrides = [item for flag in UNET_RECIPE_FLAGS if getattr(args, flag) is not None
                         for item in (f"--{flag}", str(getattr(args, flag)))]
            stages.append(train("train U-Net", "Unets/train.py", "{out}/unet", *workers, *overrides))
        seg = ("--saved_seg_model_dir", f"{unet}/best.pt", "--batch_size", "8", *workers)
        stages += [
            {"name": "oracle", "cmd": ["{py}", "scripts/analysis/oracle_scores.py", "--root_dir", "{data}", *seg, "--ablations",
                                       "{device}"], "scores": "{out}/scores/oracle.json"},
            val("val U-Net on frame 11", "Unets/inference_val_without_reconstructor.py", "unet", *seg),
            references("--motion", "none"),
        ]
        rows = [
            row("U-Net on true frame 22 (oracle, target 0.90)", "oracle", "oracle",
                why="segmentation quality alone"),
            row("the same without the per-object vote", "oracle", "no_vote", optional=True),
            row("the same without the crop refinement", "oracle", "no_refine", optional=True),
            row("U-Net on frame 11 (no motion)", "unet"),
            row("true mask of frame 11 (perfect segmenter)", REFS, "copy_frame_11"),
        ]
    if args.speed_widths:
        trained = [] if args.skip_quality else ["--saved_seg_model_dir", f"{unet}/best.pt"]
        stages.append({"name": "speed", "cmd": [
            "{py}", "scripts/bench/speed_unet.py", "--root_dir", "{data}", "--widths", *map(str, args.speed_widths),
            "--batch_size", str(args.speed_batch), "--crop_size", str(args.speed_crop), *workers, *trained, "{device}"],
            "scores": "{out}/scores/speed.json"})
    return {"names": {"data": user_path(args.root_dir)} if args.root_dir else {},
            "env": threads_env(args.threads),
            "stages": stages,
            "table": {"title": "val", "header": ("val Jaccard (competition metric)", "score"), "rows": rows}}


RECIPES = {"quickstart": QUICKSTART}


# scripts/bench/bench_field.py's presets (its flags win): the smoke run that proves the recipe end to end on a 2-core CPU;
# cpu_mid, a reduced CPU scale that fits a session on a shared, loaded 2-core machine (a quarter of cpu's train
# videos, an eighth of its unlabeled ones, a sixth of its budget, a U-Net trained on about as many frames as the
# quickstart's; the same 200 val videos); cpu, the CPU scale; and the competition's scale on a GPU (the
# published SimVP configuration). calibrate_share: the share of the videos each model's calibration epoch runs on.
FIELD_PRESETS = {
    "smoke": {"train": 60, "val": 20, "unlabeled": 60, "budget_min": 4.0, "unet_epochs": 3, "calibrate_share": 1.0,
              "unet_args": "--preset small", "simvp_args": "--preset cpu", "device": "cpu", "threads": 1},
    "cpu_mid": {"train": 500, "val": 200, "unlabeled": 500, "budget_min": 5.0, "unet_epochs": 2,
                "calibrate_share": 0.2, "unet_args": "--preset small", "simvp_args": "--preset cpu", "device": "cpu",
                "threads": 1},
    "cpu": {"train": 2000, "val": 200, "unlabeled": 4000, "budget_min": 30.0, "unet_epochs": 6,
            "calibrate_share": 0.1, "unet_args": "--preset small", "simvp_args": "--preset cpu", "device": "cpu",
            "threads": 1},
    "gpu": {"train": 1000, "val": 1000, "unlabeled": 13000, "budget_min": 60.0, "unet_epochs": 20,
            "calibrate_share": 0.05, "unet_args": "--num_workers 4",
            "simvp_args": "--preset published --num_workers 4", "device": "cuda", "threads": 0},
}
FIELD_MODELS = {"dynamics": "forecasting/train_dynamics.py", "simvp": "forecasting/train_simvp.py"}


def field_unet(args) -> str:
    return user_path(args.unet_checkpoint) if args.unet_checkpoint else UNET


def field_data_stages(args) -> list:
    """scripts/bench/bench_field.py, before the learned models: the dataset (unless --root_dir), the motion model fitted
    on the train masks, the U-Net (unless --unet_checkpoint), its pseudo-labels of the unlabeled videos and its
    masks of the val videos' frames 1-11."""
    stages = [] if args.root_dir else [dataset(args.train, args.val, args.unlabeled, 2, args.seed, workers=1,
                                               world=args.world)]
    stages.append(fit_motion())
    if not args.unet_checkpoint:
        stages.append(train("train U-Net", "Unets/train.py", "{out}/unet", *args.unet_args.split(), "--train_videos",
                            str(args.train), "--epochs", str(args.unet_epochs), "--val_every", str(args.unet_epochs)))
    stages.append(pseudo_labels(field_unet(args), num_videos=args.unlabeled))
    # the val inputs (the U-Net's masks of val frames 1-11) made here: made by the first calibration run instead,
    # their cost would count as that model's one-off and shorten its training
    stages.append({"name": "val inputs", "cmd": ["{py}", "scripts/make_pseudo_labels.py", "--root_dir", "{data}",
                                                 "--saved_seg_model_dir", field_unet(args), "--split", "val", "--out",
                                                 "{out}/pseudo_labels", "{device}"]})
    return stages


def field_calibration_videos(args) -> tuple:
    """(train, unlabeled) videos of the calibration runs: --calibrate_share of each (at least one), so that the
    calibration costs a share of an epoch, not a whole one."""
    return tuple(max(1, round(n * args.calibrate_share)) for n in (args.train, args.unlabeled))


def field_train_stage(args, model: str, epochs: int, calibrate: bool = False) -> dict:
    """A learned model of the field trained for `epochs` on the pseudo-labels and the train masks, validated after
    its last epoch only (best.pt is then the last epoch: nothing is chosen on the val videos the table scores);
    calibrate: the 1-epoch run on field_calibration_videos whose cost sets the epochs that fit the budget, in
    OUT/calibrate/MODEL."""
    folder = f"{{out}}/calibrate/{model}" if calibrate else f"{{out}}/{model}"
    extra = (args.simvp_args if model == "simvp" else args.dynamics_args).split()
    train_videos, unlabeled = field_calibration_videos(args) if calibrate else (args.train, args.unlabeled)
    return train(f"{'calibrate' if calibrate else 'train'} {model}", FIELD_MODELS[model], folder, "--pseudo_labels",
                 "{out}/pseudo_labels", "--saved_seg_model_dir", field_unet(args), "--unlabeled_videos",
                 str(unlabeled), "--train_videos", str(train_videos), *extra, "--epochs", str(epochs),
                 "--val_every", str(epochs))
