"""Train InSPyReNet from a config (architecture §15).

    .venv/bin/python run/Train.py --config configs/InSPyReNet_Tiny.yaml --seed 0   # CPU, minutes
    .venv/bin/python run/Train.py --config configs/InSPyReNet_SwinB.yaml           # one GPU
    .venv/bin/python run/Train.py --config configs/InSPyReNet_SwinB.yaml --resume  # after a stop
    .venv/bin/torchrun --nproc_per_node=4 run/Train.py --config configs/InSPyReNet_SwinB.yaml
    .venv/bin/python run/Train.py --config configs/InSPyReNet_Tiny.yaml --debug \
        --opts Train.Scheduler.epoch=5 Train.Checkpoint.checkpoint_dir=snapshots/tiny5
    .venv/bin/python run/Train.py --config configs/finetune/InSPyReNet_SwinB_custom.yaml \
        --init-from snapshots/InSPyReNet_SwinB/latest.pth          # fine-tune on your own images

Writes into ``Train.Checkpoint.checkpoint_dir``: ``latest.pth`` (published format, what Test and
Inference load), ``state.pth`` (for ``--resume``), ``config.yaml`` (the effective config, with
the seed), ``train_log.csv`` (loss and lr per step), ``tensorboard/`` (when installed) and with
``--debug`` ``debug/epoch_<n>.png`` (saliency and Laplacian pyramids of a training sample).
With ``Train.Validation`` (utils/engine/validation.py) also ``val_log.csv`` (Eval's scores per
validation), ``best.pth`` (published format) and ``best.json`` (its epoch and scores).
``--init-from PATH`` (or ``Train.Checkpoint.init``) starts from a full InSPyReNet checkpoint;
``Train.freeze`` keeps named parts (e.g. the backbone) and their BatchNorm statistics fixed.

Ctrl-C or SIGTERM finishes the current step, writes a checkpoint and exits with 128 + the signal
number; ``--resume`` then continues exactly where it stopped. A NaN/inf loss stops the run
(exit 1) and keeps the last good checkpoint. Other exit codes: 0 done, 1 error, 2 config error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping

from utils.cli import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_SETUP,
    ScriptError,
    Terminated,
    add_training_arguments,
    command_line,
    exit_on_error,
    parser_for,
    run_cli,
    script_argv,
)
from utils.config import add_config_arguments, config_from_args

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line above."""
    parser = parser_for(__doc__)
    add_config_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument(
        "--debug", action="store_true", help="save pyramid tiles to <checkpoint_dir>/debug/"
    )
    parser.add_argument(
        "--init-from",
        metavar="PATH",
        help="fine-tune: start from this full InSPyReNet checkpoint (Train.Checkpoint.init)",
    )
    return parser.parse_args(argv)


def train_with_args(
    cfg: Mapping,
    args: argparse.Namespace,
    resume_command: str,
    prepare: Callable[[], None] | None = None,
) -> tuple[int, bool]:
    """Train ``cfg`` with the flags of :func:`add_training_arguments` (under torchrun too);
    ``prepare`` runs on rank 0 before training (the others wait). Logs how it ended, with
    ``resume_command`` after an interruption. Returns (exit status, whether this is rank 0)."""
    from utils.engine import ABORTED, StateError, TrainingError, train
    from utils.engine.distributed import barrier, init_distributed, shutdown_distributed

    with exit_on_error(EXIT_SETUP):
        info = init_distributed(args.device)
    errors = (TrainingError, StateError, ValueError, OSError)
    try:
        with exit_on_error(EXIT_ERROR, errors):
            if prepare is not None and info.is_main:
                prepare()
            barrier(info)  # the other ranks wait for what rank 0 prepared
            result = train(
                cfg,
                info,
                resume=args.resume,
                debug=getattr(args, "debug", False),
                seed=args.seed,
                progress=not args.no_progress,
            )
    except Terminated:
        raise  # SIGTERM outside the training loop (set-up): run_cli says so, exit 143
    except KeyboardInterrupt:
        raise ScriptError(EXIT_INTERRUPTED, ABORTED) from None
    finally:
        shutdown_distributed()
    if not info.is_main:
        return 0, False
    logger.info(result.summary(resume_command))
    return result.exit_code, True


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from data.transforms import CONFIG_CHECKS
    from utils.evaluation.metrics import check_metrics
    from utils.runtime import tune_malloc

    tune_malloc()
    checks = {**CONFIG_CHECKS, "Train.Validation.metrics": check_metrics}
    with exit_on_error(EXIT_SETUP):
        cfg = config_from_args(args, require=("Model", "Train"), checks=checks)
    if args.init_from:
        cfg["Train"]["Checkpoint"]["init"] = args.init_from
    resume = command_line("run/Train.py", argv, ("--resume",))
    return train_with_args(cfg, args, resume)[0]


def main(argv: list[str] | None = None) -> int:
    """Run the script; returns its exit status."""
    args = parse_args(argv)
    return run_cli(lambda parsed: _run(parsed, script_argv(argv)), args)


if __name__ == "__main__":
    sys.exit(main())
