"""The training loop (architecture §15) as library code; run/Train.py and Expr.py call train().

    info = init_distributed("cpu")                  # utils.engine.distributed; a world of one here
    result = train(load_config("configs/InSPyReNet_Tiny.yaml"), info, seed=0)

What one run does:

* Data: ``Train.Dataset`` through ``data.build_dataset`` (files that fail to decode are skipped,
  named in a warning and counted at the end of the epoch); a ``DistributedSampler`` gives every
  process its share (a world of one gets all of it) in an order fixed by (seed, epoch);
  ``drop_last=True``.
* Model and optimiser (utils.engine.setup): ``load_model(Model)``; ``build_optimizer``
  (backbone lr, head 10×); ``PolyLr`` with T = len(loader)·epochs, stepped after every optimiser
  step. Under torchrun the model is wrapped in DDP (with SyncBatchNorm on CUDA). Mixed precision
  when ``Train.Optimizer.mixed_precision``: autocast bf16 on CPU, fp16 with a GradScaler on
  CUDA. TF32 is off.
* Hooks (utils.engine.hooks) do everything around the steps: checkpoints every
  ``checkpoint_epoch`` epochs and at the end, the per-step log ``train_log.csv``, with ``debug``
  a pyramid tile per epoch, the non-finite-loss stop, SIGTERM/SIGINT handling and with
  ``Train.Validation`` the validation (utils.engine.validation: scores per epoch, ``best.pth``,
  early stopping; its state is part of ``state.pth``). ``train(...,
  hooks=[...])`` adds more. The effective config (seed included) goes to
  ``<checkpoint_dir>/config.yaml``. Only rank 0 writes files and shows progress bars.
* Reproducibility: every run has a seed (``--seed``, ``Train.seed`` or one drawn and recorded in
  the saved config). It seeds torch/numpy/python, the data order and the augmentations
  (``SODDataset(seed=)``), so a seeded run repeats. ``resume=True`` continues from ``state.pth``
  (epoch boundary or mid-epoch) and ends with the same weights as an uninterrupted run.
* Stops: a NaN/inf loss raises :class:`TrainingError` naming the epoch and step, before the
  step is applied and without touching the last checkpoint. SIGTERM/SIGINT finish the current
  step, write a checkpoint and return with ``interrupted`` set (a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import logging
import secrets
import signal
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data import skipped_files
from lib import unwrap_model
from lib.optim import pyramid_loss
from utils.config import save_config
from utils.engine.distributed import DistInfo, any_rank, broadcast_object, gather_objects
from utils.engine.hooks import (
    Checkpointing,
    DebugTiles,
    EpochState,
    Hook,
    NonFiniteStop,
    SignalStop,
    StepLog,
    StepState,
    load_hook_states,
)
from utils.engine.position import position
from utils.engine.setup import Run, TrainingError, build_run, check_resumable, epoch_loader
from utils.engine.state import CONFIG, LATEST, STATE, load_training_state, set_rng_state
from utils.engine.validation import Validation, validation_settings
from utils.io.atomic import check_output_folder
from utils.runtime import disable_tf32

logger = logging.getLogger(__name__)

# The message after a second Ctrl-C (SignalStop's KeyboardInterrupt).
ABORTED = "aborted by a second Ctrl-C: the current step was not saved; the last checkpoint is kept"


@dataclass
class TrainResult:
    """How a call to :func:`train` ended."""

    checkpoint_dir: Path
    epochs: int  # the configured number of epochs
    epochs_done: int  # complete epochs in the last checkpoint
    step: int  # steps done in the unfinished epoch (0 at an epoch boundary)
    interrupted: str | None  # the signal's name when SIGTERM/SIGINT stopped the run
    skipped: int  # samples skipped because their files could not be decoded
    seconds: float
    seed: int

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal number after an interruption (the shell's convention)."""
        return 128 + signal.Signals[self.interrupted].value if self.interrupted else 0

    def summary(self, resume_command: str) -> str:
        """One line saying how the run ended (with ``resume_command`` after an interruption)."""
        where = self.checkpoint_dir
        if self.interrupted:
            return (
                f"interrupted by {self.interrupted} at {position(self.epochs_done, self.step)}; "
                f"checkpoint saved in {where}. Resume with: {resume_command} (under torchrun: "
                "the same torchrun command with --resume)"
            )
        skipped = f", {self.skipped} unreadable sample(s) skipped" if self.skipped else ""
        return (
            f"done: {self.epochs_done} epoch(s) in {self.seconds:.0f} s{skipped}; "
            f"weights: {where / LATEST}"
        )


