"""What one training run works on, built from a config: model (DDP-wrapped under torchrun),
data set and sampler, optimiser, schedule, grad scaler and mixed precision (architecture §15)."""

from __future__ import annotations

import random
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from data import build_dataset
from data.sampling import WeightedSetSampler, check_weights
from lib import CheckpointError
from lib.optim import PolyLr, build_optimizer
from utils.engine.distributed import DistInfo
from utils.io.checkpoint import load_model

SCHEDULERS = ("PolyLr",)


class TrainingError(RuntimeError):
    """Training cannot go on; ``str()`` is one line saying why and what was kept."""


@dataclass
class Run:
    """Everything the loop works on."""

    model: nn.Module
    dataset: Any
    sampler: Sampler  # with set_epoch(epoch), as DistributedSampler
    optimizer: torch.optim.Optimizer
    scheduler: PolyLr
    scaler: torch.amp.GradScaler
    batch_size: int
    batches: int  # per epoch and process
    amp_dtype: torch.dtype | None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_run(cfg: Mapping, info: DistInfo, seed: int) -> Run:
    """Build the :class:`Run` of ``cfg`` on this process (the model's initial weights follow
    ``seed``; stochastic depth etc. follow ``seed + rank``)."""
    tcfg = cfg["Train"]
    loader_cfg, optim_cfg, sched_cfg = tcfg["Dataloader"], tcfg["Optimizer"], tcfg["Scheduler"]
    if sched_cfg["type"] not in SCHEDULERS:
        raise TrainingError(
            f"Train.Scheduler.type {sched_cfg['type']!r} is not supported; use one of {SCHEDULERS}"
        )
    seed_everything(seed)
    init = tcfg["Checkpoint"]["init"]
    try:
        model = load_model(cfg["Model"], init).to(info.device)  # init: strict, whole network
    except CheckpointError as error:
        raise TrainingError(f"Train.Checkpoint.init: {error}") from None
    seed_everything(seed + info.rank)
    if info.distributed and info.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    frozen = freeze(model, tcfg["freeze"])
    dataset = build_dataset(tcfg["Dataset"], on_error="skip", seed=seed)
    sampler = build_sampler(dataset, tcfg["Dataset"]["weights"], loader_cfg["shuffle"], seed, info)
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
    amp_dtype = None
    if optim_cfg["mixed_precision"]:
        amp_dtype = torch.float16 if info.device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    if info.distributed:
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=device_ids)
    model.train()  # installs the training forward (architecture §9)
    for part in frozen:
        keep_batchnorm_statistics(part)
    return Run(
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


def build_sampler(dataset, weights: Mapping, shuffle: bool, seed: int, info: DistInfo) -> Sampler:
    """This process's share of every epoch: a DistributedSampler over the whole data set, or
    with ``Train.Dataset.weights`` a :class:`data.sampling.WeightedSetSampler` (fixed shares
    of the sets per epoch). TrainingError for weights that name no set or are not >= 0."""
    if not weights:
        return DistributedSampler(
            dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed
        )
    try:
        checked = check_weights(weights, dataset.sets)
    except ValueError as error:
        raise TrainingError(f"Train.Dataset.weights: {error}") from None
    set_names = [sample.set for sample in dataset.samples]
    return WeightedSetSampler(set_names, checked, info.world_size, info.rank, shuffle, seed)


def freeze(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """Stop training the parts of ``model`` named in ``names`` (``Train.freeze``: module paths
    such as ``backbone`` or ``backbone.layer1``): their parameters get ``requires_grad=False``
    (so the optimiser leaves them out). Returns the parts, whose BatchNorm layers the caller
    keeps in eval mode after ``model.train()`` (:func:`keep_batchnorm_statistics`).
    TrainingError for a name that is no part of the model."""
    parts = []
    for name in names:
        try:
            part = model.get_submodule(name)
        except AttributeError:
            top = ", ".join(child for child, _ in model.named_children())
            raise TrainingError(
                f"Train.freeze: the model has no part {name!r}; its parts are {top} (a dotted "
                "path reaches inside one, e.g. backbone.layer1)"
            ) from None
        for parameter in part.parameters():
            parameter.requires_grad_(False)
        parts.append(part)
    return parts


def keep_batchnorm_statistics(part: nn.Module) -> None:
    """Put every BatchNorm layer of ``part`` in eval mode: it normalises with its running
    statistics and no longer updates them (a frozen part stays bit-identical)."""
    for module in part.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def check_resumable(state: Mapping, run: Run, cfg: Mapping, info: DistInfo, where: str) -> None:
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


def epoch_loader(run: Run, loader_cfg: Mapping, seed: int, epoch: int) -> DataLoader:
    """This epoch's loader; its generator (worker seeds) is fixed by (seed, epoch), so building
    it does not touch the global torch RNG and a resumed epoch gets the same workers."""
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


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
