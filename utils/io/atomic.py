"""The one atomic writer of the project, its temporary-file naming and the sweep of leftovers.

Every output (maps, cut-outs, videos, checkpoints, configs, tables, downloads) is written to a
hidden temporary file in the target's folder and renamed over the target when complete, so a
file that exists is whole. Temporary names are ``.<name>.<8 characters>.tmp``, or
``.<name>.<8 characters>.tmp<suffix>`` for writers that choose the format by the extension
(video). A write killed half-way leaves that hidden file behind; :func:`remove_stale_temporaries`
deletes such leftovers, and the readers never list hidden files.

Finished files get the permissions the umask gives (0644 under the usual umask 022), like any
file the user creates; ``tempfile.mkstemp`` alone would leave them 0600.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]{1,8})?")
# A write keeps touching its temporary file: one untouched this long belongs to no running write,
# so remove_stale_temporaries may delete it.
STALE_AFTER_S = 60.0
_PROC_STATUS = Path("/proc/self/status")


class AtomicFile:
    """A temporary file beside ``path`` (``.tmp``) that :meth:`commit` renames over ``path``.

    ``keep_suffix`` ends the temporary name with ``path``'s extension too, for writers that pick
    the format from it. Use :func:`atomic_output` unless the write outlives one ``with`` block.
    """

    def __init__(self, path: str | os.PathLike, *, keep_suffix: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        suffix = ".tmp" + (self.path.suffix if keep_suffix else "")
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=suffix
        )
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        """Flush the temporary file to disk, give it the umask's permissions, rename it."""
        with open(self.tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(self.tmp, 0o666 & ~current_umask())
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Delete the temporary file (the target is left as it was)."""
        self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | os.PathLike, *, keep_suffix: bool = False) -> Iterator[Path]:
    """``with atomic_output(path) as tmp:`` write ``tmp``; on success it replaces ``path``, on
    any exception it is deleted and ``path`` keeps its previous content."""
    output = AtomicFile(path, keep_suffix=keep_suffix)
    try:
        yield output.tmp
        output.commit()
    except BaseException:
        output.discard()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def remove_stale_temporaries(
    folder: str | os.PathLike, older_than_s: float = STALE_AFTER_S
) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in ``folder`` (not its
    sub-folders) and return their paths.

    Only regular files named like ours and untouched for ``older_than_s`` seconds go: a younger
    one may belong to a run writing there right now.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    removed = []
    for path in folder.iterdir():
        if not TEMPORARY_NAME.fullmatch(path.name):
            continue
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < older_than_s:
                continue
            path.unlink()
        except OSError:  # removed meanwhile, or not ours to remove: leave it
            continue
        removed.append(path)
    return removed


def current_umask() -> int:
    """This process's umask, read without changing it where Linux reports it (os.umask can only
    be read by setting it, which races with other threads creating files)."""
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
