"""Training hooks: what the loop calls at fixed points, so that checkpointing, step logs, debug
tiles, the non-finite-loss stop, signal handling and validation (utils.engine.validation), and
later EMA or a tracker, are each one small class, added without editing the loop.

Every process (rank) calls every hook at the same points in the same order; a hook that writes
files checks ``trainer.info.is_main`` itself. Collectives (``utils.engine.distributed``) may be
used inside hooks for that reason.

Points, in order::

    before_train(trainer)
      after_forward(trainer, step)    loss known, nothing applied yet: may set step.stop_requested
                                      or step.failure (the loop agrees on both over all ranks)
      after_backward(trainer, step)   gradients known, not applied: may set step.failure
      after_step(trainer, step)       the optimiser step is applied
    after_epoch(trainer, epoch)       a whole epoch is done
    on_stop(trainer, epoch, step)     a stop request ended an epoch part-way
    after_train(trainer)              always, also after an error (close files here)
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from utils.engine.distributed import gather_objects
from utils.engine.position import position
from utils.engine.records import TrainLog, save_debug_tiles
from utils.engine.setup import TrainingError
from utils.engine.state import rng_state, save_training_checkpoint
from utils.io.atomic import OutputError

if TYPE_CHECKING:
    from utils.engine.loop import Trainer

logger = logging.getLogger(__name__)


@dataclass
class StepState:
    """One optimiser step as the hooks see it. ``epoch`` and ``index`` count from 0 (``index``:
    steps already done in this epoch); ``outputs`` holds the pyramids of the forward pass."""

    epoch: int
    index: int
    loss: float
    lrs: list[float]
    outputs: dict
    stop_requested: bool = False
    failure: str | None = None


@dataclass
class EpochState:
    """How an epoch went: ``epoch`` complete epochs so far (counting this one)."""

    epoch: int
    steps: int
    stopping: bool
    losses: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Hook:
    """Base class: every point does nothing; override the ones you need (module docstring).

    A hook with a ``state_key`` has its :meth:`state_dict` saved in ``state.pth`` at every
    checkpoint and given back to :meth:`load_state_dict` on ``--resume`` (plain values only:
    the state is read with ``weights_only=True``)."""

    state_key: str | None = None

    def state_dict(self) -> dict[str, Any]:
        """What this hook needs to resume (only called when ``state_key`` is set)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def before_train(self, trainer: Trainer) -> None:
        """Before the first step."""

    def after_forward(self, trainer: Trainer, step: StepState) -> None:
        """The loss is known and nothing is applied yet."""

    def after_backward(self, trainer: Trainer, step: StepState) -> None:
        """The gradients are computed and not applied yet."""

    def after_step(self, trainer: Trainer, step: StepState) -> None:
        """The optimiser step and the scheduler step are applied."""

    def after_epoch(self, trainer: Trainer, epoch: EpochState) -> None:
        """A whole epoch is done."""

    def on_stop(self, trainer: Trainer, epoch: int, step: int) -> None:
        """A stop request ended epoch ``epoch`` (0-based) after ``step`` steps."""

    def after_train(self, trainer: Trainer) -> None:
        """The run ended (also after an error)."""


class NonFiniteStop(Hook):
    """A NaN/inf learning rate, loss or gradient fails the run before its step is applied (the
    loop raises TrainingError naming the epoch and step; the last checkpoint is kept). With
    fp16 mixed precision the grad scaler handles inf gradients itself (it skips that step)."""

    def after_forward(self, trainer: Trainer, step: StepState) -> None:
        bad_lr = [lr for lr in step.lrs if not np.isfinite(lr)]
        if bad_lr:
            step.failure = f"learning rate is {bad_lr[0]}"
        elif not np.isfinite(step.loss):
            step.failure = f"loss is {step.loss}"

    def after_backward(self, trainer: Trainer, step: StepState) -> None:
        if trainer.run.scaler.is_enabled():
            return
        grads = [p.grad for p in trainer.run.model.parameters() if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in grads])
            )
            if not torch.isfinite(norm):
                step.failure = f"gradient norm is {norm.item()}"


