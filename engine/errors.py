"""The errors the engine raises about its inputs; run_cli prints each as one line with its fix."""


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, incomplete or holds another kind of model."""


class ResumeError(ValueError):
    """--resume cannot continue the run in the checkpoint folder as asked (nothing there, or other flags)."""


class OutputPathError(OSError):
    """An output file cannot be written where its flag says."""
