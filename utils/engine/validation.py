"""Validation while training (``Train.Validation``): scores per epoch, ``best.pth``, early
stopping and the forgetting report.

    Train:
      Validation:
        enabled: true
        root: data/custom/Val_Dataset      # <root>/<set>/images/, masks/ (the usual layout)
        sets: [MySet-VAL]                  # target sets: their mean `select` score picks best.pth
        general: [DUTS-TE]                 # scored beside them, to see what fine-tuning forgets
        general_root: data/Test_Dataset    # null: root
        every: 1                           # epochs between validations (the last one always)
        at_start: true                     # also before the first step (always with general)
        metrics: [Sm, mae, maxFm]          # any of Eval's (utils.evaluation.metrics)
        select: Sm
        mode: null                         # max or min; null: min for mae, else max
        patience: null                     # stop after this many validations without a better one
        save_maps: false                   # also write the PNGs to <checkpoint_dir>/validation/

The scores are Eval's (run/Eval.py) on the maps Test (run/Test.py) would write for the model of
that moment, without the PNG round trip: every image goes through the same
:class:`~utils.inference.predictor.Predictor` (the config's ``Test.Dataset.transforms``, one
image per forward pass as Test does), becomes the same ``floor(m·255)`` uint8 map, is scored
against ``read_mask`` of its mask by ``utils.evaluation.metrics.image_quantities`` and reduced
with ``reduce_quantities`` in Eval's order (natural order of the stems). Masks too small to score
and unreadable files are left out, as Eval does, with a warning. The predictor works on a copy of
the training model, so training (weights, BatchNorm statistics, RNG) is untouched.

Under torchrun each rank scores every ``world_size``-th image; the per-image quantities are
gathered (``utils.engine.distributed.gather_objects``) and reduced in image order on every
rank, so the scores are those of a single process whatever the split. Every rank scores rank
0's model (its BatchNorm statistics are broadcast first): the one ``latest.pth`` and
``best.pth`` hold.

Files on rank 0, beside ``latest.pth``: ``val_log.csv`` (one row per validation and set: epoch,
set, role ``target``/``general``, the metrics; epoch 0 is the step-0 validation), TensorBoard
scalars ``val/<set>/<metric>`` when installed, ``best.pth`` (official format, the weights of the
best validation so far) and ``best.json`` (its epoch and scores), both written atomically. The
best-so-far, the step-0 scores and the early-stopping count are part of the resume state.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from data import build_dataset
from lib import unwrap_model
from utils.engine.distributed import DistInfo, broadcast_tensors, gather_objects
from utils.engine.hooks import EpochState, Hook
from utils.engine.records import ValidationLog
from utils.engine.setup import TrainingError
from utils.evaluation.metrics import (
    check_metrics,
    image_quantities,
    quantities_for,
    reduce_quantities,
    size_problem,
)
from utils.inference.compose import to_uint8
from utils.inference.predictor import Predictor
from utils.io.atomic import OutputError, write_bytes_atomic
from utils.io.checkpoint import save_checkpoint
from utils.io.files import natural_key
from utils.io.images import ImageReadError, read_image, read_mask, write_png_atomic

if TYPE_CHECKING:
    from utils.engine.loop import Trainer

logger = logging.getLogger(__name__)

BEST = "best.pth"
BEST_INFO = "best.json"
MAPS = "validation"  # <checkpoint_dir>/validation/<set>/<stem>.png with save_maps
LOWER_IS_BETTER = frozenset({"mae"})
TARGET, GENERAL = "target", "general"


@dataclass(frozen=True)
class ValidationSettings:
    """``Train.Validation`` checked against the rest of the config."""

    sets: tuple[tuple[str, str, str], ...]  # (name, root, role)
    every: int
    at_start: bool
    metrics: tuple[str, ...]
    select: str
    mode: str  # "max" or "min"
    patience: int | None
    save_maps: bool

    @property
    def targets(self) -> list[str]:
        """The names of the target sets (those that select the best checkpoint)."""
        return [name for name, _, role in self.sets if role == TARGET]

    @property
    def generals(self) -> list[str]:
        """The names of the general sets (the forgetting report)."""
        return [name for name, _, role in self.sets if role == GENERAL]


def validation_settings(cfg: Mapping) -> ValidationSettings | None:
    """The validation of ``cfg`` (None when ``Train.Validation.enabled`` is false); TrainingError
    naming the key when it cannot be run (no sets, no root, no Test transforms, a selection
    metric that is not logged, an unknown metric)."""
    section = cfg["Train"]["Validation"]
    if not section["enabled"]:
        return None
    where = "Train.Validation"
    if not section["sets"]:
        raise TrainingError(f"{where}.sets is empty: list the validation set(s) under root")
    if not section["root"]:
        raise TrainingError(f"{where}.root is not set: the folder holding {section['sets']}")
    if "Test" not in cfg:
        raise TrainingError(
            f"{where} needs the config's Test section (its Dataset.transforms are the test path)"
        )
    try:
        metrics = check_metrics(section["metrics"])
    except ValueError as error:
        raise TrainingError(f"{where}.metrics: {error}") from None
    if section["select"] not in metrics:
        raise TrainingError(
            f"{where}.select {section['select']!r} is not among {where}.metrics {metrics}"
        )
    overlap = set(section["sets"]) & set(section["general"])
    if overlap:
        raise TrainingError(f"{where}: {sorted(overlap)} listed in both sets and general")
    mode = section["mode"] or ("min" if section["select"] in LOWER_IS_BETTER else "max")
    general_root = section["general_root"] or section["root"]
    sets = tuple((name, section["root"], TARGET) for name in section["sets"]) + tuple(
        (name, general_root, GENERAL) for name in section["general"]
    )
    return ValidationSettings(
        sets=sets,
        every=section["every"],
        at_start=section["at_start"] or bool(section["general"]),
        metrics=tuple(metrics),
        select=section["select"],
        mode=mode,
        patience=section["patience"],
        save_maps=section["save_maps"],
    )


def validation_predictor(model, cfg: Mapping, info: DistInfo) -> Predictor:
    """A Predictor (Test's numerics) on an eval-mode copy of ``model`` (DDP unwrapped). Under
    torchrun every rank's copy gets rank 0's buffers: DDP keeps the parameters equal, but each
    rank's BatchNorm statistics follow its own last batches (without SyncBatchNorm), and the
    checkpoints are rank 0's."""
    copied = copy.deepcopy(unwrap_model(model))
    broadcast_tensors(list(copied.buffers()), info)
    transforms = cfg["Test"]["Dataset"]["transforms"]
    return Predictor(copied, transforms, info.device, precision=cfg["Model"]["precision"])


def score_set(
    predictor: Predictor,
    dataset_type: str,
    root: str,
    name: str,
    metrics: Sequence[str],
    info: DistInfo,
    *,
    maps_dir: Path | None = None,
    progress: bool = False,
) -> tuple[dict[str, float], int, list[str]]:
    """Eval's scores of ``predictor`` on ``<root>/<name>`` (module docstring), this rank scoring
    every ``world_size``-th image; returns (scores, images scored, problems). ``maps_dir``: write
    the uint8 maps there too (rank by rank). Raises TrainingError when the set cannot be listed."""
    try:
        dataset = build_dataset(
            {"type": dataset_type, "root": root, "sets": [name], "transforms": None},
            on_error="skip",
        )
    except ValueError as error:  # missing folder, image without a mask, ...
        raise TrainingError(f"validation set {name}: {error}") from None
    pairs = sorted(dataset.samples, key=lambda pair: natural_key(pair.name))
    needed = quantities_for(metrics)
    mine = []
    share = range(info.rank, len(pairs), info.world_size)
    bar = tqdm(share, desc=f"validation {name}", unit="image", leave=False, disable=not progress)
    for index in bar:
        pair = pairs[index]
        try:
            gt = read_mask(pair.mask)
            problem = size_problem(gt.shape)
            if problem is not None:
                mine.append((index, None, f"{pair.mask}: {problem}"))
                continue
            pred = to_uint8(predictor.predict(read_image(pair.image)))
        except ImageReadError as error:
            mine.append((index, None, str(error)))
            continue
        if maps_dir is not None:
            write_png_atomic(maps_dir / f"{pair.name}.png", pred)
        mine.append((index, image_quantities(pred, gt, needed), None))
    gathered = sorted(item for part in gather_objects(mine, info) for item in part)
    records = [record for _, record, _ in gathered if record is not None]
    problems = list(dataset.failures) + [problem for _, _, problem in gathered if problem]
    return reduce_quantities(records, metrics), len(records), problems


class Validation(Hook):
    """Scores the validation sets at step 0 (when asked) and every ``every`` epochs, logs them,
    keeps ``best.pth`` and stops early after ``patience`` validations without a better one.

    Runs before :class:`~utils.engine.hooks.Checkpointing` so that the checkpoint written at the
    end of an epoch (and the resume state in it) includes that epoch's validation."""

    state_key = "validation"

    def __init__(self, settings: ValidationSettings, cfg: Mapping, directory: Path):
        self.settings = settings
        self.cfg = cfg
        self.directory = Path(directory)
        self.log: ValidationLog | None = None
        self.history: list[dict[str, Any]] = []  # {"epoch", "scores": {set: {metric: value}}}
        self.best: dict[str, Any] | None = None  # {"epoch", "score", "scores"}
        self.stale = 0  # validations since the best one
        self.resumed = False

    # -- resume state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What ``--resume`` needs: the scores so far, the best and the early-stopping count."""
        return {"history": copy.deepcopy(self.history), "best": self.best, "stale": self.stale}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.history = list(state["history"])
        self.best = state["best"]
        self.stale = state["stale"]
        self.resumed = True

    # -- hook points ----------------------------------------------------------------------------
    def before_train(self, trainer: Trainer) -> None:
        if trainer.info.is_main:
            resume_epoch = trainer.start_epoch if self.resumed else None
            self.log = ValidationLog(self.directory, self.settings.metrics, resume_epoch)
        started_afresh = (trainer.start_epoch, trainer.start_step) == (0, 0)
        if self.settings.at_start and started_afresh and not self.history:
            self.validate(trainer, 0)

    def after_epoch(self, trainer: Trainer, epoch: EpochState) -> None:
        if epoch.epoch % self.settings.every and epoch.epoch != trainer.epochs:
            return
        improved = self.validate(trainer, epoch.epoch)
        patience = self.settings.patience
        if patience is not None and not improved and self.stale >= patience:
            trainer.say(
                f"early stop: {self.settings.select} has not improved for {self.stale} "
                f"validation(s) (Train.Validation.patience {patience}); best epoch "
                f"{self.best['epoch']}"
            )
            epoch.stopping = True

    def after_train(self, trainer: Trainer) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None
        if trainer.info.is_main and self.history:
            for line in self.summary():
                logger.info(line)

    # -- work -----------------------------------------------------------------------------------
    def validate(self, trainer: Trainer, epoch: int) -> bool:
        """Score every set for the model after ``epoch`` epochs (0: before training), log it,
        keep the best; returns whether this is a new best."""
        settings, info = self.settings, trainer.info
        predictor = validation_predictor(trainer.run.model, self.cfg, info)
        scores: dict[str, dict[str, float]] = {}
        for name, root, _ in settings.sets:
            maps_dir = self.directory / MAPS / name if settings.save_maps else None
            scores[name], count, problems = score_set(
                predictor,
                self.cfg["Test"]["Dataset"]["type"],
                root,
                name,
                settings.metrics,
                info,
                maps_dir=maps_dir,
                progress=trainer.bars,
            )
            if problems:
                trainer.say(
                    f"validation {name}: {len(problems)} image(s) left out: "
                    + "; ".join(problems[:3])
                    + (" ..." if len(problems) > 3 else "")
                )
            if count == 0:
                raise TrainingError(f"validation set {name}: no image could be scored")
        del predictor
        self.history.append({"epoch": epoch, "scores": scores})
        score = self.selection_score(scores)
        improved = self.best is None or self._better(score, self.best["score"])
        if improved:
            self.best = {"epoch": epoch, "score": score, "scores": scores}
            self.stale = 0
        else:
            self.stale += 1
        if info.is_main:
            self._record(trainer, epoch, scores, improved)
        return improved

    def selection_score(self, scores: Mapping[str, Mapping[str, float]]) -> float:
        """The mean ``select`` score over the target sets."""
        values = [scores[name][self.settings.select] for name in self.settings.targets]
        return float(sum(values) / len(values))

    def _better(self, score: float, best: float) -> bool:
        if math.isnan(score):
            return False
        if math.isnan(best):
            return True
        return score > best if self.settings.mode == "max" else score < best

    def _record(self, trainer: Trainer, epoch: int, scores: Mapping, improved: bool) -> None:
        """Rank 0: the log line, the CSV rows, the progress bar and (when improved) best.pth."""
        roles = {name: role for name, _, role in self.settings.sets}
        if self.log is not None:
            for name, values in scores.items():
                self.log.add(epoch, name, roles[name], values)
        trainer.say(f"validation after {_when(epoch)}: {self.scores_line(scores)}")
        select = self.settings.select
        trainer.status[f"val {select}"] = f"{self.selection_score(scores):.4f}"
        if not improved:
            return
        try:
            save_checkpoint(trainer.run.model, self.directory / BEST)
            info = {"epoch": epoch, "select": select, "mode": self.settings.mode, **self.best}
            text = json.dumps(info, indent=2, sort_keys=True) + "\n"
            write_bytes_atomic(self.directory / BEST_INFO, text.encode("utf-8"))
        except OutputError as error:
            raise TrainingError(
                f"{error}; training stopped after {_when(epoch)}, the last complete checkpoint "
                f"in {self.directory} is kept (--resume continues from it)"
            ) from None
        trainer.say(f"new best {select} {self.best['score']:.4f}: {self.directory / BEST}")

    def scores_line(self, scores: Mapping[str, Mapping[str, float]]) -> str:
        """'VAL Sm 0.8123 mae 0.0712 | general TE Sm 0.7000 mae 0.0900 (Sm 0.7000, worse by
        0.0500 than at step 0)'."""
        start = self.history[0]["scores"] if self.history[0]["epoch"] == 0 else None
        parts = []
        for name, _, role in self.settings.sets:
            values = " ".join(f"{metric} {scores[name][metric]:.4f}" for metric in scores[name])
            text = f"{name} {values}"
            if role == GENERAL:
                text = f"general {text}"
                if start is not None and scores is not start:
                    text += f" ({self.settings.select} {self._change(start[name], scores[name])})"
            parts.append(text)
        return " | ".join(parts)

    def _change(self, before: Mapping[str, float], now: Mapping[str, float]) -> str:
        """'0.7000, worse by 0.0500 than at step 0' for the select metric."""
        select = self.settings.select
        delta = now[select] - before[select]
        if delta == 0:
            return f"{now[select]:.4f}, unchanged since step 0"
        worse = delta < 0 if self.settings.mode == "max" else delta > 0
        verb = "worse" if worse else "better"
        return f"{now[select]:.4f}, {verb} by {abs(delta):.4f} than at step 0"

    def summary(self) -> list[str]:
        """The final report: the best epoch with its scores, the last validation, and for each
        general set how much its score changed since step 0."""
        best, last = self.best, self.history[-1]
        lines = [
            f"validation: best {self.settings.select} {best['score']:.4f} after "
            f"{_when(best['epoch'])} ({self.directory / BEST}): {self.scores_line(best['scores'])}"
        ]
        if last["epoch"] != best["epoch"]:
            lines.append(
                f"validation: last, after {_when(last['epoch'])}: "
                f"{self.scores_line(last['scores'])}"
            )
        start = self.history[0] if self.history[0]["epoch"] == 0 else None
        for name in self.settings.generals:
            if start is None:
                continue
            before = start["scores"][name]
            lines.append(
                f"forgetting: general set {name}: {self.settings.select} "
                f"{before[self.settings.select]:.4f} at step 0; at the best epoch "
                f"{self._change(before, best['scores'][name])}; at the last "
                f"{self._change(before, last['scores'][name])}"
            )
        return lines


def _when(epoch: int) -> str:
    return "step 0" if epoch == 0 else f"epoch {epoch}"
