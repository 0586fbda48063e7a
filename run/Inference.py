"""Saliency maps, cut-outs and new backgrounds for your own images, videos and webcam.

    python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source photo.jpg --type rgba
    python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source photos/ --dest out/
    python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source photos/ --batch-size 4
    python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source clip.mp4 --type green
    python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source clip.mp4 --type sea.jpg
    python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source 0 --type overlay
    python run/Inference.py --config configs/InSPyReNet_SwinB.yaml --source big.jpg --PM --gpu

Sources: one image (.jpg .jpeg .png .bmp .webp .tif .tiff, any case), one video (.mp4 .mov .avi
.mkv .webm), a folder of images and/or videos (not recursive, natural order), or a webcam index
(``0``: a live window, ``q`` quits; nothing is written).

Types (``--type``, default map): map (gray), rgba (alpha = map), green, white, a colour such as
``[255,0,0]``, blur, overlay, or the path of a background image; see ``utils/compose.py``.
``--threshold X`` makes the mask hard (map > X), ``--reverse`` keeps the background instead.

Outputs: an image becomes ``<dest>/<stem>.png``; a video ``<dest>/<stem>.mp4`` (mp4v, same fps,
size and frame count), or with ``--type rgba`` a folder of frames ``<dest>/<stem>/000000.png``...
(OpenCV writes no video with alpha). The default ``--dest`` is
``results/<config stem>/<type>`` for an image or a video and
``results/<config stem>/<type>/<folder name>`` for a folder. Files are written atomically (a
video under a hidden temporary name, renamed at the end); a run that was interrupted resumes:
outputs already there are skipped unless ``--overwrite``, and the temporary files a kill left in
``<dest>`` are deleted.

The checkpoint is ``<Test.Checkpoint.checkpoint_dir>/latest.pth`` (or ``--ckpt``). Bad inputs
get one error line each and the rest goes on. Exit status: 0 when something was processed (or
was already there), 1 when nothing could be, 2 for a config, argument or setup error, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run/ is a folder of scripts: make the repo packages importable
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data.sources import Media, SourceError, open_source  # noqa: E402
from utils.compose import OutputType, compose, parse_output_type  # noqa: E402
from utils.config import ConfigError, add_config_arguments, config_from_args, config_name  # noqa: E402
from utils.image_io import remove_stale_temporaries, write_png_atomic  # noqa: E402
from utils.malloc_tuning import tune_malloc  # noqa: E402
from utils.predictor import Predictor, add_speed_arguments, speed_options  # noqa: E402

DEFAULT_FPS = 30.0  # when a video does not say its frame rate
WINDOW = "InSPyReNet (q quits)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser)
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
    where.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    parser.add_argument("--jit", action="store_true", help="trace the model (cached by input size)")
    parser.add_argument("--PM", action="store_true", help="Patch-Merging inference (Model.PM)")
    add_speed_arguments(parser)
    parser.add_argument("--ckpt", help="checkpoint (default: <checkpoint_dir>/latest.pth)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    parser.add_argument("--threshold", type=float, help="hard mask: map > THRESHOLD (0..1)")
    parser.add_argument("--reverse", action="store_true", help="swap foreground and background")
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    parser.add_argument("--verbose", action="store_true", help="settings; a bar per video frame")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.threshold is not None and not 0 <= args.threshold < 1:
        parser.error("--threshold must be in [0, 1)")
    return args


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


class _StderrHandler(logging.Handler):
    """Log records as ``warning: ...`` lines on the current stderr, above any progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        _say(f"{record.levelname.lower()}: {record.getMessage()}")


def _log_to_stderr() -> None:
    root = logging.getLogger()
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        root.addHandler(_StderrHandler(logging.WARNING))


# ------------------------------------------------------------------------------------------------
# where outputs go


def safe_name(name: str) -> str:
    """``name`` as one harmless path component: no separators, never '', '.', '..' or hidden."""
    clean = "".join("_" if c in "/\\\0" or ord(c) < 32 else c for c in name)
    return "_" + clean if clean.startswith(".") or not clean else clean


