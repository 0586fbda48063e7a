"""The training loop (architecture §15) as library code; run/Train.py and Expr.py call train().

    info = init_distributed("cpu")                  # utils.distributed; a world of one here
    result = train(load_config("configs/InSPyReNet_Tiny.yaml"), info, seed=0)

What one run does:

* Data: ``Train.Dataset`` through ``data.build_dataset`` (files that fail to decode are skipped,
  named in a warning and counted at the end of the epoch); a ``DistributedSampler`` gives every
  process its share (a world of one gets all of it) in an order fixed by (seed, epoch);
  ``drop_last=True``.
* Model and optimiser: ``build_model(Model)``; ``build_optimizer`` (backbone lr, head 10×);
  ``PolyLr`` with T = len(loader)·epochs, stepped after every optimiser step. Under torchrun the
  model is wrapped in DDP (with SyncBatchNorm on CUDA). Mixed precision when
  ``Train.Optimizer.mixed_precision``: autocast bf16 on CPU, fp16 with a GradScaler on CUDA.
  TF32 is off.
* Checkpoints (utils.checkpointing) every ``checkpoint_epoch`` epochs and at the end; the
  effective config (seed included) goes to ``<checkpoint_dir>/config.yaml``, per-step loss and
  lr to ``train_log.csv`` (utils.train_log), and with ``debug`` a pyramid tile per epoch to
  ``debug/epoch_<n>.png``. Only rank 0 writes files and shows progress bars.
* Reproducibility: every run has a seed (``--seed``, ``Train.seed`` or one drawn and recorded in
  the saved config). It seeds torch/numpy/python, the data order and the augmentations
  (``SODDataset(seed=)``), so a seeded run repeats. ``resume=True`` continues from ``state.pth``
  (epoch boundary or mid-epoch) and ends with the same weights as an uninterrupted run.
* Stops: a NaN/inf loss raises :class:`TrainingError` naming the epoch and step, before the
  step is applied and without touching the last checkpoint. SIGTERM/SIGINT finish the current
  step, write a checkpoint and return with ``interrupted`` set (a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import argparse
import random
import secrets
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from data import build_dataset, skipped_files
from lib import build_model
from lib.optim import PolyLr, build_optimizer, pyramid_loss
from utils.checkpointing import (
    CONFIG,
    LATEST,
    StateError,
    load_training_state,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
)
from utils.config import save_config
from utils.distributed import DistInfo, any_rank, broadcast_object, disable_tf32, gather_objects
from utils.train_log import TrainLog, save_debug_tiles

SCHEDULERS = ("PolyLr",)


class TrainingError(RuntimeError):
    """Training cannot go on; ``str()`` is one line saying why and what was kept."""


# What the scripts report as one "error: ..." line without a traceback: bad data (ValueError,
# e.g. an image without its mask), missing backbone weights (FileNotFoundError), an unusable
# state.pth (StateError), a NaN loss (TrainingError).
USER_ERRORS = (TrainingError, StateError, ValueError, FileNotFoundError)
# The message after a second Ctrl-C (StopRequest's KeyboardInterrupt).
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
            position = f"epoch {self.epochs_done + 1}, step {self.step}"
            if self.step == 0:
                position = f"the end of epoch {self.epochs_done}"
            return (
                f"interrupted by {self.interrupted} at {position}; checkpoint saved in {where}. "
                f"Resume with: {resume_command} (under torchrun: the same torchrun command with "
                "--resume)"
            )
        skipped = f", {self.skipped} unreadable sample(s) skipped" if self.skipped else ""
        return (
            f"done: {self.epochs_done} epoch(s) in {self.seconds:.0f} s{skipped}; "
            f"weights: {where / LATEST}"
        )


def add_training_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--resume``, ``--seed``, ``--device``, ``--no-progress`` (run/Train.py and Expr.py)."""
    parser.add_argument(
        "--resume", action="store_true", help="continue from <checkpoint_dir>/state.pth"
    )
    parser.add_argument("--seed", type=int, help="random seed (overrides Train.seed)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N, mps (default: the best available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def resume_command(script: str, argv: list[str] | None = None) -> str:
    """The command line that continues this run: ``script`` with ``argv`` (default: this
    process's arguments) and ``--resume``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["python", script, *args])


class StopRequest:
    """While active, SIGTERM and SIGINT set :attr:`signal_name` instead of killing the process;
    the loop checks it after each step. A second SIGINT raises KeyboardInterrupt at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, log: Callable[[str], None]):
        self.signal_name: str | None = None
        self._log = log
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self._log(
            f"{self.signal_name} received: finishing the current step, then writing a "
            "checkpoint (Ctrl-C again aborts at once, without one)"
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def choose_seed(requested: int | None, info: DistInfo) -> int:
    """``requested``, or a fresh random seed drawn on rank 0 and shared with every rank."""
    if requested is not None:
        return int(requested)
    return int(broadcast_object(secrets.randbits(31), info))


@dataclass
class _Run:
    """Everything the loop works on, built by :func:`_setup`."""

    model: nn.Module
    dataset: Any
    sampler: DistributedSampler
    optimizer: torch.optim.Optimizer
    scheduler: PolyLr
    scaler: torch.amp.GradScaler
    batch_size: int
    batches: int  # per epoch and process
    amp_dtype: torch.dtype | None


def _setup(cfg: Mapping, info: DistInfo, seed: int) -> _Run:
    tcfg = cfg["Train"]
    loader_cfg, optim_cfg, sched_cfg = tcfg["Dataloader"], tcfg["Optimizer"], tcfg["Scheduler"]
    if sched_cfg["type"] not in SCHEDULERS:
        raise TrainingError(
            f"Train.Scheduler.type {sched_cfg['type']!r} is not supported; use one of {SCHEDULERS}"
        )
    _seed_everything(seed)  # the model's initial weights follow the seed
    model = build_model(cfg["Model"]).to(info.device)
    _seed_everything(seed + info.rank)  # stochastic depth etc. differ between ranks
    dataset = build_dataset(tcfg["Dataset"], on_error="skip", seed=seed)
    sampler = DistributedSampler(
        dataset,
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=loader_cfg["shuffle"],
        seed=seed,
    )
    batches = len(sampler) // loader_cfg["batch_size"]
    if batches == 0:
        raise TrainingError(
            f"Train.Dataloader.batch_size {loader_cfg['batch_size']} is larger than the "
            f"{len(sampler)} training images per process ({len(dataset)} in all): no full batch"
        )
    optimizer = build_optimizer(model, optim_cfg)
    scheduler = PolyLr(
        optimizer,
        max_iteration=batches * sched_cfg["epoch"],
        gamma=sched_cfg["gamma"],
        minimum_lr=sched_cfg["minimum_lr"],
        warmup_iteration=sched_cfg["warmup_iteration"],
    )
    amp = optim_cfg["mixed_precision"]
    amp_dtype = None
    if amp:
        amp_dtype = torch.float16 if info.device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    if info.distributed:
        if info.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=device_ids)
    model.train()  # installs the training forward (architecture §9)
    return _Run(
        model,
        dataset,
        sampler,
        optimizer,
        scheduler,
        scaler,
        loader_cfg["batch_size"],
        batches,
        amp_dtype,
    )


