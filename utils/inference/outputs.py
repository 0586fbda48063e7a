"""Where inference outputs go: one job per input (a PNG, a video, or a folder of PNG frames)
and unique output names inside the destination.

Every file is written atomically (utils.io.atomic): an image under a hidden temporary name
renamed when complete; a video likewise (utils.inference.video_writer), under
``.<name>.sodtmp....tmp.<mp4|webm|mov>`` until its last frame, so the stale-temporary sweep
removes what a killed run left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from data.sources import Media
from utils.inference.compose import OutputType
from utils.inference.video_writer import VIDEO_FORMATS, VideoWriter
from utils.io.files import fit_name, safe_name

logger = logging.getLogger(__name__)
FRAMES = "png"  # the --video-format that writes a folder of PNG frames


def default_video_format(output_type: OutputType) -> str:
    """``webm`` (VP9 with alpha) for ``rgba``, ``mp4`` (H.264) for every other type."""
    return "webm" if output_type.has_alpha else "mp4"


def default_dest(config_name: str, source, output_type: OutputType) -> Path:
    """``results/<config name>/<type label>``, plus ``/<folder name>`` for a folder source."""
    dest = Path("results") / config_name / output_type.label
    if source.kind == "folder":
        dest /= safe_name(Path(source.description).resolve().name or "root")
    return dest


@dataclass(eq=False)
class Job:
    """One input and its output: a file (.png / .mp4 / .webm / .mov) or, for a frame sequence,
    a folder."""

    media: Media
    path: Path
    sequence: bool = False
    written: int = 0
    skipped: int = 0
    failed: bool = False
    ended: bool = False
    writer: VideoWriter | None = field(default=None, repr=False)

    def frame_path(self, index: int) -> Path:
        """The PNG of frame ``index`` of a frame sequence."""
        return self.path / f"{index:06d}.png"

    def already_done(self, overwrite: bool) -> bool:
        """True when the output file is there (frame sequences are checked frame by frame)."""
        return not overwrite and not self.sequence and self.path.is_file()


def plan_jobs(
    source, dest: Path, output_type: OutputType, video_format: str | None = None
) -> list[Job]:
    """Output paths for every input, inside ``dest``, unique (case-insensitively) and short
    enough for the file system (a long name is cut and ends with a hash: utils.io.files.fit_name;
    the new name is reported). A video becomes a ``video_format`` file (a key of
    ``VIDEO_FORMATS``; default :func:`default_video_format`) or, for ``png``, a folder of
    frames."""
    video_format = video_format or default_video_format(output_type)
    jobs, taken = [], set()
    for media in source:
        video = media.kind == "video"
        sequence = video and video_format == FRAMES
        if sequence:
            suffix = ""
        else:
            suffix = VIDEO_FORMATS[video_format].suffix if video else ".png"
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
