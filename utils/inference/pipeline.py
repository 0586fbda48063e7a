"""The decode → predict → write pipeline shared by run/Inference.py and run/Test.py.

A :class:`Loader` thread decodes and transforms every frame of every :class:`Job` into a bounded
queue while the main thread (:class:`Runner`) batches frames across files, runs the network,
composes the output type and writes each result atomically (utils.inference.outputs). An input
that fails (unreadable file, out of memory) is reported and the others go on; an output that
cannot be written for lack of space or permission (utils.io.atomic.OutputError) stops the run,
since every other output would fail the same way (what was written is kept).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tqdm import tqdm

from data.sources import SourceError
from utils.inference.compose import OutputType, compose
from utils.inference.outputs import Job, default_video_format
from utils.inference.video_writer import VIDEO_FORMATS, VideoWriter
from utils.io.atomic import OutputError
from utils.io.errors import first_line
from utils.io.images import write_png_atomic

if TYPE_CHECKING:  # torch is imported only by the torch engine
    from utils.inference.predictor import Predictor

logger = logging.getLogger(__name__)
LOADER_STOP_S = 60.0  # at most one frame's decode and transform


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


@dataclass
class Settings:
    """How the :class:`Runner` predicts and writes (Inference's flags; Test uses the defaults)."""

    output_type: OutputType
    batch_size: int = 1
    threshold: float | None = None
    reverse: bool = False
    overwrite: bool = False
    progress: bool = True
    frame_bars: bool = False  # a second bar per video, frame by frame
    video_format: str | None = None  # a key of VIDEO_FORMATS or 'png' (None: by output type)
    crf: int | None = None  # video quality (None: the format's default)


def _log_error(job: Job, message: str) -> None:
    logger.error(message)


class Runner:
    """Consume the loader's events: batch frames (across files), predict, compose and write.

    ``on_failure(job, message)`` reports an input that failed (default: an ``error:`` line)."""

    def __init__(
        self,
        predictor: Predictor,
        settings: Settings,
        on_failure: Callable[[Job, str], None] = _log_error,
    ):
        self.predictor, self.settings, self.on_failure = predictor, settings, on_failure
        self.output_type = settings.output_type
        self.pending: list[tuple[Job, object, object]] = []
        self.active: list[Job] = []
        self.processed = self.failed = 0
        self.bar: tqdm | None = None
        self.frame_bar: tqdm | None = None

    def run(
        self, jobs: list[Job], desc: str | None = None, done_before: int = 0
    ) -> tuple[int, int]:
        """Process the jobs; returns (processed, failed) counts of inputs. The progress bar
        starts at ``done_before`` (outputs already there) of ``done_before + len(jobs)``."""
        depth = 2 * self.settings.batch_size + 2
        loader = Loader(jobs, self.predictor, self.settings.overwrite, depth)
        self.bar = tqdm(
            total=done_before + len(jobs),
            initial=done_before,
            desc=desc,
            unit="file",
            disable=not self.settings.progress,
            dynamic_ncols=True,
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
                    except OutputError:
                        raise  # no space or no permission: every other output would fail too
                    except OSError as error:
                        self._fail(job, f"{job.path}: cannot write ({error})")
                elif kind == "frame":
                    self.pending.append((job, event[2], event[3]))
                    if len(self.pending) >= self.settings.batch_size:
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
                if isinstance(job.writer, VideoWriter):
                    job.writer.abort()
            self._close_frame_bar()
            self.bar.close()
            # The loader stops at its next frame; waiting for it keeps its native decoders from
            # running while the interpreter shuts down (which can abort the process).
            loader.join(timeout=LOADER_STOP_S)
        return self.processed, self.failed

    def _start(self, job: Job) -> None:
        media = job.media
        if media.kind != "video":
            return
        if self.settings.frame_bars and self.settings.progress:
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
            video_format = self.settings.video_format or default_video_format(self.output_type)
            job.writer = VideoWriter(
                job.path,
                media,
                VIDEO_FORMATS[video_format],
                alpha=self.output_type.has_alpha,
                crf=self.settings.crf,
            )

    def _flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        live = [(job, frame, prepared) for job, frame, prepared in batch if not job.failed]
        try:
            maps = self.predictor.predict_prepared([prepared for _, _, prepared in live])
        except RuntimeError as error:  # e.g. out of memory: those inputs fail, the rest go on
            if len(live) > 1:  # one input's failure must not take its batch mates along
                for item in live:
                    self.pending = [item]
                    self._flush()
                return
            message = first_line(error)
            for job, _, _ in live:
                self._fail(job, f"{job.media.path}: inference failed ({message})")
            return
        for (job, frame, _), saliency in zip(live, maps, strict=True):
            if job.failed:
                continue
            picture = compose(
                frame.image,
                saliency,
                self.output_type,
                self.settings.threshold,
                self.settings.reverse,
            )
            try:
                if isinstance(job.writer, VideoWriter):
                    job.writer.write(picture, frame.pts)
                else:
                    write_png_atomic(
                        job.frame_path(frame.index) if job.sequence else job.path, picture
                    )
            except OutputError:
                raise  # no space or no permission: every other output would fail too
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
            if not job.failed and isinstance(job.writer, VideoWriter):
                try:
                    job.writer.finish()
                    job.writer = None
                except OutputError:
                    raise
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
        if isinstance(job.writer, VideoWriter):
            job.writer.abort()
            job.writer = None
        self._close_frame_bar()
        self.on_failure(job, message)
