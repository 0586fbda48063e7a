"""The download manifest (``data/downloads.yaml``): groups and items, read and checked.

An item names one thing to fetch: a dataset archive, a checkpoint file, a folder of
pre-computed maps or a bundle archive, where it goes (relative to the install root) and the URLs
to try in order (each optionally with its published md5)::

    manifest = load_manifest()                       # data/downloads.yaml
    manifest = manifest.with_urls({"DUTS-TE": "/home/me/Downloads/DUTS-TE.zip"})
    items = manifest.select(["test", "SwinB"])       # group and item names, case-insensitive

Every problem raises :class:`ManifestError` with one line naming the file and the entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import yaml

from utils.io.errors import first_line
from utils.io.files import REPO_ROOT

DEFAULT_MANIFEST = REPO_ROOT / "data" / "downloads.yaml"
KINDS = ("dataset", "checkpoint", "maps", "bundle")
ITEM_KEYS = {"name", "group", "kind", "dest", "sources", "approx_mb", "note"}
GROUP_KEYS = {"name", "default", "help"}
MD5_PATTERN = re.compile(r"^[0-9a-f]{32}$")


class ManifestError(ValueError):
    """A manifest problem; ``str()`` is one line naming the file and the entry."""


@dataclass(frozen=True)
class Source:
    """One URL of an item; ``md5`` is the published checksum of what this URL serves, if known."""

    url: str
    md5: str | None = None


@dataclass(frozen=True)
class Item:
    """One downloadable thing.

    ``kind`` is ``dataset`` (archive holding ``images/`` and ``masks/``), ``checkpoint`` (one
    weights file), ``maps`` (archive or folder of ``<dataset>/<stem>.png`` maps) or ``bundle``
    (archive merged into the ``dest`` folder). ``dest`` is relative to the install root.
    """

    name: str
    group: str
    kind: str
    dest: str
    sources: tuple[Source, ...] = ()
    approx_mb: float | None = None
    note: str | None = None

    def destination(self, root: Path) -> Path:
        """The absolute place of this item under the install root."""
        return Path(root).joinpath(*PurePosixPath(self.dest).parts)


@dataclass(frozen=True)
class Group:
    """A group of items; ``default`` groups are the ones offered (or taken with ``-y``)."""

    name: str
    default: bool
    help: str


@dataclass(frozen=True)
class Manifest:
    """The groups (in file order) and items (in file order) of a manifest file."""

    path: str
    groups: tuple[Group, ...]
    items: tuple[Item, ...]

    def in_group(self, group: str) -> list[Item]:
        """The items of ``group``, in manifest order."""
        return [item for item in self.items if item.group == group]

    def select(self, names: list[str]) -> list[Item]:
        """Items named by item names, group names or ``all`` (case-insensitive), deduplicated."""
        by_item = {item.name.lower(): [item] for item in self.items}
        by_group = {group.name.lower(): self.in_group(group.name) for group in self.groups}
        chosen: dict[str, Item] = {}
        for raw in names:
            key = raw.strip().lower()
            if not key:
                continue
            if key == "all":
                found = list(self.items)
            else:
                found = by_item.get(key) or by_group.get(key)
            if found is None:
                raise ManifestError(
                    f"{self.path}: no item or group named {raw.strip()!r}; groups: "
                    f"{', '.join(g.name for g in self.groups)}; items: "
                    f"{', '.join(i.name for i in self.items)}"
                )
            chosen.update({item.name: item for item in found})
        return [item for item in self.items if item.name in chosen]

    def with_urls(self, overrides: dict[str, str]) -> Manifest:
        """A copy where each named item is fetched from the given URL or local file only."""
        names = {item.name.lower(): item.name for item in self.items}
        unknown = [name for name in overrides if name.lower() not in names]
        if unknown:
            raise ManifestError(f"{self.path}: --url names unknown items {unknown}")
        wanted = {names[name.lower()]: to_url(value) for name, value in overrides.items()}
        items = tuple(
            replace(item, sources=(Source(wanted[item.name]),)) if item.name in wanted else item
            for item in self.items
        )
        return replace(self, items=items)


def to_url(value: str) -> str:
    """``value`` unchanged if it is a URL, else the ``file://`` URL of that local path."""
    if urlparse(value).scheme in ("http", "https", "file"):
        return value
    return Path(value).expanduser().resolve().as_uri()


