"""Loading the trained models a predictor needs, with the flag that named each in any error.

Importing this module imports every model module, so that the registry (engine/registry.py) knows
every kind when a checkpoint is rebuilt by its name alone.
"""
from engine import load_for_flag  # noqa: F401  (re-exported: the pipeline's one import for models)
from forecasting.dynamics import ObjectDynamics  # noqa: F401  (registers "dynamics")
from forecasting.simvp import SimVP  # noqa: F401  (registers "simvp")
from SSL_convLSTM_Reconstructor.model import Reconstructor  # noqa: F401  (registers "reconstructor")
from Unets.unet import UNet  # noqa: F401  (registers "unet")