def _check_resumable(state: Mapping, run: _Run, cfg: Mapping, info: DistInfo, where: Path):
    """TrainingError unless ``state`` was written by a run with the same schedule and world."""
    expected = {
        "epochs": cfg["Train"]["Scheduler"]["epoch"],
        "batches": run.batches,
        "world_size": info.world_size,
    }
    names = {
        "epochs": "Train.Scheduler.epoch",
        "batches": "batches per epoch (data set size / batch size / processes)",
        "world_size": "number of processes",
    }
    for key, value in expected.items():
        if state[key] != value:
            raise TrainingError(
                f"{where}: cannot resume: {names[key]} was {state[key]}, now {value}; the "
                "learning-rate schedule would differ. Use the original settings."
            )


def _loader(run: _Run, cfg: Mapping, seed: int, epoch: int) -> DataLoader:
    """This epoch's loader; its generator (worker seeds) is fixed by (seed, epoch), so building
    it does not touch the global torch RNG and a resumed epoch gets the same workers."""
    loader_cfg = cfg["Train"]["Dataloader"]
    generator = torch.Generator()
    generator.manual_seed(seed * 100_003 + epoch)
    return DataLoader(
        run.dataset,
        batch_size=run.batch_size,
        sampler=run.sampler,
        num_workers=loader_cfg["num_workers"],
        pin_memory=loader_cfg["pin_memory"],
        drop_last=True,
        generator=generator,
        worker_init_fn=_ignore_sigint,
    )


