""".venv/bin/python run/Eval.py --config configs/InSPyReNet_SwinB.yaml
.venv/bin/python run/Eval.py --config configs/SotA/VST.yaml --workers 2 --stat
.venv/bin/python run/Eval.py --config configs/InSPyReNet_SwinB.yaml --method SwinB_retrained \
    --opts Eval.pred_root=snapshots/retrained Eval.datasets=[DUTS-TE,ECSSD]

Score saliency maps against ground-truth masks and keep a results table per dataset.

Predictions are read from ``<Eval.pred_root>/<dataset>/<stem>.png`` and masks from
``<Eval.gt_root>/<dataset>/masks/``. The scores go into ``<Eval.result_path>/result_<dataset>.csv``
(one row per method; re-running a method replaces its row) and ``result_<dataset>.md``, which is
also printed. ``--stat`` adds precision-recall and F-measure curves (``.npz`` + a ``.png`` plot per
dataset) under ``<Eval.result_path>/curves/``. Only the ``Eval`` section of the config is needed.

Several runs may write into one result folder at the same time (each table is updated under a
lock). Every table is printed before it is written, so a failed write loses no score.

Exit status: 0 when at least one dataset was scored and every scored dataset's table was saved;
1 when nothing could be scored, when a worker process died (that dataset is not scored; try
``--workers 1``) or when a table could not be written (disk full, no permission: its scores are
printed, the previous table is kept); 2 for a config or argument error, or a result folder that
is not a folder, cannot be created or is not writable (found before any scoring).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from utils.cli import (
    EXIT_ERROR,
    EXIT_SETUP,
    ScriptError,
    add_progress_argument,
    exit_on_error,
    parser_for,
    run_cli,
)
from utils.config import add_config_arguments, config_from_args, config_name


def default_workers() -> int:
    """CPUs this process may use, at most 8."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(8, available))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line above."""
    parser = parser_for(__doc__, summary_paragraph=1)
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
    add_progress_argument(parser)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def score(
    eval_cfg: Mapping,
    method: str,
    *,
    workers: int,
    stat: bool = False,
    verbose: bool = False,
    progress: bool = True,
) -> None:
    """Score ``method``'s maps on every dataset of ``eval_cfg`` and log the tables; ScriptError
    with the exit status above when the result folder is unusable (before any scoring), when
    nothing could be scored, or when a dataset's scores were lost or not saved (one line per
    dataset naming it, after every other dataset was done)."""
    from utils.evaluation.evaluator import evaluate_config
    from utils.evaluation.tables import ResultFolderError

    with exit_on_error(EXIT_SETUP, (ResultFolderError,)):
        results = evaluate_config(
            eval_cfg, method=method, workers=workers, stat=stat, verbose=verbose, progress=progress
        )
    failures = [f"[{result.dataset}] {result.failure}" for result in results if result.failure]
    if failures:
        raise ScriptError(EXIT_ERROR, "; ".join(failures))
    if not any(result.scored for result in results):
        raise ScriptError(EXIT_ERROR, "nothing could be scored (see the messages above)")


def _run(args: argparse.Namespace) -> int:
    from utils.evaluation.metrics import check_metrics

    with exit_on_error(EXIT_SETUP):
        cfg = config_from_args(args, require=("Eval",))
    try:
        check_metrics(cfg["Eval"]["metrics"])
    except ValueError as error:  # an unknown metric name
        raise ScriptError(EXIT_SETUP, f"{args.config}: Eval.metrics: {error}") from None
    score(
        cfg["Eval"],
        args.method or config_name(args.config),
        workers=args.workers,
        stat=args.stat,
        verbose=args.verbose,
        progress=not args.no_progress,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the script; returns its exit status."""
    return run_cli(_run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
