"""What every model of the repository shares: devices and torchrun, checkpoints, the model registry, the
fit loop, loaders, schedules, run flags, the CLI error wrapper and the one atomic write.

Imports no model, forecasting or pipeline module: models register themselves (engine/registry.py).
"""
from engine.checkpoint import (  # noqa: F401
    CHECKPOINT_KEYS, RunState, check_finite_weights, checkpoint_file, load_checkpoint, load_for_flag, load_model, load_weights,
    make_checkpoint,
)
from engine.data import RandomFlips, make_loader, sample_rng  # noqa: F401
from engine.device import (  # noqa: F401
    DistContext, all_reduce_sum, autocast, choose_device, make_grad_scaler, memory_format, setup_distributed,
    teardown_distributed, unwrap, wrap_ddp,
)
from engine.errors import CheckpointError, OutputPathError, ResumeError  # noqa: F401
from engine.flags import OPTIMIZER_RULES, RUN_RULES, above, at_least, between, check_flags  # noqa: F401
from engine.lock import LOCK_FILE, RunLock, lock_folder  # noqa: F401
from engine.loop import (  # noqa: F401
    FREE_ON_RESUME, Optimization, add_optimizer_args, fit, prepare_optimization, resume_guard, train_epoch,
    warmup_cosine,
)
from engine.io import (  # noqa: F401
    atomic_save, atomic_write, check_not_an_input, check_output, check_output_folder, check_writable, file_kind, make_folder,
)
from engine.registry import (  # noqa: F401
    MODELS, build_model, count_parameters, model_config, model_kind, model_name, register_model,
)
from engine.run import (  # noqa: F401
    BEST, LAST, LOG, JsonlLogger, add_run_args, read_log, check_finite, error_message, print0, rng_state, run_cli,
    seed_everything, set_rng_state, start_run,
)
