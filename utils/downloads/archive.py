"""Safe extraction of downloaded archives, and mapping what they hold into our layout.

    safe_extract(Path("download"), Path("tree"))        # zip or tar (any compression)
    images, masks = find_dataset_folders(Path("tree"), "DUTS-TE")

Every entry is checked before anything is written: an absolute path, a ``..`` component, a
symlink or hard link, or (tar) a device/FIFO entry refuses the whole archive with
:class:`~utils.downloads.verify.VerifyError`. A damaged or truncated archive raises it as well.
"""

from __future__ import annotations

import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from utils.downloads.verify import VerifyError

IGNORED = {"__MACOSX"}  # resource forks added by macOS archivers
# Folder names the SOD datasets use for images and masks; the first one found wins.
IMAGE_DIRS = ("images", "image", "imgs", "img", "im")
MASK_DIRS = ("masks", "mask", "gt", "gts", "groundtruth", "ground_truth")
DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


def _check_name(name: str) -> None:
    normal = name.replace("\\", "/")
    if normal.startswith("/") or DRIVE_LETTER.match(normal):
        raise VerifyError(f"refused: the archive entry {name!r} is an absolute path")
    if ".." in PurePosixPath(normal).parts:
        raise VerifyError(f"refused: the archive entry {name!r} would land outside its folder")


def _extract_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            _check_name(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise VerifyError(f"refused: the archive entry {info.filename!r} is a link")
        bundle.extractall(target)


def _extract_tar(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as bundle:
        members = bundle.getmembers()
        for member in members:
            _check_name(member.name)
            if member.issym() or member.islnk():
                raise VerifyError(f"refused: the archive entry {member.name!r} is a link")
            if not (member.isfile() or member.isdir()):
                raise VerifyError(f"refused: the archive entry {member.name!r} is a special file")
        # The 'data' filter (Python >= 3.10.12 / 3.11.4) repeats these checks and drops modes.
        options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        bundle.extractall(target, members=members, **options)


def safe_extract(archive: Path, target: Path) -> None:
    """Extract the zip or tar ``archive`` into the new folder ``target``; raises VerifyError."""
    target.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, target)
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
