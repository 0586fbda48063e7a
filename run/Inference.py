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
keeps the background instead. Cut-outs and composites (every type but map and overlay) use the
estimated foreground colour, so that the old background does not bleed into soft edges:
``--foreground fast`` (blur fusion, the default), ``ml`` (pymatting's multi-level estimation,
slower; ``pip install -r requirements-matting.txt``) or ``none`` (the raw image); the default
comes from the config key ``Test.foreground``. See ``utils/inference/foreground.py``.

Outputs: an image becomes ``<dest>/<stem>.png``; a video (decoded and encoded with PyAV:
``pip install -r requirements-video.txt``) ``<dest>/<stem>.<format>`` with the source's frames,
timestamps (variable frame rate too), duration and audio, upright when it carries rotation
metadata. ``--video-format``: ``mp4`` (H.264, the default; plays in browsers), ``webm`` (VP9;
the default for ``rgba``: a video with alpha), ``mov`` (ProRes; 4444 with alpha for ``rgba``) or
``png`` (a folder of frames ``<dest>/<stem>/000000.png``...); ``--crf`` sets the quality of
mp4/webm (lower is better and larger; defaults 18 and 30). See
``utils/inference/video_writer.py``. The default ``--dest`` is
``results/<config stem>/<type>`` for an image or a video and
``results/<config stem>/<type>/<folder name>`` for a folder. Files are written atomically (a
video under a hidden temporary name, renamed at the end); a run that was interrupted resumes:
outputs already there are skipped unless ``--overwrite``, and the temporary files a kill left in
``<dest>`` are deleted.

Engines (``--engine``): torch (default), or onnxruntime / openvino running an exported model
(run/Export.py; ``--exported`` names its folder or file, default
``<checkpoint dir>/export/<checkpoint stem>/``; with ``--exported`` and no ``--config`` the files
alone are enough). Same pre- and post-processing, outputs, batching and video; those runs do
not import torch. ``--jit``, ``--PM``, ``--precision bf16|fp16``, ``--no-optimize`` and
``--compile`` are torch-engine options; ``--precision int8`` runs an export's int8 files
(run/Export.py ``--int8``) with ``--engine openvino``.

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
VIDEO_FORMAT_CHOICES = ("mp4", "webm", "mov", "png")  # utils.inference.video_writer, and frames
CRF_RANGES = {"mp4": 51, "webm": 63}  # libx264 and libvpx-vp9; ProRes has no CRF
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
    parser.add_argument(
        "--jit",
        action="store_true",
        help="compile the network ahead of time (AOTInductor), cached per input size",
    )
    parser.add_argument("--PM", action="store_true", help="Patch-Merging inference (Model.PM)")
    add_speed_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--ckpt", help="checkpoint (default: <checkpoint_dir>/latest.pth)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    parser.add_argument(
        "--video-format",
        choices=VIDEO_FORMAT_CHOICES,
        help="mp4 (H.264), webm (VP9, with alpha), mov (ProRes, 4444 with alpha) or png "
        "(frames); default mp4, webm for --type rgba",
    )
    parser.add_argument(
        "--crf", type=int, help="video quality of mp4 (0-51, default 18) or webm (0-63, default 30)"
    )
    parser.add_argument(
        "--foreground",
        choices=("fast", "ml", "none"),
        help="foreground colour estimation of cut-outs/composites "
        "(default: the config's Test.foreground, fast)",
    )
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
    rgba = args.type.strip().lower() == "rgba"
    if args.video_format == "mp4" and rgba:
        parser.error("mp4 (H.264) carries no alpha: use --video-format webm, mov or png for rgba")
    video_format = args.video_format or ("webm" if rgba else "mp4")
    if args.crf is not None:
        highest = CRF_RANGES.get(video_format)
        if highest is None:
            parser.error(f"--crf applies to mp4 and webm video, not {video_format}")
        if not 0 <= args.crf <= highest:
            parser.error(f"--crf for {video_format} must be in 0..{highest}")
    return args


def _run(args: argparse.Namespace) -> int:
    from data.sources import open_source
    from data.transforms import CONFIG_CHECKS
    from data.video import import_av
    from utils.inference.compose import parse_output_type
    from utils.inference.foreground import DEFAULT_FOREGROUND
    from utils.inference.loading import open_predictor, resolve_engine
    from utils.inference.outputs import default_dest, pending_jobs, plan_jobs
    from utils.inference.pipeline import Runner, Settings
    from utils.inference.webcam import open_webcam, run_webcam
    from utils.io.atomic import OutputError, check_output_folder, remove_stale_temporaries

    with exit_on_error(EXIT_SETUP):
        engine = resolve_engine(args.engine, args.exported)
        cfg = None
        if args.config is not None:
            cfg = config_from_args(args, require=("Model", "Test"), checks=CONFIG_CHECKS)
        foreground = args.foreground or (cfg["Test"]["foreground"] if cfg else DEFAULT_FOREGROUND)
        output_type = parse_output_type(args.type, foreground)
        source = open_source(args.source)
    if source.kind == "video":  # fail fast, before loading the model
        try:
            import_av()
        except ModuleNotFoundError as error:
            raise ScriptError(EXIT_SETUP, f"{source.description}: {error}") from None
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
            "engine %s, config %s, checkpoint %s, type %s, foreground %s, transforms %s",
            engine,
            args.config,
            predictor.ckpt_path,
            output_type.label,
            output_type.foreground,
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
    todo, skipped, clashes = pending_jobs(
        plan_jobs(source, dest, output_type, args.video_format), args.overwrite
    )
    settings = Settings(
        output_type,
        batch_size=args.batch_size,
        threshold=args.threshold,
        reverse=args.reverse,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        frame_bars=args.verbose,
        video_format=args.video_format,
        crf=args.crf,
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
