"""Loading the trained models a predictor needs, with the flag that named each in any error.

Importing this module imports every model module, so that the registry (engine/registry.py) knows
every kind when a checkpoint is rebuilt by its name alone.
"""
from engine import CheckpointError, load_model
from forecasting.dynamics import ObjectDynamics  # noqa: F401  (registers "dynamics")
from forecasting.simvp import SimVP  # noqa: F401  (registers "simvp")
from SSL_convLSTM_Reconstructor.model import Reconstructor  # noqa: F401  (registers "reconstructor")
from Unets.unet import UNet  # noqa: F401  (registers "unet")


def load_for_flag(path, model_cls, flag: str, device="cpu"):
    """load_model with the flag named in any error (a reconstructor passed as the U-Net, a missing file)."""
    try:
        return load_model(path, model_cls, device)
    except CheckpointError as e:
        raise CheckpointError(f"{flag}: {e}") from None
