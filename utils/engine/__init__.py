"""The training engine: the loop (``train``), its hooks, checkpoint/resume state, distributed
helpers and step records. ``run/Train.py`` and ``Expr.py`` call :func:`train`."""

from utils.engine.hooks import EpochState, Hook, StepState
from utils.engine.loop import ABORTED, Trainer, TrainResult, position, train
from utils.engine.setup import TrainingError
from utils.engine.state import StateError

__all__ = [
    "ABORTED",
    "EpochState",
    "Hook",
    "StateError",
    "StepState",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "position",
    "train",
]
