"""The model registry: kind name -> class, and the one way to describe and rebuild a model.

A model class takes part with one decorator, in its own module:

    @register_model("unet", train_script="Unets/train.py")
    class UNet(nn.Module):
        def __init__(self, base_channels=16, ...):
            self.config = {"base_channels": base_channels, ...}   # the constructor's keyword arguments

The decorator sets the class's NAME (its kind) and records the script that trains it (named in the error
when a checkpoint is missing). A checkpoint's model_config is {"name": kind, "kwargs": config}; build_model
rebuilds the model from it alone, so no architecture flag is ever repeated at inference or on resume. The
registry lives in the engine and names no model: each model module registers itself when it is imported.
"""
from dataclasses import dataclass

from torch import nn

from engine.device import unwrap
from engine.errors import CheckpointError


@dataclass(frozen=True)
class ModelKind:
    name: str
    cls: type
    train_script: str


MODELS = {}  # kind name -> ModelKind


def register_model(name: str, train_script: str):
    """Class decorator: register `cls` as the model kind `name`, trained by `train_script` (a repository path)."""
    def decorate(cls):
        known = MODELS.get(name)
        if known is not None and known.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"model kind {name!r} is registered twice: {known.cls.__qualname__} and {cls.__qualname__}")
        cls.NAME = name
        MODELS[name] = ModelKind(name, cls, train_script)
        return cls
    return decorate


def model_name(model_or_cls):
    """The kind of a model (class or instance): its NAME, set by register_model; None for an unregistered one."""
    value = getattr(model_or_cls, "NAME", None)
    return value if isinstance(value, str) else None


def model_kind(kind) -> ModelKind:
    """The registry's entry for a kind given as its name or its class."""
    name = kind if isinstance(kind, str) else model_name(kind)
    if name not in MODELS:
        raise KeyError(f"no model kind {kind!r} is registered (known: {sorted(MODELS)}); import its module first")
    return MODELS[name]


def model_config(model: nn.Module) -> dict:
    """{"name": the model's kind, "kwargs": its constructor's arguments}: enough to rebuild it."""
    model = unwrap(model)
    name = model_name(model)
    if name is None or not isinstance(getattr(model, "config", None), dict):
        raise TypeError(f"{type(model).__name__} needs register_model and a config dict to be checkpointed")
    return {"name": name, "kwargs": dict(model.config)}


def build_model(config: dict, kind=None, source="checkpoint") -> nn.Module:
    """Rebuild a model from its model_config; with `kind` (a name or class), after checking the config is one."""
    if not isinstance(config, dict) or "name" not in config or "kwargs" not in config:
        raise CheckpointError(f"{source}: model_config {config!r} lacks 'name' and 'kwargs'")
    if kind is not None:
        expected = kind if isinstance(kind, str) else model_name(kind)
        if config["name"] != expected:
            what = f" ({kind.__name__})" if isinstance(kind, type) else ""
            raise CheckpointError(
                f"{source} holds a {config['name']!r} model, expected a {expected!r} model{what}: "
                f"check which checkpoint you passed"
            )
    if config["name"] not in MODELS:
        raise CheckpointError(f"{source} holds a {config['name']!r} model, a kind this repository does not know "
                              f"(known: {sorted(MODELS)})")
    cls = MODELS[config["name"]].cls
    try:
        return cls(**config["kwargs"])
    except TypeError as e:
        raise CheckpointError(f"{source}: cannot build {cls.__name__} from {config['kwargs']}: {e}") from None


def count_parameters(model: nn.Module) -> int:
    """The number of weights of a model (what the train scripts print at start)."""
    return sum(p.numel() for p in model.parameters())