def default_dest(config: str, source, output_type: OutputType) -> Path:
    """``results/<config stem>/<type label>``, plus ``/<folder name>`` for a folder source."""
    dest = Path("results") / config_name(config) / output_type.label
    if source.kind == "folder":
        dest /= safe_name(Path(source.description).resolve().name or "root")
    return dest


@dataclass(eq=False)
class Job:
    """One input and its output: a file (.png / .mp4) or, for a frame sequence, a folder."""

    media: Media
    path: Path
    sequence: bool = False
    written: int = 0
    skipped: int = 0
    failed: bool = False
    ended: bool = False
    writer: object = field(default=None, repr=False)

    def frame_path(self, index: int) -> Path:
        return self.path / f"{index:06d}.png"


def plan_jobs(source, dest: Path, output_type: OutputType) -> list[Job]:
    """Output paths for every input, inside ``dest``, unique (case-insensitively)."""
    jobs, taken = [], set()
    for media in source:
        video = media.kind == "video"
        sequence = video and output_type.has_alpha
        suffix = "" if sequence else (".mp4" if video else ".png")
        stem = safe_name(media.name)
        name = stem + suffix
        if name.casefold() in taken:
            base = safe_name(media.path.name.replace(".", "_"))
            name, n = base + suffix, 2
            while name.casefold() in taken:
                name, n = f"{base}_{n}{suffix}", n + 1
            _say(
                f"warning: {media.path}: its output name is taken by another input; writing {name}"
            )
        taken.add(name.casefold())
        path = dest / name
        if path.parent != dest or name in (".", ".."):  # safe_name rules it out; kept as a guard
            raise ValueError(f"{media.path}: output {path} would leave {dest}")
        jobs.append(Job(media, path, sequence))
    return jobs


# ------------------------------------------------------------------------------------------------
# writers


