"""Predict saliency maps for the test sets of a config (architecture §16.3).

    python run/Test.py --config configs/InSPyReNet_SwinB.yaml
    python run/Test.py --config configs/InSPyReNet_Tiny.yaml --ckpt snapshots/tiny/latest.pth
    python run/Test.py --config configs/InSPyReNet_SwinB.yaml --PM --overwrite \
        --opts Test.Dataset.sets=[HRSOD-TE] Eval.pred_root=snapshots/SwinB_PM

For every set of ``Test.Dataset.sets`` (folders ``<Test.Dataset.root>/<set>/images`` and
``masks``) it writes ``<Eval.pred_root>/<set>/<image stem>.png``: an 8-bit map at the image's
original size, the way ``Test.Dataset.transforms`` and the model say (static resize, dynamic
resize with pyramid blending, or with ``--PM`` patch merging). The checkpoint is ``--ckpt`` or
``<Test.Checkpoint.checkpoint_dir>/latest.pth``. Maps already written are kept unless
``--overwrite``, so an interrupted run resumes where it stopped (files are written atomically,
never half). Unreadable images are reported by name and skipped. Score the maps with
``python run/Eval.py --config <same config>``.

Exit status: 0 when every set has its maps, 1 when a set could not be read or no map exists at
all, 2 for a config, checkpoint or device error, 130 after Ctrl-C (the maps written are kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run/ is a folder of scripts: make the repo packages importable
    sys.path.insert(0, str(ROOT))

from utils.config import add_config_arguments, config_from_args  # noqa: E402
from utils.malloc_tuning import tune_malloc  # noqa: E402
from utils.predictor import Predictor, add_speed_arguments, speed_options  # noqa: E402
from utils.testing import predictions_problem, write_test_predictions  # noqa: E402
from utils.train_log import console, show_library_warnings  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--ckpt", help="checkpoint (default <Test.Checkpoint.checkpoint_dir>/latest.pth)"
    )
    parser.add_argument("--overwrite", action="store_true", help="predict maps that exist again")
    parser.add_argument("--device", help="cpu, cuda, cuda:N, mps (default: the best available)")
    parser.add_argument("--PM", action="store_true", help="patch-merging inference (Model.PM)")
    add_speed_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tune_malloc()
    show_library_warnings()
    try:
        cfg = config_from_args(args, require=("Model", "Test", "Eval"))
        predictor = Predictor.from_config(
            cfg, ckpt=args.ckpt, device=args.device, pm=args.PM, **speed_options(args)
        )
    except (ValueError, FileNotFoundError) as error:  # config, checkpoint, device: one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        reports = write_test_predictions(
            cfg["Test"],
            cfg["Eval"]["pred_root"],
            predictor,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            log=console,
        )
    except KeyboardInterrupt:
        print(
            "interrupted: the maps written so far are kept; run the same command again "
            "(without --overwrite) to write the rest",
            file=sys.stderr,
        )
        return 130
    problem = predictions_problem(reports)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
