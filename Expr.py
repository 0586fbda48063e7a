"""Train, test and evaluate a config in one command (run/Train.py, run/Test.py, run/Eval.py).

    .venv/bin/python Expr.py --config configs/InSPyReNet_Tiny.yaml --seed 0    # fresh machine, CPU
    .venv/bin/python Expr.py --config configs/InSPyReNet_SwinB.yaml
    .venv/bin/python Expr.py --config configs/InSPyReNet_SwinB.yaml --resume   # after a stop
    .venv/bin/torchrun --nproc_per_node=4 Expr.py --config configs/InSPyReNet_SwinB.yaml

Training writes ``Train.Checkpoint.checkpoint_dir`` (see run/Train.py); then the maps of every
``Test.Dataset.sets`` go to ``<Eval.pred_root>/<set>/`` from ``<Test.Checkpoint.checkpoint_dir>/
latest.pth`` (maps already there are kept, so ``--resume`` also resumes testing), and the scores
to ``<Eval.result_path>/result_<set>.csv`` / ``.md``; the table is printed. Under torchrun every
process trains and only rank 0 tests and evaluates.

When the config reads the synthetic data set (sets ``Synth-TR`` / ``Synth-TE`` under
``<folder>/Train_Dataset`` and ``<folder>/Test_Dataset``, as configs/InSPyReNet_Tiny.yaml does)
and it is missing, it is generated first (data.synthetic), so the tiny config runs end to end
with nothing downloaded.

Exit status: 0 done, 1 an error or nothing scored, 2 a config error or an output folder of the
test or evaluation step that cannot be used (checked before training), 128 + signal number when
training was interrupted (its checkpoint is saved: add ``--resume``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from run import Eval, Test, Train
from utils.cli import (
    EXIT_ERROR,
    EXIT_SETUP,
    ScriptError,
    add_training_arguments,
    command_line,
    exit_on_error,
    parser_for,
    run_cli,
    script_argv,
)
from utils.config import add_config_arguments, config_from_args, config_name

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line above."""
    parser = parser_for(__doc__)
    add_config_arguments(parser)
    add_training_arguments(parser)
    return parser.parse_args(argv)


def synthetic_folder(cfg: Mapping) -> Path | None:
    """The folder of the synthetic data set when the config's train and test data are it
    (``<folder>/Train_Dataset/Synth-TR`` and ``<folder>/Test_Dataset/Synth-TE``), else None."""
    from data.synthetic import TEST_SET, TRAIN_SET

    train_root = Path(cfg["Train"]["Dataset"]["root"])
    test_root = Path(cfg["Test"]["Dataset"]["root"])
    layout_ok = (
        (train_root.name, *cfg["Train"]["Dataset"]["sets"]) == TRAIN_SET
        and (test_root.name, *cfg["Test"]["Dataset"]["sets"]) == TEST_SET
        and train_root.parent == test_root.parent
    )
    return train_root.parent if layout_ok else None


def ensure_synthetic_data(cfg: Mapping) -> None:
    """Generate the synthetic data set when the config reads it and it is not complete (its
    manifest, written last, is missing); a complete one is left as it is."""
    from data.synthetic import MANIFEST, make_synthetic_dataset

    folder = synthetic_folder(cfg)
    if folder is None or (folder / MANIFEST).is_file():
        return
    logger.info(
        "generating the synthetic data set in %s (.venv/bin/python -m data.synthetic)", folder
    )
    make_synthetic_dataset(folder)


def check_later_outputs(cfg: Mapping) -> None:
    """The folders of the test and evaluation steps, checked before training starts (a bad one
    would otherwise be found after hours of training): OSError, one line naming it."""
    from utils.evaluation.tables import prepare_result_folder
    from utils.io.atomic import check_output_folder

    for name in cfg["Test"]["Dataset"]["sets"]:
        check_output_folder(Path(cfg["Eval"]["pred_root"]) / name, "the maps")
    prepare_result_folder(cfg["Eval"]["result_path"])


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from data.transforms import CONFIG_CHECKS
    from utils.inference.predictor import Predictor
    from utils.runtime import tune_malloc

    tune_malloc()
    with exit_on_error(EXIT_SETUP):
        required = ("Model", "Train", "Test", "Eval")
        cfg = config_from_args(args, require=required, checks=CONFIG_CHECKS)
        check_later_outputs(cfg)
    again = command_line("Expr.py", argv, ("--resume",))
    status, is_main = Train.train_with_args(cfg, args, again, lambda: ensure_synthetic_data(cfg))
    if status or not is_main:
        return status
    progress = not args.no_progress
    test_problem = None
    with exit_on_error(EXIT_ERROR):
        predictor = Predictor.from_config(cfg, device=args.device)
    try:
        Test.write_maps(cfg, predictor, progress=progress)
    except ScriptError as problem:  # score what there is all the same, then report it
        test_problem = problem
    try:
        Eval.score(
            cfg["Eval"],
            config_name(args.config),
            workers=min(4, Eval.default_workers()),
            progress=progress,
        )
    except ScriptError as problem:
        raise test_problem or problem from None
    if test_problem is not None:
        raise test_problem
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the script; returns its exit status."""
    args = parse_args(argv)
    interrupted = (
        "interrupted while testing; the maps written so far are kept: finish with "
        + command_line("Expr.py", script_argv(argv), ("--resume",))
    )
    return run_cli(lambda parsed: _run(parsed, script_argv(argv)), args, interrupted=interrupted)


if __name__ == "__main__":
    sys.exit(main())