def load_manifest(path: str | Path = DEFAULT_MANIFEST) -> Manifest:
    """Read and check a manifest file (``yaml.safe_load``); raises :class:`ManifestError`."""
    where = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ManifestError(f"{where}: cannot read the manifest ({first_line(error)})") from None
    if not isinstance(raw, dict) or set(raw) - {"groups", "items"}:
        raise ManifestError(f"{where}: expected a mapping with 'groups' and 'items' only")
    groups = tuple(_group(where, entry) for entry in _list(where, raw, "groups"))
    group_names = [group.name for group in groups]
    items = tuple(_item(where, entry, group_names) for entry in _list(where, raw, "items"))
    for label, names in (("group", group_names), ("item", [item.name for item in items])):
        lowered = [name.lower() for name in names]
        duplicates = sorted({name for name in names if lowered.count(name.lower()) > 1})
        if duplicates:
            raise ManifestError(f"{where}: {label} names used twice: {duplicates}")
    return Manifest(where, groups, items)


def _list(where: str, raw: dict, key: str) -> list:
    value = raw.get(key)
    if not isinstance(value, list) or not value:
        raise ManifestError(f"{where}: '{key}' must be a non-empty list")
    return value


def _group(where: str, entry) -> Group:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ManifestError(f"{where}: every group needs a 'name': {entry!r}")
    unknown = sorted(set(entry) - GROUP_KEYS)
    if unknown:
        raise ManifestError(f"{where}: group {entry['name']}: unknown keys {unknown}")
    return Group(entry["name"], bool(entry.get("default", False)), str(entry.get("help", "")))


def _item(where: str, entry, group_names: list[str]) -> Item:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ManifestError(f"{where}: every item needs a 'name': {entry!r}")
    name = entry["name"]
    at = f"{where}: item {name}"
    unknown = sorted(set(entry) - ITEM_KEYS)
    if unknown:
        raise ManifestError(f"{at}: unknown keys {unknown}; known: {sorted(ITEM_KEYS)}")
    if entry.get("group") not in group_names:
        raise ManifestError(f"{at}: group {entry.get('group')!r} is not declared under 'groups'")
    if entry.get("kind") not in KINDS:
        raise ManifestError(f"{at}: kind {entry.get('kind')!r} is not one of {KINDS}")
    dest = entry.get("dest")
    if not isinstance(dest, str) or not dest.strip("/"):
        raise ManifestError(f"{at}: 'dest' must be a relative path")
    posix = PurePosixPath(dest)
    if posix.is_absolute() or ".." in posix.parts or "\\" in dest:
        raise ManifestError(f"{at}: 'dest' {dest!r} must stay inside the install root")
    approx = entry.get("approx_mb")
    if approx is not None and not isinstance(approx, int | float):
        raise ManifestError(f"{at}: 'approx_mb' must be a number")
    return Item(
        name=name,
        group=entry["group"],
        kind=entry["kind"],
        dest=str(posix),
        sources=tuple(_source(at, raw) for raw in entry.get("sources") or ()),
        approx_mb=approx,
        note=entry.get("note"),
    )


def _source(at: str, raw) -> Source:
    if isinstance(raw, str):
        raw = {"url": raw}
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("url"), str)
        or set(raw) - {"url", "md5"}
    ):
        raise ManifestError(f"{at}: a source is a URL or {{url: ..., md5: ...}}, not {raw!r}")
    md5 = raw.get("md5")
    if md5 is not None and not MD5_PATTERN.match(str(md5)):
        raise ManifestError(f"{at}: md5 {md5!r} is not 32 lowercase hex digits")
    if urlparse(raw["url"]).scheme not in ("http", "https", "file"):
        raise ManifestError(f"{at}: {raw['url']!r} is not an http(s) or file URL")
    return Source(raw["url"], md5)


def install_item_for(path: str | Path, manifest: str | Path = DEFAULT_MANIFEST) -> str | None:
    """The name of the manifest item that installs ``path`` (under the repository root), or
    None when no item does or the manifest cannot be read."""
    try:
        wanted = Path(path).resolve()
        for item in load_manifest(manifest).items:
            if item.destination(REPO_ROOT).resolve() == wanted:
                return item.name
    except (OSError, ValueError):  # no manifest, or a broken one: no hint
        pass
    return None
