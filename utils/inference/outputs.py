"""Where inference outputs go and how they are written: one job per input (a PNG, a video, or a
folder of PNG frames), unique output names inside the destination, and the video writer.

Every file is written atomically (utils.io.atomic): an image under a hidden temporary name
renamed when complete; a video likewise, under ``.<name>.<8 characters>.tmp.mp4`` until its
last frame, so the stale-temporary sweep removes what a killed run left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from data.sources import Media
from utils.inference.compose import OutputType
from utils.io.atomic import AtomicFile
from utils.io.files import fit_name, safe_name

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30.0  # when a video does not say its frame rate


def default_dest(config_name: str, source, output_type: OutputType) -> Path:
    """``results/<config name>/<type label>``, plus ``/<folder name>`` for a folder source."""
    dest = Path("results") / config_name / output_type.label
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
    writer: VideoOutput | None = field(default=None, repr=False)

    def frame_path(self, index: int) -> Path:
        """The PNG of frame ``index`` of a frame sequence."""
        return self.path / f"{index:06d}.png"

    def already_done(self, overwrite: bool) -> bool:
        """True when the output file is there (frame sequences are checked frame by frame)."""
        return not overwrite and not self.sequence and self.path.is_file()


def plan_jobs(source, dest: Path, output_type: OutputType) -> list[Job]:
    """Output paths for every input, inside ``dest``, unique (case-insensitively) and short
    enough for the file system (a long name is cut and ends with a hash: utils.io.files.fit_name;
    the new name is reported)."""
    jobs, taken = [], set()
    for media in source:
        video = media.kind == "video"
        sequence = video and output_type.has_alpha
        suffix = "" if sequence else (".mp4" if video else ".png")
        name = fit_name(safe_name(media.name), suffix)
        if name.casefold() in taken:
            base = safe_name(media.path.name.replace(".", "_"))
            name, n = fit_name(base, suffix), 2
            while name.casefold() in taken:
                name, n = fit_name(f"{base}_{n}", suffix), n + 1
            logger.warning(
                "%s: its output name is taken by another input; writing %s", media.path, name
            )
        elif name != safe_name(media.name) + suffix:
            logger.warning(
                "%s: its name is too long for the file system; writing %s", media.path, name
            )
        taken.add(name.casefold())
        path = dest / name
        if path.parent != dest or name in (".", ".."):  # safe_name rules it out; kept as a guard
            raise ValueError(f"{media.path}: output {path} would leave {dest}")
        jobs.append(Job(media, path, sequence))
    return jobs


def pending_jobs(jobs: list[Job], overwrite: bool) -> tuple[list[Job], int, int]:
    """(jobs to run, how many are done already, how many would overwrite their own input: each
    of those gets one error line)."""
    todo, done, clashes = [], 0, 0
    for job in jobs:
        if job.media.path is not None and job.path.resolve() == job.media.path.resolve():
            logger.error(
                "%s: the output would replace the input; choose another --dest", job.media.path
            )
            clashes += 1
        elif job.already_done(overwrite):
            done += 1
        else:
            todo.append(job)
    return todo, done, clashes


class VideoOutput:
    """An mp4v video written under a hidden temporary name, renamed over the target at the end."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self.path = path
        self.output = AtomicFile(path, keep_suffix=True)
        height, width = size
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        self.writer = cv2.VideoWriter(str(self.output.tmp), fourcc, fps, (width, height))
        if not self.writer.isOpened():
            self.writer.release()
            self.output.discard()
            raise OSError(f"{path}: OpenCV cannot write an mp4v video here")

    def write(self, picture: np.ndarray) -> None:
        """Append one RGB (or gray) frame."""
        if picture.ndim == 2:
            picture = cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR)
        else:
            picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        self.writer.write(picture)

    def finish(self) -> None:
        """Close the file and put it in place."""
        self.writer.release()
        self.output.commit()

    def abort(self) -> None:
        """Close and delete the temporary file; the target is left as it was."""
        self.writer.release()
        self.output.discard()