def _loss(run: _Run, batch: Mapping, device: torch.device) -> tuple[torch.Tensor, dict]:
    """Forward (under autocast when mixed precision is on) and the loss of spec §15.1; also
    returns the pyramids (``saliency``, ``laplacian``, ``gt``) for debug tiles.

    The loss is computed here in float32, outside autocast, with the same ``pyramid_loss``
    the model's forward uses: binary_cross_entropy is refused inside CUDA autocast.
    """
    image = batch["image"].to(device, non_blocking=True)
    gt = batch["gt"].to(device, non_blocking=True)
    autocast = nullcontext()
    if run.amp_dtype is not None:
        autocast = torch.autocast(device.type, dtype=run.amp_dtype)
    with autocast:
        out = run.model({"image": image})
    saliency = [level.float() for level in out["saliency"]]
    loss = pyramid_loss(saliency, gt, _unwrap(run.model).image_pyramid)
    return loss, {"saliency": saliency, "laplacian": out["laplacian"], "gt": gt}


def _detached(pyramids: dict) -> dict:
    """A copy of :func:`_loss`'s pyramids that keeps no autograd graph alive."""
    return {
        key: [t.detach() for t in value] if isinstance(value, list) else value.detach()
        for key, value in pyramids.items()
    }


@dataclass
class _EpochOutcome:
    step: int  # steps done in this epoch (== batches when it completed)
    stopping: bool  # a stop signal reached some rank
    losses: list[float]
    skipped: list[str]
    last: dict | None  # the last step's pyramids (for debug tiles)
    seconds: float


