"""Fetch one URL into a local file: gdown for Google Drive, urllib for everything else.

    fetch("https://drive.google.com/file/d/<id>/view", Path("tmp/download"), "DUTS-TE")
    fetch("https://host/file.zip", Path("tmp/download"), "DUTS-TE")   # tqdm progress bar
    fetch("file:///home/me/DUTS-TE.zip", Path("tmp/download"), "DUTS-TE")

Every failure (offline, refused, HTTP error, Drive quota, a web page instead of the file, a
transfer cut short, a ``file://`` path that is no regular file: a FIFO would block the reader)
raises :class:`FetchError` with a one-line reason. The target may then hold
a partial file: callers download into a temporary folder and delete it.
"""

from __future__ import annotations

import http.client
import inspect
import re
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qs, urlparse
from urllib.request import Request, url2pathname, urlopen

from tqdm import tqdm

from utils.io.files import file_problem

TIMEOUT_S = 60  # seconds without data before a transfer is given up
CHUNK = 1 << 20
USER_AGENT = "Mozilla/5.0 (InSPyReNet install.sh)"
DRIVE_HOSTS = {"drive.google.com", "docs.google.com", "drive.usercontent.google.com"}
DRIVE_ID = re.compile(r"/d/([A-Za-z0-9_-]{10,})")


class FetchError(RuntimeError):
    """A download that did not produce the file; ``str()`` is a one-line reason."""


def is_drive_url(url: str) -> bool:
    """True for Google Drive links (fetched with gdown)."""
    return (urlparse(url).hostname or "").lower() in DRIVE_HOSTS


def drive_file_id(url: str) -> str:
    """The file id of a Drive link (``/file/d/<id>/...`` or ``...?id=<id>``)."""
    match = DRIVE_ID.search(urlparse(url).path)
    if match:
        return match.group(1)
    ids = parse_qs(urlparse(url).query).get("id")
    if ids:
        return ids[0]
    raise FetchError(f"cannot find the file id in the Google Drive link {url}")


def fetch(url: str, target: Path, label: str) -> None:
    """Download ``url`` into the file ``target``; raises :class:`FetchError`."""
    if is_drive_url(url):
        _fetch_drive(url, target)
        return
    if urlparse(url).scheme == "file":
        _check_local_file(url)
    _fetch_urllib(url, target, label)


def _check_local_file(url: str) -> None:
    """FetchError naming the file when a ``file://`` URL is no regular file (never opened)."""
    path = Path(url2pathname(urlparse(url).path))
    problem = file_problem(path)
    if problem:
        raise FetchError(f"{path}: {problem}")


def _fetch_drive(url: str, target: Path) -> None:
    import gdown  # imported here: only Drive links need it

    options = {"id": drive_file_id(url), "output": str(target), "quiet": False}
    # gdown >= 5 stops a stalled transfer after ``timeout``; older releases wait forever.
    if "timeout" in inspect.signature(gdown.download).parameters:
        options["timeout"] = TIMEOUT_S
    try:
        result = gdown.download(**options)
    except Exception as error:  # gdown raises its own, requests' and OS errors: all mean "no file"
        # gdown's messages span several lines (quota/permission explanations): keep them all.
        reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise FetchError(f"Google Drive: {reason[:400] or type(error).__name__}") from None
    if result is None or not target.is_file():
        raise FetchError("Google Drive gave no file (quota exceeded or access denied)")


def _fetch_urllib(url: str, target: Path, label: str) -> None:
    request = Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urlopen(request, timeout=TIMEOUT_S) as response, open(target, "wb") as out:
            if response.headers.get("Content-Type", "").startswith("text/html"):
                raise FetchError(
                    "the server sent a web page instead of the file (sign-in, quota or moved link)"
                )
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except HTTPError as error:
        raise FetchError(f"HTTP {error.code} {error.reason}") from None
    except URLError as error:
        raise FetchError(f"cannot open it ({error.reason})") from None
    except http.client.IncompleteRead as error:
        raise FetchError(f"the transfer stopped early ({len(error.partial)} bytes)") from None
    except (http.client.HTTPException, OSError) as error:
        raise FetchError(f"the transfer failed ({error or type(error).__name__})") from None
    if total is not None and received != total:
        raise FetchError(f"the transfer stopped after {received} of {total} bytes")
