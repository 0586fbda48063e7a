"""Saliency maps, cut-outs and new backgrounds for your own images, videos and webcam.

    .venv/bin/python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source photo.jpg \
        --type rgba
    .venv/bin/python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source photos/ \
        --dest out/ --batch-size 4
    .venv/bin/python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source clip.mp4 \
        --type green
    .venv/bin/python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source clip.mp4 \
        --type sea.jpg
    .venv/bin/python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source 0 \
        --type overlay
    .venv/bin/python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source big.jpg \
        --PM --gpu

Sources: one image (.jpg .jpeg .png .bmp .webp .tif .tiff, any case), one video (.mp4 .mov .avi
.mkv .webm), a folder of images and/or videos (not recursive, natural order), or a webcam index
(``0``: a live window, ``q`` quits; nothing is written).

Types (``--type``, default map): map (gray), rgba (alpha = map), green, white, a colour such as
``[255,0,0]``, blur, overlay, or the path of a background image; see
``utils/inference/compose.py``. ``--threshold X`` makes the mask hard (map > X), ``--reverse``
keeps the background instead.

Outputs: an image becomes ``<dest>/<stem>.png``; a video ``<dest>/<stem>.mp4`` (mp4v, same fps,
size and frame count), or with ``--type rgba`` a folder of frames ``<dest>/<stem>/000000.png``...
(OpenCV writes no video with alpha). The default ``--dest`` is
``results/<config stem>/<type>`` for an image or a video and
``results/<config stem>/<type>/<folder name>`` for a folder. Files are written atomically (a
video under a hidden temporary name, renamed at the end); a run that was interrupted resumes:
outputs already there are skipped unless ``--overwrite``, and the temporary files a kill left in
``<dest>`` are deleted.

Engines (``--engine``): torch (default), or onnxruntime / openvino running an exported model
(run/Export.py; ``--exported`` names its folder or file, default
``<checkpoint dir>/export/<checkpoint stem>/``; with ``--exported`` and no ``--config`` the files
alone are enough). Same pre- and post-processing, outputs, batching and video; those runs do
not import torch. ``--jit``, ``--PM``, ``--precision``, ``--no-optimize`` and ``--compile`` are
torch-engine options.

The checkpoint is ``<Test.Checkpoint.checkpoint_dir>/latest.pth`` (or ``--ckpt``). Bad inputs
get one error line each and the rest goes on; an output that cannot be written for lack of
space or permission stops the run with one line (what was written is kept). Exit status: 0 when
something was processed (or was already there), 1 when nothing could be or writing failed, 2 for
a config, argument, output-folder or setup error, 130 after Ctrl-C, 143 after SIGTERM (a video
being written is closed and its temporary file removed).
"""

from __future__ import annotations

import argparse
import logging
import sys
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
from utils.config import add_config_arguments, config_from_args, config_name

logger = logging.getLogger(__name__)
OUTPUT_BYTES = 4 << 20  # room for at least one output (a 1-Mpx RGBA PNG is at most ~4 MiB)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line above."""
    parser = parser_for(__doc__)
    add_config_arguments(parser, required=False)  # or --exported
    parser.add_argument("--source", required=True, help="image, video, folder, or webcam index")
    parser.add_argument("--dest", help="output folder (default: results/<config>/<type>...)")
    parser.add_argument(
        "--type",
        default="map",
        help="map, rgba, green, white, [r,g,b], blur, "
        "overlay or a background image path (default: map)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--gpu", action="store_true", help="same as --device cuda")
    add_device_argument(where)
    parser.add_argument("--jit", action="store_true", help="trace the model (cached by input size)")
    parser.add_argument("--PM", action="store_true", help="Patch-Merging inference (Model.PM)")
    add_speed_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--ckpt", help="checkpoint (default: <checkpoint_dir>/latest.pth)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    parser.add_argument("--threshold", type=float, help="hard mask: map > THRESHOLD (0..1)")
    parser.add_argument("--reverse", action="store_true", help="swap foreground and background")
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    parser.add_argument("--verbose", action="store_true", help="settings; a bar per video frame")
    add_progress_argument(parser)
    args = parser.parse_args(argv)
    if args.config is None and args.exported is None:
        parser.error("give --config (or an exported model: --exported)")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.threshold is not None and not 0 <= args.threshold < 1:
        parser.error("--threshold must be in [0, 1)")
    return args


def _run(args: argparse.Namespace) -> int:
    from data.sources import open_source
    from data.transforms import CONFIG_CHECKS
    from utils.inference.compose import parse_output_type
    from utils.inference.loading import open_predictor, resolve_engine
    from utils.inference.outputs import default_dest, pending_jobs, plan_jobs
    from utils.inference.pipeline import Runner, Settings
    from utils.inference.webcam import open_webcam, run_webcam
    from utils.io.atomic import OutputError, check_output_folder, remove_stale_temporaries

    with exit_on_error(EXIT_SETUP):
        engine = resolve_engine(args.engine, args.exported)
        output_type = parse_output_type(args.type)
        cfg = None
        if args.config is not None:
            cfg = config_from_args(args, require=("Model", "Test"), checks=CONFIG_CHECKS)
        source = open_source(args.source)
    if engine == "torch":
        from utils.runtime import tune_malloc  # imports torch

        tune_malloc()
    webcam = source.media[0] if source.kind == "webcam" else None
    if webcam is not None:  # fail fast, before loading the model
        problem = open_webcam(webcam)
        if problem:
            raise ScriptError(EXIT_ERROR, problem)
    try:
        with exit_on_error(EXIT_SETUP, (ValueError,)):  # config, checkpoint, device
            predictor = open_predictor(
                cfg,
                engine=engine,
                exported=args.exported,
                ckpt=args.ckpt,
                device="cuda" if args.gpu else args.device,
                jit=args.jit,
                pm=args.PM,
                pm_batch_size=max(args.batch_size, 4),
                **speed_options(args),
            )
    except ScriptError:
        if webcam is not None:
            webcam.close()
        raise
    if args.verbose:
        logger.info(
            "engine %s, config %s, checkpoint %s, type %s, transforms %s",
            engine,
            args.config,
            predictor.ckpt_path,
            output_type.label,
            predictor.transforms,
        )
    if webcam is not None:
        return run_webcam(predictor, webcam, output_type, args.threshold, args.reverse)

    dest = (
        Path(args.dest)
        if args.dest
        else default_dest(config_name(args.config or args.exported), source, output_type)
    )
    with exit_on_error(EXIT_SETUP, (OutputError,)):
        check_output_folder(dest, "the outputs", need_bytes=OUTPUT_BYTES)
    remove_stale_temporaries(dest)
    todo, skipped, clashes = pending_jobs(plan_jobs(source, dest, output_type), args.overwrite)
    settings = Settings(
        output_type,
        batch_size=args.batch_size,
        threshold=args.threshold,
        reverse=args.reverse,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        frame_bars=args.verbose,
    )
    with exit_on_error(EXIT_ERROR, (OutputError,)):
        processed, failed = Runner(predictor, settings).run(todo) if todo else (0, 0)
    note = f", {skipped} already there (--overwrite redoes them)" if skipped else ""
    logger.info("%d processed%s, %d failed -> %s", processed, note, failed + clashes, dest)
    return 0 if processed + skipped > 0 else 1


def main(argv: list[str] | None = None) -> int:
    """Run the script; returns its exit status."""
    return run_cli(
        _run, parse_args(argv), interrupted="interrupted: run the same command again to resume"
    )


if __name__ == "__main__":
    sys.exit(main())
