"""Download, verify and put in place the datasets, backbone weights, model-zoo checkpoints and
pre-computed maps listed in ``data/downloads.yaml``. ``install.sh`` is a thin wrapper over this.

    bash install.sh --list                   # every item: state (missing / verified / unverified)
    bash install.sh                          # asks yes/no per default group (no terminal: no)
    bash install.sh -y                       # every default group, no questions
    bash install.sh --only DUTS-TE,backbone  # items or groups by name; 'all' is everything
    bash install.sh --env                    # only create .venv (utils/make_env.sh), then stop
    bash install.sh --env -y                 # create .venv, then download the default groups
    python -m utils.downloads --only test --dest /big/disk/inspyrenet   # without the wrapper

Tests point items at a local server with ``--manifest my.yaml`` or ``--url NAME=URL``.
Exit status: 0 when every requested item is present and verified, 1 when any is missing (each
has printed the URL to fetch by hand and where to put it), 2 for a usage or manifest error,
130 when interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from utils.cli import EXIT_ERROR, EXIT_SETUP, ScriptError, run_cli

if TYPE_CHECKING:
    from collections.abc import Callable

    from utils.io.manifest import Item, Manifest

# The repository root (as utils.io.files.REPO_ROOT, not imported: --help must work before the
# environment exists, so this module imports nothing outside the standard library at the top).
REPO_ROOT = Path(__file__).resolve().parents[2]
logger = logging.getLogger(__name__)

EPILOG = """\
groups and items:
  --list shows every item with its group, state, size and destination. Without -y or --only,
  install.sh asks yes/no for each default group that is not complete; with no terminal (CI)
  every answer is no. --only names items or groups (comma separated, case-insensitive; 'all'
  is every item, extras included) and asks nothing.

--env:
  Runs `bash utils/make_env.sh` (creates .venv from requirements*.txt) before anything else.
  `install.sh --env` alone then exits 0: items are fetched only with -y or --only.

failures:
  When a download fails (offline, Google Drive quota, a corrupted file), one message per item
  names the URL to fetch by hand and the exact place for the file; the other items go on and the
  exit status is 1. Nothing half-downloaded is ever left in place.
"""


def _override(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url:
        raise argparse.ArgumentTypeError(f"expected NAME=URL, got {text!r}")
    return name, url


def build_parser() -> argparse.ArgumentParser:
    """The command line of install.sh (and of ``python -m utils.downloads``)."""
    parser = argparse.ArgumentParser(
        prog="install.sh",
        description="Download, verify and place datasets, backbone weights, model-zoo "
        "checkpoints and pre-computed maps.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-y", "--yes", action="store_true", help="take every default group")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="ITEMS",
        help="comma-separated item or group names (or 'all'); no questions asked",
    )
    parser.add_argument(
        "--dest",
        default=str(REPO_ROOT),
        metavar="DIR",
        help="install root for the manifest's data/... and snapshots/... paths "
        "(default: the repository)",
    )
    parser.add_argument(
        "--list", action="store_true", help="print the items and their state; fetch nothing"
    )
    parser.add_argument(
        "--env",
        action="store_true",
        help="first create the Python environment (bash utils/make_env.sh); alone, stop there",
    )
    parser.add_argument(
        "--manifest",
        default=str(REPO_ROOT / "data" / "downloads.yaml"),
        metavar="PATH",
        help="manifest to read (default: data/downloads.yaml)",
    )
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        type=_override,
        metavar="NAME=URL",
        help="fetch item NAME from this URL or local file instead (repeatable)",
    )
    return parser


def human_size(size: float) -> str:
    """``1536`` -> ``'1.5 KB'`` (powers of 1024)."""
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KB", "MB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} GB"


def main(argv: list[str] | None = None) -> int:
    """Run install.sh's logic; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    return run_cli(
        _run, args, interrupted="interrupted: the item being fetched was not put in place"
    )


