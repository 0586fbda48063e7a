"""Train InSPyReNet from a config (architecture §15).

    python run/Train.py --config configs/InSPyReNet_Tiny.yaml --seed 0       # CPU, minutes
    python run/Train.py --config configs/InSPyReNet_SwinB.yaml               # one GPU
    python run/Train.py --config configs/InSPyReNet_SwinB.yaml --resume      # go on after a stop
    torchrun --nproc_per_node=4 run/Train.py --config configs/InSPyReNet_SwinB.yaml   # 4 GPUs
    python run/Train.py --config configs/InSPyReNet_Tiny.yaml --debug \
        --opts Train.Scheduler.epoch=5 Train.Checkpoint.checkpoint_dir=snapshots/tiny5

Writes into ``Train.Checkpoint.checkpoint_dir``: ``latest.pth`` (published format, what Test and
Inference load), ``state.pth`` (for ``--resume``), ``config.yaml`` (the effective config, with
the seed), ``train_log.csv`` (loss and lr per step), ``tensorboard/`` (when installed) and with
``--debug`` ``debug/epoch_<n>.png`` (saliency and Laplacian pyramids of a training sample).

Ctrl-C or SIGTERM finishes the current step, writes a checkpoint and exits with 128 + the signal
number; ``--resume`` then continues exactly where it stopped. A NaN/inf loss stops the run
(exit 1) and keeps the last good checkpoint. Other exit codes: 0 done, 1 error, 2 config error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run/ is a folder of scripts: make the repo packages importable
    sys.path.insert(0, str(ROOT))

from utils.config import ConfigError, add_config_arguments, config_from_args  # noqa: E402
from utils.distributed import init_distributed, shutdown_distributed  # noqa: E402
from utils.malloc_tuning import tune_malloc  # noqa: E402
from utils.train_log import console, show_library_warnings  # noqa: E402
from utils.training import (  # noqa: E402
    ABORTED,
    USER_ERRORS,
    add_training_arguments,
    resume_command,
    train,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument(
        "--debug", action="store_true", help="save pyramid tiles to <checkpoint_dir>/debug/"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tune_malloc()
    show_library_warnings()
    try:
        cfg = config_from_args(args, require=("Model", "Train"))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        info = init_distributed(args.device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        result = train(
            cfg,
            info,
            resume=args.resume,
            debug=args.debug,
            seed=args.seed,
            progress=not args.no_progress,
            log=console,
        )
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: {ABORTED}", file=sys.stderr)
        return 130
    finally:
        shutdown_distributed()
    if not info.is_main:
        return 0
    console(result.summary(resume_command("run/Train.py", argv)))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
