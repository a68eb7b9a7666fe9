"""Exceptions raised by captum_lmac.

Every user-facing check raises one of these, with a message that names the problem, instead of
letting a deep torch traceback (or silent garbage) reach the user.
"""


class InputError(ValueError):
    """Bad user input: wrong shape, wrong sample rate, NaN, empty or silent audio, unknown target."""


class DataNotFoundError(FileNotFoundError):
    """A data folder or file the user pointed at does not exist or lacks the expected layout."""


class CheckpointError(RuntimeError):
    """A saved artefact is corrupt, of the wrong kind, or was fitted for a different model."""


class NotFittedError(RuntimeError):
    """A learned-decoder method was asked to attribute before ``fit`` or ``load``."""


class FitInterrupted(RuntimeError):
    """A fit stopped on SIGTERM / Ctrl-C after writing its checkpoint (resume with ``resume=True``).

    Attributes:
        checkpoint: The checkpoint written at the interruption (None without ``checkpoint_dir``).
        signum: The signal that stopped it.
        epoch, step: Where it stopped (epoch, batches done in that epoch).
    """

    def __init__(self, message: str, checkpoint=None, signum=None, epoch=None, step=None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.signum = signum
        self.epoch = epoch
        self.step = step