def choose_seed(requested: int | None, info: DistInfo) -> int:
    """``requested``, or a fresh random seed drawn on rank 0 and shared with every rank."""
    if requested is not None:
        return int(requested)
    return int(broadcast_object(secrets.randbits(31), info))


class Trainer:
    """The epoch and step loops of one run; everything around the steps is a :class:`Hook`."""

    def __init__(
        self, cfg: Mapping, info: DistInfo, run: Run, seed: int, hooks: Sequence[Hook], bars: bool
    ):
        self.cfg, self.info, self.run, self.seed = cfg, info, run, seed
        self.hooks = list(hooks)
        self.epochs = cfg["Train"]["Scheduler"]["epoch"]
        self.bars = bars and info.is_main
        self.skipped = 0
        self.start_epoch, self.start_step = 0, 0  # where fit() began (set by fit)
        self.status: dict[str, str] = {}  # hooks' entries for the epochs progress bar

    def say(self, message: str) -> None:
        """Log ``message`` on rank 0 (the other ranks stay quiet)."""
        if self.info.is_main:
            logger.info(message)

    def fit(self, epoch: int, step: int, rng: list | None) -> tuple[int, int]:
        """Train from (``epoch``, ``step``) to the end or to a stop; return where it ended
        (complete epochs, steps into the next one). ``rng``: every rank's RNG states to restore
        before the first step (resume)."""
        self.start_epoch, self.start_step = epoch, step
        for hook in self.hooks:
            hook.before_train(self)
        bar = tqdm(total=self.epochs, initial=epoch, desc="epochs", disable=not self.bars)
        try:
            while epoch < self.epochs:
                outcome = self.run_epoch(epoch, step, rng)
                rng = None
                if outcome.steps < self.run.batches:  # a stop request ended the epoch part-way
                    for hook in self.hooks:
                        hook.on_stop(self, epoch, outcome.steps)
                    return epoch, outcome.steps
                epoch, step = epoch + 1, 0
                outcome.epoch = epoch
                self.report_epoch(outcome)
                for hook in self.hooks:
                    hook.after_epoch(self, outcome)
                if self.status:
                    bar.set_postfix(self.status, refresh=False)
                bar.update()
                if outcome.stopping:
                    break
        finally:
            bar.close()
            for hook in self.hooks:
                hook.after_train(self)
        return epoch, 0

    def run_epoch(self, epoch: int, step: int, rng: list | None) -> EpochState:
        """One epoch from step ``step`` (> 0 when resuming mid-epoch)."""
        run, info = self.run, self.info
        run.sampler.set_epoch(epoch)
        run.dataset.set_epoch(epoch)
        batches = iter(epoch_loader(run, self.cfg["Train"]["Dataloader"], self.seed, epoch))
        for _ in range(step):  # mid-epoch resume: replay the data (and its state), not training
            next(batches)
        if rng is not None:
            set_rng_state(rng[info.rank])
        started = time.perf_counter()
        outcome = EpochState(epoch, step, False)
        bar = tqdm(
            total=run.batches,
            initial=step,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            leave=False,
            disable=not self.bars,
        )
        try:
            while outcome.steps < run.batches and not outcome.stopping:
                batch = next(batches)
                outcome.skipped += skipped_files(batch)
                state = self.forward(epoch, outcome.steps, batch)
                for hook in self.hooks:
                    hook.after_forward(self, state)
                outcome.stopping, failed = any_rank(
                    [state.stop_requested, state.failure is not None], info
                )
                if failed:
                    raise TrainingError(self.failure_message(state))
                run.optimizer.zero_grad(set_to_none=True)
                run.scaler.scale(state.outputs.pop("loss")).backward()
                for hook in self.hooks:
                    hook.after_backward(self, state)
                if any_rank([state.failure is not None], info)[0]:
                    run.optimizer.zero_grad(set_to_none=True)
                    raise TrainingError(self.failure_message(state))
                run.scaler.step(run.optimizer)
                run.scaler.update()
                run.scheduler.step()
                for hook in self.hooks:
                    hook.after_step(self, state)
                outcome.steps += 1
                outcome.losses.append(state.loss)
                bar.set_postfix(loss=f"{state.loss:.4f}", lr=f"{state.lrs[0]:.2e}")
                bar.update()
        finally:
            bar.close()
        outcome.seconds = time.perf_counter() - started
        return outcome

    def forward(self, epoch: int, index: int, batch: Mapping) -> StepState:
        """Forward (under autocast when mixed precision is on) and the loss of spec §15.1.

        The loss is computed in float32, outside autocast, with the same ``pyramid_loss`` the
        model's forward uses: binary_cross_entropy is refused inside CUDA autocast. The state's
        ``outputs`` hold the pyramids (``saliency``, ``laplacian``, ``gt``) and the loss tensor.
        """
        run, device = self.run, self.info.device
        lrs = run.scheduler.get_last_lr()
        image = batch["image"].to(device, non_blocking=True)
        gt = batch["gt"].to(device, non_blocking=True)
        autocast = nullcontext()
        if run.amp_dtype is not None:
            autocast = torch.autocast(device.type, dtype=run.amp_dtype)
        with autocast:
            out = run.model({"image": image})
        saliency = [level.float() for level in out["saliency"]]
        loss = pyramid_loss(saliency, gt, unwrap_model(run.model).image_pyramid)
        outputs = {"saliency": saliency, "laplacian": out["laplacian"], "gt": gt, "loss": loss}
        return StepState(epoch, index, loss.item(), lrs, outputs)

    def failure_message(self, state: StepState) -> str:
        """The one line of a failed step (nothing of it was applied)."""
        latest = Path(self.cfg["Train"]["Checkpoint"]["checkpoint_dir"]) / LATEST
        kept = (
            f"the last good checkpoint {latest} is kept"
            if latest.exists()
            else "no checkpoint had been written yet"
        )
        what = state.failure or "a non-finite value on another process"
        batches = self.run.batches
        return (
            f"{what} at epoch {state.epoch + 1}, step {state.index + 1}/{batches} (iteration "
            f"{state.epoch * batches + state.index + 1}): training stopped before applying it; "
            f"{kept}. Try a lower Train.Optimizer.lr."
        )

    def report_epoch(self, outcome: EpochState) -> None:
        """Log the epoch (mean loss, samples per rank, skipped files) on rank 0."""
        reports = gather_objects(
            (len(outcome.losses), float(np.mean(outcome.losses)), outcome.skipped), self.info
        )
        samples = "+".join(str(steps * self.run.batch_size) for steps, _, _ in reports)
        mean_loss = float(np.mean([loss for _, loss, _ in reports]))
        lr = self.run.scheduler.get_last_lr()[0]
        self.say(
            f"epoch {outcome.epoch}/{self.epochs}: mean loss {mean_loss:.4f}, lr {lr:.3e}, "
            f"samples per process {samples}, {outcome.seconds:.1f} s"
        )
        names = [name for _, _, files in reports for name in files]
        if names:
            self.say(
                f"epoch {outcome.epoch}: {len(names)} sample(s) replaced because their files "
                f"could not be read: {'; '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            )
        self.skipped += len(names)


def train(
    cfg: Mapping,
    info: DistInfo,
    *,
    resume: bool = False,
    debug: bool = False,
    seed: int | None = None,
    progress: bool = True,
    hooks: Sequence[Hook] = (),
) -> TrainResult:
    """Train ``cfg`` (needs Model and Train) on this process's share; see the module docstring.

    ``seed`` overrides ``Train.seed``; on resume the run's recorded seed is used. ``hooks`` run
    after the built-in ones. Raises TrainingError (one line), ValueError / FileNotFoundError from
    the data and model builders and utils.engine.state.StateError for an unusable
    ``state.pth``.
    """
    disable_tf32()
    started = time.perf_counter()
    tcfg = cfg["Train"]
    directory = Path(tcfg["Checkpoint"]["checkpoint_dir"])
    say = logger.info if info.is_main else (lambda message: None)

    state = load_training_state(directory) if resume else None
    if state is not None:
        if seed is not None and seed != state["seed"]:
            say(f"note: --seed {seed} ignored: resuming the run recorded with seed {state['seed']}")
        seed = state["seed"]
    else:
        seed = choose_seed(seed if seed is not None else tcfg["seed"], info)
    validation = validation_settings(cfg)  # before the slow set-up: a config mistake fails fast
    run = build_run(cfg, info, seed)
    epoch, step = 0, 0
    if state is not None:
        check_resumable(state, run, cfg, info, str(directory / STATE))
        unwrap_model(run.model).load_state_dict(state["model"], strict=True)
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        run.scaler.load_state_dict(state["scaler"])
        epoch, step = state["epoch"], state["step"]
        say(f"resuming {directory} from {position(epoch, step)} (seed {seed})")
    elif (directory / LATEST).exists():
        say(f"note: {directory} already holds a checkpoint; starting afresh (--resume continues)")

    counts = getattr(run.sampler, "counts", None)  # Train.Dataset.weights
    if counts is not None:
        say(
            "each epoch: "
            + ", ".join(
                f"{name} {count} of {len(run.sampler.ranges[name])}"
                for name, count in counts.items()
            )
        )
    if run.dataset.failures:
        say(f"{len(run.dataset.failures)} training file(s) cannot be read and are left out")
    shares = "+".join(str(count) for count in gather_objects(len(run.sampler), info))
    say(
        f"data: {len(run.dataset)} training images; images per process and epoch {shares} "
        f"({info.world_size} process(es)), {run.batches} batches of {run.batch_size} each; "
        f"seed {seed}"
    )
    if info.is_main:  # room for latest.pth + state.pth (weights, Adam's two moments, weights)
        weights = sum(
            t.numel() * t.element_size() for t in unwrap_model(run.model).state_dict().values()
        )
        check_output_folder(directory, "a checkpoint", need_bytes=4 * weights)
        save_config({**cfg, "Train": {**tcfg, "seed": seed}}, directory / CONFIG)
    stop = SignalStop(say)
    builtin: list[Hook] = [
        NonFiniteStop(),
        stop,
        StepLog(directory, None if state is None else state["iteration"]),
    ]
    if debug:
        builtin.append(DebugTiles(directory, tcfg["Debug"]["keys"]))
    if validation is not None:  # before Checkpointing: the epoch's checkpoint includes it
        builtin.append(Validation(validation, cfg, directory))
    builtin.append(Checkpointing(directory, tcfg["Checkpoint"]["checkpoint_epoch"]))
    trainer = Trainer(cfg, info, run, seed, [*builtin, *hooks], progress)
    if state is not None:
        load_hook_states(trainer.hooks, state.get("hooks", {}))
    epoch, step = trainer.fit(epoch, step, None if state is None else state["rng"])
    return TrainResult(
        checkpoint_dir=directory,
        epochs=trainer.epochs,
        epochs_done=epoch,
        step=step,
        interrupted=stop.signal_name if epoch < trainer.epochs else None,
        skipped=trainer.skipped,
        seconds=time.perf_counter() - started,
        seed=seed,
    )
