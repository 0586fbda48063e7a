"""Safe extraction of downloaded archives, and mapping what they hold into our layout.

    safe_extract(Path("download"), Path("tree"))        # zip or tar (any compression)
    images, masks = find_dataset_folders(Path("tree"), "DUTS-TE")

Every entry is checked before anything is written: an absolute path, a ``..`` component, a
symlink or hard link, or (tar) a device/FIFO entry refuses the whole archive with
:class:`~utils.downloads.verify.VerifyError`. A damaged or truncated archive raises it as well.

What an archive unpacks to is limited: at most ``MAX_UNPACKED_BYTES`` in all and at most
``MAX_RATIO`` times the archive's own size (a zip bomb unpacks a few KB into GB). The sizes the
headers declare are checked before anything is written, and the bytes actually written are
counted as they stream, chunk by chunk, so no header can make the extraction write past a limit.
A refused or failed extraction leaves nothing behind (the target folder is removed).
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from utils.downloads.cli import human_size
from utils.downloads.verify import VerifyError

IGNORED = {"__MACOSX"}  # resource forks added by macOS archivers
# Folder names the SOD datasets use for images and masks; the first one found wins.
IMAGE_DIRS = ("images", "image", "imgs", "img", "im")
MASK_DIRS = ("masks", "mask", "gt", "gts", "groundtruth", "ground_truth")
DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
# 32 GiB: above every archive of data/downloads.yaml (the largest unpacks to < 1 GB) and the
# high-resolution sets (a few GB), below what fills a usual disk by surprise.
MAX_UNPACKED_BYTES = 32 * 2**30
# Image and mask archives unpack to 1-3 times their size (JPEG and PNG are compressed already;
# even binary BMP masks, the most compressible entries a set holds, stay far below 100 once
# mixed with their photos); zip bombs reach 1000 and more.
MAX_RATIO = 100
CHUNK = 1 << 20


class _Budget:
    """What an archive may still unpack to (module notes); ``take`` refuses before a limit is
    passed."""

    def __init__(self, archive: Path):
        self.size = archive.stat().st_size
        self.limit = min(MAX_UNPACKED_BYTES, MAX_RATIO * self.size)
        self.used = 0

    def check(self, total: int) -> None:
        """VerifyError when ``total`` bytes (declared or written) pass the limit."""
        if total <= self.limit:
            return
        if self.limit == MAX_UNPACKED_BYTES:
            why = "utils.downloads.archive.MAX_UNPACKED_BYTES"
        else:
            why = f"{MAX_RATIO} times the archive's {human_size(self.size)}: a zip bomb?"
        raise VerifyError(
            f"refused: the archive unpacks to more than {human_size(self.limit)} ({why}); "
            "nothing was kept"
        )

    def take(self, count: int) -> None:
        """Count ``count`` more bytes about to be written; VerifyError past the limit."""
        self.check(self.used + count)
        self.used += count


def _check_name(name: str) -> None:
    normal = name.replace("\\", "/")
    if normal.startswith("/") or DRIVE_LETTER.match(normal):
        raise VerifyError(f"refused: the archive entry {name!r} is an absolute path")
    if ".." in PurePosixPath(normal).parts:
        raise VerifyError(f"refused: the archive entry {name!r} would land outside its folder")


def _destination(target: Path, name: str) -> Path:
    """Where the entry ``name`` (checked by ``_check_name``) lands inside ``target``."""
    return target.joinpath(*(part for part in PurePosixPath(name).parts if part != "."))


def _write(source: BinaryIO, path: Path, budget: _Budget) -> None:
    """Copy an entry's stream to ``path``, counting every chunk before it is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        while chunk := source.read(CHUNK):
            budget.take(len(chunk))
            out.write(chunk)


