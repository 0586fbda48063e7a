"""The one atomic writer of the project, its temporary-file naming, the sweep of leftovers, and
the checks of output folders.

Every output (maps, cut-outs, videos, checkpoints, configs, tables, downloads) is written to a
hidden temporary file in the target's folder and renamed over the target when complete, so a
file that exists is whole and the previous version stays until the new one is complete.

Temporary names carry a marker only this project writes, with the writer's host and process:
``.<name>.sodtmp.<host>.<pid>.<8 random characters>.tmp``, plus the target's extension for
writers that choose the format by it (video). A name too long for the file system keeps a hash
of ``<name>`` instead. :func:`remove_stale_temporaries` deletes only such files, and only when
their writer is gone (its process no longer runs on this host; for another host's files, after
a day untouched). A user's own files, whatever their names and ages, are never touched.

Finished files get the permissions the umask gives (0644 under the usual umask 022), like any
file the user creates. A write that fails for lack of space or permission raises
:class:`OutputError`: one line naming the path and what to do.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.io.files import NAME_MAX

MARKER = "sodtmp"
TEMPORARY_NAME = re.compile(
    rf"\.(?P<name>.+)\.{MARKER}\.(?P<host>[0-9a-f]{{8}})\.(?P<pid>\d+)\.[a-z0-9_]{{8}}\.tmp"
    r"(\.[A-Za-z0-9]{1,8})?"
)
# Another host's temporary file may belong to a run there (a shared file system): it is swept
# only when untouched this long.
FOREIGN_STALE_AFTER_S = 24 * 3600.0
_PROC_STATUS = Path("/proc/self/status")
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_ACTIVE: set[Path] = set()  # this process's temporary files being written
_ADVICE = {
    errno.ENOSPC: "the disk is full: free some disk space or choose another folder",
    errno.EDQUOT: "the disk quota is exceeded: free some of your quota or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EACCES: "no permission to write there: make the folder writable or choose another one",
    errno.EPERM: "no permission to write there: make the folder writable or choose another one",
    errno.ENOTDIR: "a file stands where a folder should be: choose another folder",
    errno.EISDIR: "a folder stands where the file should be: move it away",
    errno.ENAMETOOLONG: "the name is too long for the file system",
}


class OutputError(OSError):
    """An output that cannot be written; ``str()`` is one line naming the path and what to do."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: cannot write: {problem}")
        self.path = Path(path)
        self.problem = problem


def write_advice(error: OSError) -> str:
    """What to do about ``error`` (raised while writing), in a few words."""
    if isinstance(error, OutputError):
        return error.problem
    return _ADVICE.get(error.errno or 0, error.strerror or str(error) or type(error).__name__)


def output_error(path: str | os.PathLike, error: OSError) -> OutputError:
    """``error`` (raised while writing ``path``) as one line with what to do."""
    if isinstance(error, OutputError):
        return error
    return OutputError(path, write_advice(error))


def temporary_prefix(path: Path) -> str:
    """The start of a temporary name for ``path`` (mkstemp adds 8 random characters)."""
    mark = f"{MARKER}.{_HOST}.{os.getpid()}."
    prefix = f".{path.name}.{mark}"
    if len(os.fsencode(prefix)) + 8 + len(".tmp") + len(os.fsencode(path.suffix)) > NAME_MAX:
        prefix = f".{hashlib.sha1(os.fsencode(path.name)).hexdigest()[:16]}.{mark}"
    return prefix


class AtomicFile:
    """A temporary file beside ``path`` that :meth:`commit` renames over ``path``.

    ``keep_suffix`` ends the temporary name with ``path``'s extension too, for writers that pick
    the format from it. Use :func:`atomic_output` unless the write outlives one ``with`` block.
    """

    def __init__(self, path: str | os.PathLike, *, keep_suffix: bool = False):
        self.path = Path(path)
        suffix = ".tmp" + (self.path.suffix if keep_suffix else "")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                dir=self.path.parent, prefix=temporary_prefix(self.path), suffix=suffix
            )
        except OSError as error:
            raise output_error(self.path, error) from None
        os.close(fd)
        self.tmp = Path(tmp)
        _ACTIVE.add(self.tmp)

    def commit(self) -> Path:
        """Flush the temporary file to disk, give it the umask's permissions, rename it."""
        try:
            with open(self.tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(self.tmp, 0o666 & ~current_umask())
            os.replace(self.tmp, self.path)
        except OSError as error:
            self.discard()
            raise output_error(self.path, error) from None
        _ACTIVE.discard(self.tmp)
        return self.path

    def discard(self) -> None:
        """Delete the temporary file (the target is left as it was)."""
        self.tmp.unlink(missing_ok=True)
        _ACTIVE.discard(self.tmp)


@contextmanager
def atomic_output(path: str | os.PathLike, *, keep_suffix: bool = False) -> Iterator[Path]:
    """``with atomic_output(path) as tmp:`` write ``tmp``; on success it replaces ``path``, on
    any exception it is deleted and ``path`` keeps its previous content. An OSError while
    writing becomes an :class:`OutputError` naming ``path``."""
    output = AtomicFile(path, keep_suffix=keep_suffix)
    try:
        yield output.tmp
    except OSError as error:
        output.discard()
        raise output_error(output.path, error) from None
    except BaseException:
        output.discard()
        raise
    output.commit()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def check_output_folder(folder: str | os.PathLike, what: str, need_bytes: int = 0) -> Path:
    """Make sure ``folder`` can take outputs before any work starts: it exists or can be made,
    is a folder, a file can be created in it (an unnamed temporary file: this also catches a
    read-only file system) and it has ``need_bytes`` free. OutputError (one line naming it and
    ``what`` it is for) otherwise; returns the folder."""
    folder = Path(folder)
    for parent in [folder, *folder.parents]:
        if parent.exists() or parent.is_symlink():
            break
    if parent.exists() and not parent.is_dir():
        raise OutputError(folder, f"{parent} is a file, not a folder ({what})")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(folder, error) from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise output_error(folder, error) from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise OutputError(
            folder,
            f"{free / 2**20:.0f} MiB free, {what} needs about {need_bytes / 2**20:.0f} MiB: "
            "free some space or choose another folder",
        )
    return folder


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writes of this project left in ``folder`` (not its
    sub-folders) and return their paths (see the module docstring for which ones go)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if not _abandoned(path):
            continue
        try:
            path.unlink()
        except OSError:  # removed meanwhile, or not ours to remove: leave it
            continue
        removed.append(path)
    return removed


def _abandoned(path: Path) -> bool:
    """True for a regular file named by our writer whose writer is gone."""
    match = TEMPORARY_NAME.fullmatch(path.name)
    if match is None or path in _ACTIVE:
        return False
    try:
        info = path.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    if match["host"] != _HOST:
        return time.time() - info.st_mtime > FOREIGN_STALE_AFTER_S
    pid = int(match["pid"])
    return pid == os.getpid() or not _process_alive(pid)  # ours and not active: a dead run's


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return True
    return True


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