class VideoOutput:
    """An mp4v video written under a hidden temporary name, renamed over the target at the end."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        height, width = size
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, (width, height))
        if not self.writer.isOpened():
            self.writer.release()
            raise OSError(f"{path}: OpenCV cannot write an mp4v video here")

    def write(self, picture: np.ndarray) -> None:
        if picture.ndim == 2:
            picture = cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR)
        else:
            picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        self.writer.write(picture)

    def finish(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.release()
        self.tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# the folder / file pipeline: a loader thread decodes and transforms, the main thread predicts


class Loader(threading.Thread):
    """Decode and transform every frame of every job into a bounded queue of events:
    ``('start', job)``, ``('frame', job, frame, prepared)``, ``('skip', job, index)``,
    ``('end', job)``, ``('error', job, message)`` and finally None."""

    def __init__(self, jobs: list[Job], predictor: Predictor, overwrite: bool, depth: int):
        super().__init__(daemon=True)
        self.jobs, self.predictor, self.overwrite = jobs, predictor, overwrite
        self.events: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()

    def _put(self, event) -> bool:
        while not self.stop.is_set():
            try:
                self.events.put(event, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            for job in self.jobs:
                if self.stop.is_set():
                    return
                self._load(job)
        finally:
            self._put(None)

    def _load(self, job: Job) -> None:
        try:
            job.media.open()
            if not self._put(("start", job)):
                return
            for frame in job.media:
                if job.sequence and not self.overwrite and job.frame_path(frame.index).exists():
                    event = ("skip", job, frame.index)
                else:
                    event = ("frame", job, frame, self.predictor.prepare(frame.image))
                if not self._put(event):
                    return
            self._put(("end", job))
        except SourceError as error:  # names the file already
            self._put(("error", job, str(error)))
        except Exception as error:  # any other failure of one input: report it, go on
            problem = " ".join(str(error).split()) or type(error).__name__
            self._put(("error", job, f"{job.media.path or job.media.name}: {problem}"))
        finally:
            job.media.close()


class Runner:
    """Consume the loader's events: batch frames (across files), predict, compose and write."""

    def __init__(self, predictor: Predictor, args: argparse.Namespace, output_type: OutputType):
        self.predictor, self.args, self.output_type = predictor, args, output_type
        self.pending: list[tuple[Job, object, object]] = []
        self.active: list[Job] = []
        self.processed = self.failed = 0
        self.bar: tqdm | None = None
        self.frame_bar: tqdm | None = None

    def run(self, jobs: list[Job]) -> tuple[int, int]:
        """Process the jobs; returns (processed, failed) counts of inputs."""
        loader = Loader(jobs, self.predictor, self.args.overwrite, 2 * self.args.batch_size + 2)
        self.bar = tqdm(
            total=len(jobs), unit="file", disable=self.args.no_progress, dynamic_ncols=True
        )
        loader.start()
        try:
            while (event := loader.events.get()) is not None:
                kind, job = event[0], event[1]
                if job not in self.active:
                    self.active.append(job)
                if kind == "start":
                    try:
                        self._start(job)
                    except OSError as error:
                        self._fail(job, f"{job.path}: cannot write ({error})")
                elif kind == "frame":
                    self.pending.append((job, event[2], event[3]))
                    if len(self.pending) >= self.args.batch_size:
                        self._flush()
                elif kind == "skip":
                    job.skipped += 1
                    self._tick_frame()
                elif kind == "end":
                    job.ended = True
                    if job.media.kind == "video":  # its last frames: no need to wait for more
                        self._flush()
                else:  # error
                    if any(pending[0] is job for pending in self.pending):
                        self._flush()
                    self._fail(job, event[2])
                    job.ended = True
                self._complete_ready()
            self._flush()
            self._complete_ready()
        finally:
            loader.stop.set()
            for job in jobs:
                if isinstance(job.writer, VideoOutput):
                    job.writer.abort()
            self._close_frame_bar()
            self.bar.close()
        return self.processed, self.failed

    def _start(self, job: Job) -> None:
        media = job.media
        if media.kind != "video":
            return
        if self.args.verbose and not self.args.no_progress:
            self._close_frame_bar()
            self.frame_bar = tqdm(
                total=media.frame_count,
                unit="frame",
                desc=media.name,
                leave=False,
                position=1,
                dynamic_ncols=True,
            )
        if job.sequence:
            job.path.mkdir(parents=True, exist_ok=True)
        else:
            job.writer = VideoOutput(job.path, media.fps or DEFAULT_FPS, media.size)

    def _flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        live = [(job, frame, prepared) for job, frame, prepared in batch if not job.failed]
        try:
            maps = self.predictor.predict_prepared([prepared for _, _, prepared in live])
        except RuntimeError as error:  # e.g. out of memory: those inputs fail, the rest go on
            message = str(error).strip().splitlines()[0] if str(error).strip() else "error"
            for job, _, _ in live:
                self._fail(job, f"{job.media.path}: inference failed ({message})")
            return
        for (job, frame, _), saliency in zip(live, maps, strict=True):
            if job.failed:
                continue
            picture = compose(
                frame.image, saliency, self.output_type, self.args.threshold, self.args.reverse
            )
            try:
                if isinstance(job.writer, VideoOutput):
                    job.writer.write(picture)
                else:
                    write_png_atomic(
                        job.frame_path(frame.index) if job.sequence else job.path, picture
                    )
            except OSError as error:
                self._fail(job, f"{job.path}: cannot write ({error})")
                continue
            job.written += 1
            self._tick_frame()

    def _complete_ready(self) -> None:
        """Finish the jobs whose last frame has been read and written."""
        waiting = {id(job) for job, _, _ in self.pending}
        for job in [j for j in self.active if j.ended and id(j) not in waiting]:
            self.active.remove(job)
            if not job.failed and isinstance(job.writer, VideoOutput):
                try:
                    job.writer.finish()
                    job.writer = None
                except OSError as error:
                    self._fail(job, f"{job.path}: cannot write ({error})")
            if job.media.kind == "video":
                self._close_frame_bar()
            if job.failed or job.written + job.skipped == 0:
                self.failed += 1
            else:
                self.processed += 1
            self.bar.update()

    def _tick_frame(self) -> None:
        if self.frame_bar is not None:
            self.frame_bar.update()

    def _close_frame_bar(self) -> None:
        if self.frame_bar is not None:
            self.frame_bar.close()
            self.frame_bar = None

    def _fail(self, job: Job, message: str) -> None:
        if job.failed:
            return
        job.failed = True
        if isinstance(job.writer, VideoOutput):
            job.writer.abort()
            job.writer = None
        self._close_frame_bar()
        _say(f"error: {message}")