class _Loop:
    """The epoch and step loops of one run, with its checkpoint and log writers."""

    def __init__(
        self,
        cfg: Mapping,
        info: DistInfo,
        run: _Run,
        seed: int,
        say: Callable[[str], None],
        progress: bool,
        debug: bool,
        resume_iteration: int | None,
    ):
        tcfg = cfg["Train"]
        self.cfg, self.info, self.run, self.seed, self.say = cfg, info, run, seed, say
        self.directory = Path(tcfg["Checkpoint"]["checkpoint_dir"])
        self.epochs = tcfg["Scheduler"]["epoch"]
        self.every = tcfg["Checkpoint"]["checkpoint_epoch"]
        self.debug_keys = tcfg["Debug"]["keys"] if debug else None
        self.bars = progress and info.is_main
        self.journal = TrainLog(self.directory, resume_iteration) if info.is_main else None
        self.skipped = 0

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()

    def checkpoint(self, epoch: int, step: int) -> None:
        """Collect every rank's RNG state; rank 0 writes state.pth and latest.pth."""
        states = gather_objects(rng_state(), self.info)
        if not self.info.is_main:
            return
        run = self.run
        save_training_checkpoint(
            self.directory,
            run.model,
            {
                "epoch": epoch,
                "step": step,
                "iteration": epoch * run.batches + step,
                "epochs": self.epochs,
                "batches": run.batches,
                "world_size": self.info.world_size,
                "seed": self.seed,
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "scaler": run.scaler.state_dict(),
                "rng": states,
            },
        )

    def run_epochs(
        self, epoch: int, step: int, rng: list | None, stop: StopRequest
    ) -> tuple[int, int]:
        """Train from (``epoch``, ``step``) to the end or to a stop; return where it ended
        (complete epochs, steps into the next one).

        ``rng``: every rank's RNG states to restore before the first step (resume)."""
        bar = tqdm(total=self.epochs, initial=epoch, desc="epochs", disable=not self.bars)
        try:
            while epoch < self.epochs:
                outcome = self.run_epoch(epoch, step, rng, stop)
                rng = None
                if outcome.step < self.run.batches:  # a signal stopped the epoch part-way
                    self.checkpoint(epoch, outcome.step)
                    return epoch, outcome.step
                epoch, step = epoch + 1, 0
                self.end_epoch(epoch, outcome)
                if epoch % self.every == 0 or epoch == self.epochs or outcome.stopping:
                    self.checkpoint(epoch, 0)
                bar.update()
                if outcome.stopping:
                    break
        finally:
            bar.close()
        return epoch, 0

    def run_epoch(self, epoch: int, step: int, rng: list | None, stop: StopRequest):
        """One epoch from step ``step`` (> 0 when resuming mid-epoch)."""
        run, info = self.run, self.info
        run.sampler.set_epoch(epoch)
        run.dataset.set_epoch(epoch)
        batches = iter(_loader(run, self.cfg, self.seed, epoch))
        for _ in range(step):  # mid-epoch resume: replay the data (and its state), not training
            next(batches)
        if rng is not None:
            set_rng_state(rng[info.rank])
        started = time.perf_counter()
        outcome = _EpochOutcome(step, False, [], [], None, 0.0)
        bar = tqdm(
            total=run.batches,
            initial=step,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            leave=False,
            disable=not self.bars,
        )
        while outcome.step < run.batches and not outcome.stopping:
            batch = next(batches)
            outcome.skipped += skipped_files(batch)
            lrs = run.scheduler.get_last_lr()
            loss, pyramids = _loss(run, batch, info.device)
            value = loss.item()
            flags = [stop.signal_name is not None, not np.isfinite(value)]
            outcome.stopping, bad = any_rank(flags, info)
            if bad:
                bar.close()
                self.fail(value, epoch, outcome.step)
            run.optimizer.zero_grad(set_to_none=True)
            run.scaler.scale(loss).backward()
            run.scaler.step(run.optimizer)
            run.scaler.update()
            run.scheduler.step()
            outcome.step += 1
            outcome.losses.append(value)
            if self.debug_keys:
                outcome.last = _detached(pyramids)
            if self.journal is not None:
                iteration = epoch * run.batches + outcome.step
                self.journal.step(epoch + 1, outcome.step, iteration, value, lrs)
            bar.set_postfix(loss=f"{value:.4f}", lr=f"{lrs[0]:.2e}")
            bar.update()
        bar.close()
        outcome.seconds = time.perf_counter() - started
        return outcome

    def fail(self, value: float, epoch: int, step: int) -> None:
        """Raise the one-line TrainingError of a non-finite loss (nothing is saved)."""
        latest = self.directory / LATEST
        kept = (
            f"the last good checkpoint {latest} is kept"
            if latest.exists()
            else "no checkpoint had been written yet"
        )
        what = f"loss is {value}" if not np.isfinite(value) else "loss is not finite on a process"
        raise TrainingError(
            f"{what} at epoch {epoch + 1}, step {step + 1}/{self.run.batches} (iteration "
            f"{epoch * self.run.batches + step + 1}): training stopped before applying it; "
            f"{kept}. Try a lower Train.Optimizer.lr."
        )

    def end_epoch(self, epoch: int, outcome: _EpochOutcome) -> None:
        """Log the epoch (mean loss, samples per rank, skipped files) and the debug tile."""
        reports = gather_objects(
            (len(outcome.losses), float(np.mean(outcome.losses)), outcome.skipped), self.info
        )
        samples = "+".join(str(steps * self.run.batch_size) for steps, _, _ in reports)
        mean_loss = float(np.mean([loss for _, loss, _ in reports]))
        lr = self.run.scheduler.get_last_lr()[0]
        self.say(
            f"epoch {epoch}/{self.epochs}: mean loss {mean_loss:.4f}, lr {lr:.3e}, samples per "
            f"process {samples}, {outcome.seconds:.1f} s"
        )
        names = [name for _, _, files in reports for name in files]
        if names:
            self.say(
                f"epoch {epoch}: {len(names)} sample(s) replaced because their files could not "
                f"be read: {'; '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            )
        self.skipped += len(names)
        if self.debug_keys and self.info.is_main and outcome.last is not None:
            path = self.directory / "debug" / f"epoch_{epoch}.png"
            save_debug_tiles(outcome.last, path, self.debug_keys)


def _quiet(message: str) -> None:
    """The log of ranks other than 0."""


def train(
    cfg: Mapping,
    info: DistInfo,
    *,
    resume: bool = False,
    debug: bool = False,
    seed: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``cfg`` (needs Model and Train) on this process's share; see the module docstring.

    ``seed`` overrides ``Train.seed``; on resume the run's recorded seed is used. Raises
    TrainingError (one line), ValueError / FileNotFoundError from the data and model builders
    and utils.checkpointing.StateError for an unusable ``state.pth``.
    """
    disable_tf32()
    started = time.perf_counter()
    tcfg = cfg["Train"]
    directory = Path(tcfg["Checkpoint"]["checkpoint_dir"])
    say = log if info.is_main else _quiet

    state = load_training_state(directory) if resume else None
    if state is not None:
        if seed is not None and seed != state["seed"]:
            say(f"note: --seed {seed} ignored: resuming the run recorded with seed {state['seed']}")
        seed = state["seed"]
    else:
        seed = choose_seed(seed if seed is not None else tcfg["seed"], info)
    run = _setup(cfg, info, seed)
    epoch, step = 0, 0
    if state is not None:
        _check_resumable(state, run, cfg, info, directory / "state.pth")
        _unwrap(run.model).load_state_dict(state["model"], strict=True)
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        run.scaler.load_state_dict(state["scaler"])
        epoch, step = state["epoch"], state["step"]
        where = f"epoch {epoch}" + (f", step {step}" if step else "")
        say(f"resuming {directory} after {where} (seed {seed})")
    elif (directory / LATEST).exists():
        say(f"note: {directory} already holds a checkpoint; starting afresh (--resume continues)")

    if run.dataset.failures:
        say(f"{len(run.dataset.failures)} training file(s) cannot be read and are left out")
    shares = "+".join(str(count) for count in gather_objects(len(run.sampler), info))
    say(
        f"data: {len(run.dataset)} training images; images per process and epoch {shares} "
        f"({info.world_size} process(es)), {run.batches} batches of {run.batch_size} each; "
        f"seed {seed}"
    )
    if info.is_main:
        save_config({**cfg, "Train": {**tcfg, "seed": seed}}, directory / CONFIG)
    loop = _Loop(
        cfg, info, run, seed, say, progress, debug, None if state is None else state["iteration"]
    )
    try:
        with StopRequest(say) as stop:
            epoch, step = loop.run_epochs(
                epoch, step, None if state is None else state["rng"], stop
            )
    finally:
        loop.close()
    return TrainResult(
        checkpoint_dir=directory,
        epochs=loop.epochs,
        epochs_done=epoch,
        step=step,
        interrupted=stop.signal_name if epoch < loop.epochs else None,
        skipped=loop.skipped,
        seconds=time.perf_counter() - started,
        seed=seed,
    )
