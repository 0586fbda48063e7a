"""Checks that an item is what it should be, and the ``.verified`` record kept beside it.

* checkpoint: the published md5 when known, else a weights-only load that must give a dict of
  tensors (``lib.state_dict.read_state_dict``; a pickle that would run code is refused);
* dataset: ``images/`` and ``masks/`` both hold image files;
* maps: at least one ``<dataset>/`` folder of image files.

After an item is in place, a small JSON record (source, md5, size, what was checked and a
fingerprint: size and mtime of a file, file counts of a folder) is written next to it. An item
whose record matches its fingerprint is "present, verified" and is not fetched or checked again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from utils.io.atomic import write_bytes_atomic
from utils.io.files import file_digest, is_image_file
from utils.io.manifest import Item

MISSING = "missing"
VERIFIED = "present, verified"
UNVERIFIED = "present, unverified"


class VerifyError(ValueError):
    """A download or a file in place that fails its check; ``str()`` is a one-line reason."""


def file_md5(path: Path) -> str:
    """The md5 hex digest of a file (the checksum data/downloads.yaml publishes)."""
    return file_digest(path, "md5")


def check_md5(path: Path, expected: str) -> str:
    """Return the file's md5; raise VerifyError unless it equals the published ``expected``."""
    actual = file_md5(path)
    if actual != expected:
        raise VerifyError(f"md5 is {actual}, the published one is {expected} (corrupted file?)")
    return actual


def check_checkpoint(path: Path) -> int:
    """Number of tensors of a weights-only loadable checkpoint; raises VerifyError otherwise."""
    # torch is imported here so that --help and --list stay fast.
    from lib import CheckpointError
    from utils.io.checkpoint import read_state_dict

    try:
        return len(read_state_dict(path))
    except CheckpointError as error:
        raise VerifyError(str(error).removeprefix(f"{path}: ")) from None


def _image_stems(folder: Path) -> list[str]:
    """Stems of the image files in ``folder`` (hidden files skipped, as data/dataset.py does)."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return [
            Path(e.name).stem
            for e in entries
            if e.is_file() and not e.name.startswith(".") and is_image_file(e.name)
        ]


def check_dataset(folder: Path) -> dict:
    """``{"images": n, "masks": n}`` of a set folder; VerifyError unless every image has a mask.

    The rule is the dataloader's (data/dataset.py pairs by stem; an image without a mask is an
    error there, masks without an image are ignored).
    """
    images = _image_stems(folder / "images")
    masks = set(_image_stems(folder / "masks"))
    if not images or not masks:
        raise VerifyError(
            f"{folder} needs image files in both images/ and masks/ "
            f"(found {len(images)} images, {len(masks)} masks)"
        )
    alone = sorted(stem for stem in images if stem not in masks)
    if alone:
        raise VerifyError(
            f"{len(alone)} of {len(images)} images have no mask with the same name "
            f"(first: {', '.join(alone[:3])})"
        )
    return {"images": len(images), "masks": len(masks)}


def check_maps(folder: Path) -> dict:
    """``{dataset: number of maps}`` of a pre-computed maps folder; VerifyError if it has none."""
    counts = {}
    if folder.is_dir():
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            stems = _image_stems(sub)
            if stems:
                counts[sub.name] = len(stems)
    if not counts:
        raise VerifyError(f"{folder} holds no <dataset>/ folder of map images")
    return counts


def record_path(item: Item, dest: Path) -> Path:
    """Where the ``.verified`` record of ``item`` lives (inside a folder, beside a file)."""
    if item.kind == "checkpoint":
        return dest.with_name(f".{dest.name}.verified.json")
    if item.kind == "bundle":
        return dest / f".{item.name}.verified.json"
    return dest / ".verified.json"


def fingerprint(item: Item, dest: Path) -> dict:
    """What must be unchanged for a record to stay valid (cheap: stat and folder listings)."""
    if item.kind == "checkpoint":
        stat = dest.stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if item.kind == "dataset":
        return {
            "images": len(_image_stems(dest / "images")),
            "masks": len(_image_stems(dest / "masks")),
        }
    if item.kind == "maps" and dest.is_dir():
        return {sub.name: len(_image_stems(sub)) for sub in sorted(dest.iterdir()) if sub.is_dir()}
    return {}


def read_record(item: Item, dest: Path) -> dict | None:
    """The record of ``item``, or None when absent or unreadable."""
    try:
        record = json.loads(record_path(item, dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(item: Item, dest: Path, facts: dict) -> None:
    """Record ``facts`` (source, md5, check...) plus the fingerprint, atomically."""
    record = {"item": item.name, **facts, "fingerprint": fingerprint(item, dest)}
    record["recorded"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    write_bytes_atomic(record_path(item, dest), text.encode("utf-8"))


def is_empty_dir(path: Path) -> bool:
    """True for an existing folder with nothing in it."""
    return path.is_dir() and not any(path.iterdir())


def item_state(item: Item, dest: Path) -> str:
    """MISSING, VERIFIED (record matches the item in place) or UNVERIFIED (anything else)."""
    if item.kind == "bundle":  # merged into a shared folder: only the record tells
        return VERIFIED if read_record(item, dest) else MISSING
    if not dest.exists() or is_empty_dir(dest):
        return MISSING
    record = read_record(item, dest)
    if record and record.get("fingerprint") == fingerprint(item, dest):
        return VERIFIED
    return UNVERIFIED
