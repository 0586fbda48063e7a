"""python run/Eval.py --config configs/InSPyReNet_SwinB.yaml
python run/Eval.py --config configs/SotA/VST.yaml --workers 2 --stat
python run/Eval.py --config configs/InSPyReNet_SwinB.yaml --method SwinB_retrained \
    --opts Eval.pred_root=snapshots/retrained Eval.datasets=[DUTS-TE,ECSSD]

Score saliency maps against ground-truth masks and keep a results table per dataset.

Predictions are read from ``<Eval.pred_root>/<dataset>/<stem>.png`` and masks from
``<Eval.gt_root>/<dataset>/masks/``. The scores go into ``<Eval.result_path>/result_<dataset>.csv``
(one row per method; re-running a method replaces its row) and ``result_<dataset>.md``, which is
also printed. ``--stat`` adds precision-recall and F-measure curves (``.npz`` + a ``.png`` plot per
dataset) under ``<Eval.result_path>/curves/``. Only the ``Eval`` section of the config is needed.

Exit status: 0 when at least one dataset was scored, 1 when nothing could be scored, 2 for a
config or argument error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run/ is a folder of scripts: make the repo packages importable
    sys.path.insert(0, str(ROOT))

from utils.config import ConfigError, add_config_arguments, config_from_args, config_name  # noqa: E402
from utils.evaluation import evaluate_config  # noqa: E402
from utils.metrics import check_metrics  # noqa: E402


def default_workers() -> int:
    """CPUs this process may use, at most 8."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(8, available))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="worker processes (1: serial; default: CPUs, at most 8)",
    )
    parser.add_argument("--method", help="row name in the results table (default: config name)")
    parser.add_argument("--stat", action="store_true", help="save and plot PR / F-measure curves")
    parser.add_argument(
        "--verbose", action="store_true", help="list every missing, extra and resized prediction"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = config_from_args(args, require=("Eval",))
        check_metrics(cfg["Eval"]["metrics"])
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # an unknown metric name
        print(f"error: {args.config}: Eval.metrics: {error}", file=sys.stderr)
        return 2
    results = evaluate_config(
        cfg["Eval"],
        method=args.method or config_name(args.config),
        workers=args.workers,
        stat=args.stat,
        verbose=args.verbose,
        progress=not args.no_progress,
    )
    if not any(result.scored for result in results):
        print("error: nothing could be scored (see the messages above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