def already_done(job: Job, overwrite: bool) -> bool:
    """True when the job's output file is there (frame sequences are checked frame by frame)."""
    return not overwrite and not job.sequence and job.path.is_file()


# ------------------------------------------------------------------------------------------------
# webcam


def open_webcam(media: Media) -> str | None:
    """Check the display and open the camera; the one-line problem, or None when both work."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return f"{media.name}: no display to show the live window (DISPLAY is not set)"
    try:
        media.open()
    except SourceError as error:
        return str(error)
    return None


def run_webcam(
    predictor: Predictor, media: Media, args: argparse.Namespace, output_type: OutputType
) -> int:
    """Show the live result of an opened camera in a window until ``q`` or the window closes."""
    display_type = parse_output_type("white") if output_type.has_alpha else output_type
    try:
        for frame in media:
            saliency = predictor.predict(frame.image)
            picture = compose(frame.image, saliency, display_type, args.threshold, args.reverse)
            if picture.ndim == 3:
                picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
            cv2.imshow(WINDOW, picture)
            if cv2.waitKey(1) & 0xFF == ord("q"):
                break
            if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                break
    except cv2.error as error:
        problem = str(error).strip().splitlines()[-1] if str(error).strip() else "OpenCV error"
        _say(f"error: {media.name}: cannot show the live window ({problem})")
        return 1
    finally:
        media.close()
        cv2.destroyAllWindows()
    return 0


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tune_malloc()
    _log_to_stderr()
    try:
        output_type = parse_output_type(args.type)
        cfg = config_from_args(args, require=("Model", "Test"))
        source = open_source(args.source)
    except (ConfigError, ValueError) as error:  # SourceError is a ValueError too
        print(f"error: {error}", file=sys.stderr)
        return 2
    if source.kind == "webcam":  # fail fast, before loading the model
        problem = open_webcam(source.media[0])
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
    try:
        predictor = Predictor.from_config(
            cfg,
            ckpt=args.ckpt,
            device="cuda" if args.gpu else args.device,
            jit=args.jit,
            pm=args.PM,
            pm_batch_size=max(args.batch_size, 4),
            **speed_options(args),
        )
    except ValueError as error:  # config, checkpoint, device
        if source.kind == "webcam":
            source.media[0].close()
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.verbose:
        ckpt = predictor.ckpt_path
        _say(
            f"config {args.config}, checkpoint {ckpt}, type {output_type.label}, "
            f"transforms {predictor.transforms}"
        )
    try:
        if source.kind == "webcam":
            return run_webcam(predictor, source.media[0], args, output_type)
        dest = Path(args.dest) if args.dest else default_dest(args.config, source, output_type)
        remove_stale_temporaries(dest)
        jobs = plan_jobs(source, dest, output_type)
        todo, skipped, clashes = [], 0, 0
        for job in jobs:
            if job.media.path is not None and job.path.resolve() == job.media.path.resolve():
                _say(
                    f"error: {job.media.path}: the output would replace the input; "
                    "choose another --dest"
                )
                clashes += 1
            elif already_done(job, args.overwrite):
                skipped += 1
            else:
                todo.append(job)
        processed, failed = Runner(predictor, args, output_type).run(todo) if todo else (0, 0)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    failed += clashes
    note = f", {skipped} already there (--overwrite redoes them)" if skipped else ""
    print(f"{processed} processed{note}, {failed} failed -> {dest}")
    return 0 if processed + skipped > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