# Both formats are written entry by entry here rather than by zipfile's or tarfile's
# extractall: only a loop of our own can count the bytes as they are written (module notes).
def _extract_zip(archive: Path, target: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as bundle:
        entries = bundle.infolist()
        for info in entries:
            _check_name(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise VerifyError(f"refused: the archive entry {info.filename!r} is a link")
        budget.check(sum(info.file_size for info in entries))
        for info in entries:
            path = _destination(target, info.filename)
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
            else:
                with bundle.open(info) as source:
                    _write(source, path, budget)


def _extract_tar(archive: Path, target: Path, budget: _Budget) -> None:
    with tarfile.open(archive) as bundle:
        members, declared = [], 0
        for member in bundle:  # header by header: a huge member is refused before it is read
            _check_name(member.name)
            if member.issym() or member.islnk():
                raise VerifyError(f"refused: the archive entry {member.name!r} is a link")
            if not (member.isfile() or member.isdir()):
                raise VerifyError(f"refused: the archive entry {member.name!r} is a special file")
            declared += member.size
            budget.check(declared)
            members.append(member)
        for member in members:
            path = _destination(target, member.name)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
            else:
                with bundle.extractfile(member) as source:
                    _write(source, path, budget)


def safe_extract(archive: Path, target: Path) -> None:
    """Extract the zip or tar ``archive`` into the new folder ``target``; raises VerifyError
    (and removes ``target``) when the archive is unsafe, damaged or too large (module notes)."""
    target.mkdir(parents=True)
    try:
        _extract(archive, target)
    except BaseException:  # refused, damaged or interrupted: nothing half-extracted is kept
        shutil.rmtree(target, ignore_errors=True)
        raise


def _extract(archive: Path, target: Path) -> None:
    try:
        budget = _Budget(archive)
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target, budget)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, target, budget)
        else:
            raise VerifyError("not a zip or tar archive (a truncated download, or a web page?)")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as error:
        raise VerifyError(f"the archive is damaged or truncated ({error})") from None
    except OSError as error:
        raise VerifyError(f"cannot extract the archive ({error})") from None


def find_dataset_folders(tree: Path, set_name: str) -> tuple[Path, Path]:
    """The (images, masks) folders of the one dataset inside an extracted archive.

    A dataset is a folder holding an images folder (``images``, ``Imgs``, ``im``...) and a masks
    folder (``masks``, ``GT``, ``gt``...). When several are found, the one named ``set_name``
    wins; otherwise the archive is refused as ambiguous.
    """
    found: list[tuple[Path, str, str]] = []
    for dirpath, dirnames, _ in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED)
        lower = {name.lower(): name for name in dirnames}
        images = next((lower[n] for n in IMAGE_DIRS if n in lower), None)
        masks = next((lower[n] for n in MASK_DIRS if n in lower), None)
        if images and masks:
            found.append((Path(dirpath), images, masks))
            dirnames.clear()
    named = [entry for entry in found if entry[0].name.lower() == set_name.lower()]
    if len(found) > 1 and len(named) == 1:
        found = named
    if len(found) != 1:
        top = sorted(p.name for p in tree.iterdir()) if tree.is_dir() else []
        where = [str(entry[0].relative_to(tree)) for entry in found] or top
        raise VerifyError(
            f"expected one folder holding images/ and masks/ in the archive, found "
            f"{len(found)} ({', '.join(where[:5]) or 'nothing'})"
        )
    folder, images, masks = found[0]
    return folder / images, folder / masks


def unwrap(tree: Path, name: str) -> Path:
    """``tree/<name>`` when that folder is all the archive holds, else ``tree``."""
    entries = [entry for entry in tree.iterdir() if entry.name not in IGNORED]
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() == name.lower():
        return entries[0]
    return tree


def merge_tree(source: Path, target: Path) -> tuple[int, int]:
    """Move what ``source`` holds into ``target``, keeping what is there; (moved, kept) counts."""
    target.mkdir(parents=True, exist_ok=True)
    moved = kept = 0
    for entry in sorted(source.iterdir()):
        if entry.name in IGNORED:
            continue
        there = target / entry.name
        if not there.exists() and not there.is_symlink():
            os.rename(entry, there)
            moved += 1
        elif entry.is_dir() and there.is_dir():
            more, same = merge_tree(entry, there)
            moved, kept = moved + more, kept + same
        else:
            kept += 1
    return moved, kept