def _run(args: argparse.Namespace) -> int:
    try:
        # Imported here so that --help works before the environment exists.
        from utils.downloads.install import install_item
        from utils.io.atomic import OutputError, check_output_folder
        from utils.io.manifest import ManifestError, load_manifest
    except ImportError as error:
        raise ScriptError(
            EXIT_SETUP,
            f"install.sh: the Python package {error.name!r} is missing: run "
            "`bash install.sh --env` (or pip install -r requirements.txt) first",
        ) from None
    root = Path(args.dest).expanduser().resolve()
    try:
        manifest = load_manifest(args.manifest).with_urls(dict(args.url))
        names = [name for value in args.only for name in value.split(",")]
        selected = manifest.select(names) if args.only else None
    except ManifestError as error:
        raise ScriptError(EXIT_SETUP, f"install.sh: {error}") from None
    if args.list:
        print_listing(manifest, list(manifest.items) if selected is None else selected, root)
        return 0
    items = selected if selected is not None else choose_groups(manifest, root, args.yes, ask)
    if not items:
        logger.info(
            "Nothing to fetch (-y: the default groups, --only NAMES: any item, --list: all)."
        )
        return 0
    try:  # before any download: one line when the install root cannot take files
        check_output_folder(root, "the downloads")
    except OutputError as error:
        raise ScriptError(EXIT_SETUP, f"install.sh: {error}") from None
    outcomes = [install_item(item, root) for item in items]
    logger.info(f"\nSummary ({root}):")
    for outcome in outcomes:
        logger.info(f"  {outcome.item.name:<28} {outcome.status}")
    missing = [outcome.item.name for outcome in outcomes if not outcome.ok]
    if missing:
        raise ScriptError(
            EXIT_ERROR,
            f"{len(missing)} of {len(outcomes)} requested items are missing: {', '.join(missing)} "
            "(see the messages above for where to fetch them and where to put them)",
        )
    return 0


def ask(question: str) -> bool:
    """Ask a yes/no question on the terminal; no terminal (CI) or no answer means no."""
    if not sys.stdin.isatty():
        logger.info(f"{question}no (no terminal: use -y or --only)")
        return False
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def choose_groups(
    manifest: Manifest, root: Path, yes: bool, ask_user: Callable[[str], bool]
) -> list[Item]:
    """Items of the default groups the user accepts (all with ``yes``); complete groups skipped."""
    from utils.downloads.verify import VERIFIED, item_state

    chosen = []
    for group in manifest.groups:
        if not group.default:
            continue
        items = manifest.in_group(group.name)
        pending = [i for i in items if item_state(i, i.destination(root)) != VERIFIED]
        if not pending:
            logger.info(f"group {group.name}: all {len(items)} items present and verified")
            continue
        known = [i.approx_mb for i in pending if i.approx_mb]
        size = f", at least {human_size(sum(known) * 2**20)}" if known else ""
        question = (
            f"Download group '{group.name}' ({group.help}; {len(pending)} items: "
            f"{', '.join(i.name for i in pending)}{size})? [y/N] "
        )
        if yes or ask_user(question):
            chosen.extend(pending)
    return chosen


def print_listing(manifest: Manifest, items: list[Item], root: Path) -> None:
    """One line per item: name, group, state, size (actual, ~published, or ?), destination."""
    from utils.downloads.verify import MISSING, item_state, read_record

    logger.info(f"install root: {root}")
    logger.info(f"{'ITEM':<28} {'GROUP':<16} {'STATE':<21} {'SIZE':>10}  DESTINATION")
    for item in items:
        dest = item.destination(root)
        state = item_state(item, dest)
        record = read_record(item, dest) or {}
        if state != MISSING and dest.is_file():
            size = human_size(dest.stat().st_size)
        elif "bytes" in record:
            size = human_size(record["bytes"])
        elif item.approx_mb:
            size = "~" + human_size(item.approx_mb * 2**20)
        else:
            size = "?"
        manual = "" if item.sources else "  (no URL: place by hand)"
        logger.info(f"{item.name:<28} {item.group:<16} {state:<21} {size:>10}  {item.dest}{manual}")
    defaults = ", ".join(group.name for group in manifest.groups if group.default)
    logger.info(f"default groups (asked, or taken by -y): {defaults}")


if __name__ == "__main__":
    sys.exit(main())
