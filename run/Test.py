"""Predict saliency maps for the test sets of a config (architecture §16.3).

    .venv/bin/python run/Test.py --config configs/InSPyReNet_SwinB.yaml
    .venv/bin/python run/Test.py --config configs/InSPyReNet_Tiny.yaml \
        --ckpt snapshots/InSPyReNet_Tiny/latest.pth
    .venv/bin/python run/Test.py --config configs/InSPyReNet_SwinB.yaml --PM --overwrite \
        --opts Test.Dataset.sets=[HRSOD-TE] Eval.pred_root=snapshots/SwinB_PM

For every set of ``Test.Dataset.sets`` (folders ``<Test.Dataset.root>/<set>/images`` and
``masks``) it writes ``<Eval.pred_root>/<set>/<image stem>.png``: an 8-bit map at the image's
original size, the way ``Test.Dataset.transforms`` and the model say (static resize, dynamic
resize with pyramid blending, or with ``--PM`` patch merging). The checkpoint is ``--ckpt`` or
``<Test.Checkpoint.checkpoint_dir>/latest.pth``. Maps already written are kept unless
``--overwrite``, so an interrupted run resumes where it stopped (files are written atomically,
never half). Unreadable images are reported by name and skipped. Score the maps with
``.venv/bin/python run/Eval.py --config <same config>``.

``--engine onnxruntime|openvino`` runs an exported model instead of torch (run/Export.py;
``--exported`` names it, default ``<checkpoint dir>/export/<checkpoint stem>/``), with the same
pre- and post-processing.

Exit status: 0 when every set has its maps, 1 when a set could not be read, no map exists at all
or a map could not be written (no space, no permission: one line naming the path), 2 for a
config, checkpoint, device or output-folder error, 130 after Ctrl-C and 143 after SIGTERM (the
maps written are kept).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from utils.cli import (
    EXIT_ERROR,
    EXIT_SETUP,
    ScriptError,
    add_device_argument,
    add_engine_arguments,
    add_progress_argument,
    add_speed_arguments,
    exit_on_error,
    parser_for,
    run_cli,
    speed_options,
)
from utils.config import add_config_arguments, config_from_args

MAP_BYTES = 1 << 20  # room for at least one map (a 1-Mpx 8-bit PNG is at most ~1 MiB)
INTERRUPTED = (
    "interrupted: the maps written so far are kept; run the same command again "
    "(without --overwrite) to write the rest"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line above."""
    parser = parser_for(__doc__)
    add_config_arguments(parser)
    parser.add_argument(
        "--ckpt", help="checkpoint (default <Test.Checkpoint.checkpoint_dir>/latest.pth)"
    )
    parser.add_argument("--overwrite", action="store_true", help="predict maps that exist again")
    add_device_argument(parser)
    parser.add_argument("--PM", action="store_true", help="patch-merging inference (Model.PM)")
    add_speed_arguments(parser)
    add_engine_arguments(parser)
    add_progress_argument(parser)
    return parser.parse_args(argv)


def write_maps(cfg: Mapping, predictor, *, overwrite: bool = False, progress: bool = True) -> None:
    """Write the maps of every test set of ``cfg`` with ``predictor``; ScriptError(2) when an
    output folder cannot be used, (1) when a set could not be read, no map exists at all or
    writing failed (no space, no permission)."""
    from utils.inference.test_sets import predictions_problem, write_test_predictions
    from utils.io.atomic import OutputError, check_output_folder

    pred_root = Path(cfg["Eval"]["pred_root"])
    with exit_on_error(EXIT_SETUP, (OutputError,)):
        for name in cfg["Test"]["Dataset"]["sets"]:
            check_output_folder(pred_root / name, "the maps", need_bytes=MAP_BYTES)
    with exit_on_error(EXIT_ERROR, (OutputError,)):
        reports = write_test_predictions(
            cfg["Test"], pred_root, predictor, overwrite=overwrite, progress=progress
        )
    problem = predictions_problem(reports)
    if problem:
        raise ScriptError(EXIT_ERROR, problem)


def _run(args: argparse.Namespace) -> int:
    from data.transforms import CONFIG_CHECKS
    from utils.inference.loading import open_predictor, resolve_engine

    with exit_on_error(EXIT_SETUP):
        engine = resolve_engine(args.engine, args.exported)
        if engine == "torch":
            from utils.runtime import tune_malloc

            tune_malloc()
        cfg = config_from_args(args, require=("Model", "Test", "Eval"), checks=CONFIG_CHECKS)
        predictor = open_predictor(
            cfg,
            engine=engine,
            exported=args.exported,
            ckpt=args.ckpt,
            device=args.device,
            pm=args.PM,
            **speed_options(args),
        )
    write_maps(cfg, predictor, overwrite=args.overwrite, progress=not args.no_progress)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the script; returns its exit status."""
    return run_cli(_run, parse_args(argv), interrupted=INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