class SignalStop(Hook):
    """While training, SIGTERM and SIGINT ask the loop to stop after the current step (it then
    writes a checkpoint) instead of killing the process; a second SIGINT raises
    KeyboardInterrupt at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, say: Callable[[str], None]):
        self.signal_name: str | None = None
        self._say = say
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self._say(
            f"{self.signal_name} received: finishing the current step, then writing a "
            "checkpoint (Ctrl-C again aborts at once, without one)"
        )

    def before_train(self, trainer: Trainer) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def after_forward(self, trainer: Trainer, step: StepState) -> None:
        step.stop_requested = step.stop_requested or self.signal_name is not None

    def after_train(self, trainer: Trainer) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class Checkpointing(Hook):
    """``state.pth`` + ``latest.pth`` every ``every`` epochs, at the last epoch, when a stop was
    requested, and when a stop ends an epoch part-way. Every rank's RNG state goes in."""

    def __init__(self, directory: Path, every: int):
        self.directory = Path(directory)
        self.every = every

    def write(self, trainer: Trainer, epoch: int, step: int) -> None:
        """Collect every rank's RNG state; rank 0 writes the pair (utils.engine.state). A write
        that fails (no space, no permission) stops the run with one line; the previous complete
        pair is kept."""
        states = gather_objects(rng_state(), trainer.info)
        if not trainer.info.is_main:
            return
        try:
            self._save(trainer, epoch, step, states)
        except OutputError as error:
            raise TrainingError(
                f"{error}; training stopped at {position(epoch, step)}, the last complete "
                f"checkpoint in {self.directory} is kept (--resume continues from it)"
            ) from None

    def _save(self, trainer: Trainer, epoch: int, step: int, states: list) -> None:
        run = trainer.run
        save_training_checkpoint(
            self.directory,
            run.model,
            {
                "epoch": epoch,
                "step": step,
                "iteration": epoch * run.batches + step,
                "epochs": trainer.epochs,
                "batches": run.batches,
                "world_size": trainer.info.world_size,
                "seed": trainer.seed,
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "scaler": run.scaler.state_dict(),
                "rng": states,
                "hooks": {
                    hook.state_key: hook.state_dict() for hook in trainer.hooks if hook.state_key
                },
            },
        )

    def after_epoch(self, trainer: Trainer, epoch: EpochState) -> None:
        if epoch.epoch % self.every == 0 or epoch.epoch == trainer.epochs or epoch.stopping:
            self.write(trainer, epoch.epoch, 0)

    def on_stop(self, trainer: Trainer, epoch: int, step: int) -> None:
        self.write(trainer, epoch, step)


def load_hook_states(hooks: list[Hook], states: dict[str, Any]) -> None:
    """Give every hook with a ``state_key`` its saved state (resume); hooks without one saved
    (e.g. validation switched on for the resumed run) start afresh."""
    for hook in hooks:
        if hook.state_key and hook.state_key in states:
            hook.load_state_dict(states[hook.state_key])


class StepLog(Hook):
    """One CSV row (and TensorBoard scalars) per step on rank 0 (utils.engine.records)."""

    def __init__(self, directory: Path, resume_iteration: int | None):
        self.directory = Path(directory)
        self.resume_iteration = resume_iteration
        self.journal: TrainLog | None = None

    def before_train(self, trainer: Trainer) -> None:
        if trainer.info.is_main:
            self.journal = TrainLog(self.directory, self.resume_iteration)

    def after_step(self, trainer: Trainer, step: StepState) -> None:
        if self.journal is not None:
            iteration = step.epoch * trainer.run.batches + step.index + 1
            self.journal.step(step.epoch + 1, step.index + 1, iteration, step.loss, step.lrs)

    def after_train(self, trainer: Trainer) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None


class DebugTiles(Hook):
    """``debug/epoch_<n>.png`` on rank 0: the pyramids of the epoch's last training sample."""

    def __init__(self, directory: Path, keys: list[str]):
        self.directory = Path(directory)
        self.keys = keys
        self.last: dict | None = None

    def after_step(self, trainer: Trainer, step: StepState) -> None:
        self.last = {  # detached: keeps no autograd graph alive
            key: [t.detach() for t in value] if isinstance(value, list) else value.detach()
            for key, value in step.outputs.items()
        }

    def after_epoch(self, trainer: Trainer, epoch: EpochState) -> None:
        if trainer.info.is_main and self.last is not None:
            path = self.directory / "debug" / f"epoch_{epoch.epoch}.png"
            save_debug_tiles(self.last, path, self.keys)
