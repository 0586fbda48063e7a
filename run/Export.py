"""Export a config's inference network to ONNX or OpenVINO IR, checked against PyTorch.

    .venv/bin/python run/Export.py --config configs/InSPyReNet_SwinB.yaml --format onnx
    .venv/bin/python run/Export.py --config configs/InSPyReNet_SwinB.yaml --format openvino \
        --size 1088x1920 1280x1280
    .venv/bin/python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --engine openvino \
        --source photo.jpg

It exports the config's test path (``Test.Dataset.transforms`` and the model's threshold,
architecture §10.1, §16.1): the low-resolution network at the transforms' base size (384² in the
published configs), and pyramid blending (§10.2) for each ``--size HxW`` (the size after the
dynamic resize: multiples of 32, e.g. a 1920x1080 photo is 1088x1920). Height and width are
fixed per file (Swin's padding and shifted windows are built from the input size); the batch
size is free. One file per network in ``--out`` (default
``<checkpoint dir>/export/<checkpoint stem>/``): ``single_384x384.onnx``,
``blend_1088x1920.onnx`` (``.xml`` + ``.bin`` for openvino), each with its metadata (Model
section, transforms and normalisation, sizes, threshold, the checkpoint's SHA-256, the project
version, the check's figures), so the files alone are enough to run it.

The check: each file, run by ONNX Runtime (onnx) or OpenVINO (openvino), against the PyTorch
model on real photos (``--photos``, default docs/samples/input.png and its mirror image). The
export is refused, with one line giving the differences, when the logits differ by more than
``--tolerance`` (99.9th percentile) or more than 0.1 % of the map's pixels by more than 1/255;
nothing of that network is written then. For pyramid blending, a band-mask value within 1e-3 of
its 0.5 threshold is a float tie, and PyTorch's outputs with such ties taken either way are all
accepted (utils/export/band_ties.py).

int8 (``--int8 CALIB_DIR``, with ``--format openvino``): each OpenVINO file is also quantised
to int8 by NNCF with up to ``--int8-count`` images of the folder (utils.export.quantize) and
written beside it as ``single_384x384.int8.xml`` (+ ``.int8.bin``); run it with
``--engine openvino --precision int8``. int8 cannot keep the maps within 1/255 of float32, so
its check is against the float32 file and looser: the figures go into its metadata, and it is
refused when the 8-bit maps differ by more than ``--int8-tolerance`` (8/255) on average.

    .venv/bin/python run/Export.py --config configs/InSPyReNet_SwinB.yaml --format openvino \
        --int8 photos/calibration/

Exit status: 0 when every file was written, 1 when the check refused one (those before it are
kept), 2 for a config, argument, checkpoint or missing-package error. Needs
``.venv/bin/pip install -r requirements-deploy.txt``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from utils.cli import EXIT_ERROR, EXIT_SETUP, exit_on_error, parser_for, run_cli
from utils.config import add_config_arguments, config_from_args

logger = logging.getLogger(__name__)


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` (e.g. ``1088x1920``) as (height, width); ArgumentTypeError otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected HEIGHTxWIDTH, e.g. 1088x1920")
    return int(parts[0]), int(parts[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line above."""
    parser = parser_for(__doc__)
    add_config_arguments(parser)
    parser.add_argument("--ckpt", help="checkpoint (default: <checkpoint_dir>/latest.pth)")
    parser.add_argument(
        "--format",
        nargs="+",
        choices=("onnx", "openvino"),
        default=["onnx"],
        help="file formats (default onnx; both: --format onnx openvino)",
    )
    parser.add_argument(
        "--size",
        nargs="+",
        type=parse_size,
        default=[],
        metavar="HxW",
        help="high-resolution input sizes to export (pyramid blending), e.g. 1088x1920",
    )
    parser.add_argument("--out", help="output folder (default <checkpoint dir>/export/<stem>/)")
    parser.add_argument(
        "--tolerance",
        type=float,
        help="logit difference accepted at the 99.9th percentile (default 0.05)",
    )
    parser.add_argument("--photos", nargs="+", default=[], help="photos for the check")
    parser.add_argument(
        "--int8",
        metavar="CALIB_DIR",
        help="also write int8 OpenVINO files, calibrated on this folder's images (NNCF)",
    )
    parser.add_argument(
        "--int8-count",
        type=int,
        metavar="N",
        help="calibration images used at most, evenly spaced over the folder (default 64)",
    )
    parser.add_argument(
        "--int8-tolerance",
        type=float,
        metavar="D",
        help="int8 maps may differ from float32 by this much on average, in 1/255 (default 8)",
    )
    args = parser.parse_args(argv)
    if args.tolerance is not None and not args.tolerance > 0:
        parser.error("--tolerance must be positive")
    if args.int8 is not None and "openvino" not in args.format:
        parser.error(
            "--int8 quantises OpenVINO files: add --format openvino (ONNX Runtime int8 is not "
            'offered: README "Exported engines")'
        )
    if args.int8_count is not None and args.int8_count < 1:
        parser.error("--int8-count must be at least 1")
    if args.int8_tolerance is not None and not 0 < args.int8_tolerance <= 255:
        parser.error("--int8-tolerance must be in (0, 255]")
    return args


def _run(args: argparse.Namespace) -> int:
    from data.transforms import CONFIG_CHECKS
    from utils.export.exporter import TOLERANCE, check_photos, export_model
    from utils.export.plan import ExportRefusedError
    from utils.inference.exported import default_out_dir

    with exit_on_error(EXIT_SETUP):
        cfg = config_from_args(args, require=("Model", "Test"), checks=CONFIG_CHECKS)
        ckpt = Path(args.ckpt or Path(cfg["Test"]["Checkpoint"]["checkpoint_dir"]) / "latest.pth")
        out = Path(args.out) if args.out else default_out_dir(ckpt)
        photos = check_photos(args.photos)
        calibration = []
        if args.int8 is not None:  # a bad folder or image: one line before minutes of exporting
            from utils.export.quantize import CALIBRATION_COUNT, calibration_files, require_nncf

            require_nncf()
            count = args.int8_count or CALIBRATION_COUNT
            calibration = calibration_files(args.int8, count)
    tolerance = TOLERANCE if args.tolerance is None else args.tolerance
    # the refusal (a ValueError too) is caught first: exit status 1, not 2
    with exit_on_error(EXIT_SETUP), exit_on_error(EXIT_ERROR, (ExportRefusedError,)):
        files = export_model(
            cfg, ckpt, out, args.format, args.size, tolerance=tolerance, photos=photos
        )
        for path in files:
            logger.info("wrote %s", path)
        if calibration:
            from utils.export.quantize import MAX_MEAN_MAP_DIFF, quantize_export

            xml = [path for path in files if path.suffix == ".xml"]
            bound = args.int8_tolerance or MAX_MEAN_MAP_DIFF
            for path in quantize_export(xml, calibration, photos, max_mean_map_diff=bound):
                logger.info("wrote %s", path)
    engine = "openvino" if "openvino" in args.format else "onnxruntime"
    logger.info(
        "run it: .venv/bin/python run/Inference.py --exported %s --engine %s%s --source <image>",
        out,
        engine,
        " --precision int8" if calibration else "",
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the script; returns its exit status."""
    return run_cli(_run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
