"""File listing helpers shared by datasets, sources and evaluation: one natural sort, one rule
for which files are images, one rule for turning a name into a safe path component."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

# The repository's root folder (utils/io/files.py is two levels below it).
REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key comparing digit runs as integers and text lowercased ('img2' < 'img10').

    Any Unicode name works: digit runs are what ``\\d`` matches (decimal digits, which ``int``
    reads), so characters such as '²' stay text, and numbers and text never meet in a
    comparison (each part is a tuple tagged by its kind).
    """
    parts = _DIGITS.split(name)
    return tuple(
        (0, int(part), "") if index % 2 else (1, 0, part.lower())
        for index, part in enumerate(parts)
        if part
    )


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has a supported image extension (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files of ``folder`` (supported extensions, any case; hidden files skipped),
    natural-sorted."""
    files = [
        path
        for path in Path(folder).iterdir()
        if path.is_file() and not path.name.startswith(".") and is_image_file(path)
    ]
    return sorted(files, key=lambda path: natural_key(path.name))


NAME_MAX = 255  # bytes in one path component on the usual file systems (ext4, xfs, btrfs, tmpfs)


def fit_name(stem: str, suffix: str = "", limit: int = NAME_MAX) -> str:
    """``stem + suffix``, or, when that is longer than ``limit`` bytes, the stem cut short and
    ended by ``~`` and 8 hex digits of its hash (stable: the same stem always gets the same name,
    and two stems that share their first bytes still get different names)."""
    name = stem + suffix
    if len(os.fsencode(name)) <= limit:
        return name
    tag = "~" + hashlib.sha1(os.fsencode(stem)).hexdigest()[:8]
    room = limit - len(os.fsencode(tag + suffix))
    cut = os.fsencode(stem)[:room].decode("utf-8", errors="ignore")  # whole characters only
    return cut + tag + suffix


def safe_name(name: str) -> str:
    """``name`` as one harmless path component: no separators, never '', '.', '..' or hidden."""
    clean = "".join("_" if c in "/\\\0" or ord(c) < 32 else c for c in name)
    return "_" + clean if clean.startswith(".") or not clean else clean


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a regular file, in a few words, or None when it can be.

    Looks at the file's type only (``os.stat``), never opens it, so a FIFO or a device cannot
    block the caller: 'file not found', 'is a broken symbolic link', 'is a folder, not a file',
    'is a FIFO (named pipe), not a regular file', ... Callers name the file in their message.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "is a broken symbolic link" if path.is_symlink() else "file not found"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    kinds = {
        stat.S_ISDIR: "a folder, not a file",
        stat.S_ISFIFO: "a FIFO (named pipe), not a regular file",
        stat.S_ISSOCK: "a socket, not a regular file",
        stat.S_ISCHR: "a device, not a regular file",
        stat.S_ISBLK: "a device, not a regular file",
    }
    for test, kind in kinds.items():
        if test(mode):
            return f"is {kind}"
    return "is not a regular file"


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """The hex digest (``hashlib`` name: 'sha256', 'md5', ...) of a file's bytes, read in 1 MiB
    chunks (``hashlib.file_digest`` needs Python 3.11)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)  # integrity checks, not signatures
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
