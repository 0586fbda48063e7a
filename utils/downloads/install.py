"""Put one manifest item in place: fetch, check, extract, move, record.

    outcome = install_item(item, root)      # Outcome(item, ok, status)

The order for an item that is missing, for each of its sources until one works:

1. download into a fresh temporary folder beside the destination (same filesystem);
2. check it: the published md5 when known, else a weights-only load (checkpoint) or a safe
   extraction and the images/masks layout (dataset, maps, bundle);
3. rename it into place (one atomic rename; a bundle's entries are renamed one by one), write
   the ``.verified`` record and delete the temporary folder.

An item already in place with a matching record is skipped; one in place without a record
(put there by hand) is checked and recorded, never overwritten. When every source fails, one
message says which URL to fetch by hand and where to put the result; the caller goes on with the
other items. An interrupted run leaves only a hidden ``.<name>.install-*`` folder, removed by the
next run.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from utils.downloads.archive import find_dataset_folders, merge_tree, safe_extract, unwrap
from utils.downloads.fetch import FetchError, fetch
from utils.downloads.verify import (
    UNVERIFIED,
    VERIFIED,
    VerifyError,
    check_checkpoint,
    check_dataset,
    check_maps,
    check_md5,
    file_md5,
    is_empty_dir,
    item_state,
    write_record,
)
from utils.io.manifest import Item, Source

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What happened to one item: ``ok`` is True when it is in place and verified."""

    item: Item
    ok: bool
    status: str


def placement(item: Item, dest: Path) -> str:
    """Where and how a hand-fetched item must be put, in words."""
    return {
        "checkpoint": f"save it as {dest}",
        "dataset": f"unpack it so that {dest / 'images'}/ holds the images and "
        f"{dest / 'masks'}/ the masks",
        "maps": f"unpack it so that the maps are {dest}/<dataset>/<image stem>.png",
        "bundle": f"unpack it into {dest}/",
    }[item.kind]


def manual_message(item: Item, dest: Path, failures: list[str]) -> str:
    """The one message for an item that could not be fetched: URL, place, and why."""
    note = f" ({item.note})" if item.note else ""
    if not item.sources:
        where = placement(item, dest)
        return f"MISSING {item.name}: no download location is published{note}; {where}."
    lines = [
        f"MISSING {item.name}: could not be downloaded. Fetch it by hand from "
        f"{item.sources[0].url} and {placement(item, dest)}.{note}"
    ]
    lines += [f"  - {failure}" for failure in failures]
    lines.append(
        f"  Or let install.sh check and place a file you fetched: "
        f"bash install.sh --only {item.name} --url {item.name}=/path/to/the/file"
    )
    return "\n".join(lines)


def install_item(item: Item, root: Path) -> Outcome:
    """Make ``item`` present and verified under ``root`` (see the module notes)."""
    dest = item.destination(root)
    state = item_state(item, dest)
    if state == VERIFIED:
        return Outcome(item, True, "already present, verified")
    if state == UNVERIFIED:
        return _verify_in_place(item, dest)
    if not item.sources:
        logger.error(manual_message(item, dest, []))
        return Outcome(item, False, "missing: place it by hand")
    if is_empty_dir(dest):
        dest.rmdir()
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(glob.escape(f".{dest.name}") + ".install-*"):
        shutil.rmtree(stale, ignore_errors=True)
    failures = []
    for source in item.sources:
        logger.info(f"{item.name}: downloading {source.url}")
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.install-", dir=dest.parent))
        try:
            facts = _install_from(item, source, dest, staging)
        except (FetchError, VerifyError) as error:
            failures.append(f"{source.url} failed: {error}")
            continue
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        write_record(item, dest, facts)
        logger.info(f"{item.name}: installed in {dest}")
        return Outcome(item, True, f"installed from {source.url}")
    logger.error(manual_message(item, dest, failures))
    return Outcome(item, False, "missing: download failed")


def _install_from(item: Item, source: Source, dest: Path, staging: Path) -> dict:
    """Fetch ``source`` in ``staging``, check it and move it to ``dest``; the record's facts."""
    download = staging / "download"
    fetch(source.url, download, item.name)
    facts = {"source": source.url, "bytes": download.stat().st_size}
    if source.md5:
        facts.update(md5=check_md5(download, source.md5), check="published md5")
    else:
        facts.update(md5=file_md5(download))
    if item.kind == "checkpoint":
        if not source.md5:
            facts.update(tensors=check_checkpoint(download), check="weights-only load")
        os.replace(download, dest)
        return facts
    tree = staging / "tree"
    safe_extract(download, tree)
    download.unlink()  # the extracted copy is all that is needed from here on
    facts.setdefault("check", "archive and layout")
    if item.kind == "dataset":
        images, masks = find_dataset_folders(tree, dest.name)
        staged = staging / "staged"
        staged.mkdir()
        os.rename(images, staged / "images")
        os.rename(masks, staged / "masks")
        facts.update(check_dataset(staged))
        os.rename(staged, dest)
    elif item.kind == "maps":
        folder = unwrap(tree, dest.name)
        facts["maps"] = check_maps(folder)
        os.rename(folder, dest)
    else:
        moved, kept = merge_tree(unwrap(tree, dest.name), dest)
        facts.update(moved=moved, kept_existing=kept)
    return facts


def _verify_in_place(item: Item, dest: Path) -> Outcome:
    """Check an item found in place without a valid record, and record it if it passes."""
    try:
        facts = {"source": "found in place", **_check_in_place(item, dest)}
    except VerifyError as error:
        logger.error(
            f"FAILED {item.name}: {dest} is present but fails its check: {error}. "
            "Move it away and run again to download it."
        )
        return Outcome(item, False, "present but fails its check")
    write_record(item, dest, facts)
    return Outcome(item, True, "present, verified now")


def _check_in_place(item: Item, dest: Path) -> dict:
    if item.kind == "dataset":
        return {"check": "layout", **check_dataset(dest)}
    if item.kind == "maps":
        return {"check": "layout", "maps": check_maps(dest)}
    if not dest.is_file():
        raise VerifyError("it is not a file")
    md5 = file_md5(dest)
    if md5 in {source.md5 for source in item.sources}:
        return {"check": "published md5", "md5": md5, "bytes": dest.stat().st_size}
    tensors = check_checkpoint(dest)
    return {
        "check": "weights-only load",
        "md5": md5,
        "bytes": dest.stat().st_size,
        "tensors": tensors,
    }
