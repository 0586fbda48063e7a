"""Train, test and evaluate a config in one command (run/Train.py, run/Test.py, run/Eval.py).

    python Expr.py --config configs/InSPyReNet_Tiny.yaml --seed 0        # fresh machine, CPU
    python Expr.py --config configs/InSPyReNet_SwinB.yaml
    python Expr.py --config configs/InSPyReNet_SwinB.yaml --resume       # after an interruption
    torchrun --nproc_per_node=4 Expr.py --config configs/InSPyReNet_SwinB.yaml

Training writes ``Train.Checkpoint.checkpoint_dir`` (see run/Train.py); then the maps of every
``Test.Dataset.sets`` go to ``<Eval.pred_root>/<set>/`` from ``<Test.Checkpoint.checkpoint_dir>/
latest.pth`` (maps already there are kept, so ``--resume`` also resumes testing), and the scores
to ``<Eval.result_path>/result_<set>.csv`` / ``.md``; the table is printed. Under torchrun every
process trains and only rank 0 tests and evaluates.

When the config reads the synthetic data set (sets ``Synth-TR`` / ``Synth-TE`` under
``<folder>/Train_Dataset`` and ``<folder>/Test_Dataset``, as configs/InSPyReNet_Tiny.yaml does)
and it is missing, it is generated first (utils.synthetic), so the tiny config runs end to end
with nothing downloaded.

Exit status: 0 done, 1 an error or nothing scored, 2 config error, 128 + signal number when
training was interrupted (its checkpoint is saved: add ``--resume``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.config import ConfigError, add_config_arguments, config_from_args, config_name  # noqa: E402
from utils.distributed import barrier, init_distributed, shutdown_distributed  # noqa: E402
from utils.evaluation import evaluate_config  # noqa: E402
from utils.malloc_tuning import tune_malloc  # noqa: E402
from utils.predictor import Predictor  # noqa: E402
from utils.synthetic import MANIFEST, TEST_SET, TRAIN_SET, make_synthetic_dataset  # noqa: E402
from utils.testing import predictions_problem, write_test_predictions  # noqa: E402
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
    return parser.parse_args(argv)


def synthetic_folder(cfg: Mapping) -> Path | None:
    """The folder of the synthetic data set when the config's train and test data are it
    (``<folder>/Train_Dataset/Synth-TR`` and ``<folder>/Test_Dataset/Synth-TE``), else None."""
    train_root = Path(cfg["Train"]["Dataset"]["root"])
    test_root = Path(cfg["Test"]["Dataset"]["root"])
    layout_ok = (
        (train_root.name, *cfg["Train"]["Dataset"]["sets"]) == TRAIN_SET
        and (test_root.name, *cfg["Test"]["Dataset"]["sets"]) == TEST_SET
        and train_root.parent == test_root.parent
    )
    return train_root.parent if layout_ok else None


def ensure_synthetic_data(cfg: Mapping, log: Callable[[str], None] = print) -> None:
    """Generate the synthetic data set when the config reads it and it is not complete (its
    manifest, written last, is missing); a complete one is left as it is."""
    folder = synthetic_folder(cfg)
    if folder is None or (folder / MANIFEST).is_file():
        return
    log(f"generating the synthetic data set in {folder} (python -m utils.synthetic)")
    make_synthetic_dataset(folder)


def predict_and_score(cfg: Mapping, args: argparse.Namespace) -> int:
    """Write the maps of the test sets, score them and print the tables; the exit status."""
    predictor = Predictor.from_config(cfg, device=args.device)
    reports = write_test_predictions(
        cfg["Test"], cfg["Eval"]["pred_root"], predictor, progress=not args.no_progress, log=console
    )
    problem = predictions_problem(reports)
    results = evaluate_config(
        cfg["Eval"],
        method=config_name(args.config),
        workers=min(4, os.cpu_count() or 1),
        progress=not args.no_progress,
        log=console,
    )
    if not any(result.scored for result in results):
        problem = problem or "nothing could be scored (see the messages above)"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tune_malloc()
    show_library_warnings()
    try:
        cfg = config_from_args(args, require=("Model", "Train", "Test", "Eval"))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        info = init_distributed(args.device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if info.is_main:
            ensure_synthetic_data(cfg, console)
        barrier(info)  # the other ranks wait for the data
        result = train(
            cfg,
            info,
            resume=args.resume,
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
    console(result.summary(resume_command("Expr.py", argv)))
    if result.exit_code:
        return result.exit_code
    again = f"finish with {resume_command('Expr.py', argv)}"
    try:
        return predict_and_score(cfg, args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"interrupted while testing; the maps written so far are kept: {again}", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
