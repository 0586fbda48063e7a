"""install.sh's Python side (utils/downloads.py and utils/download_*.py), against a local server.

Every download test serves archives and checkpoints built here from an http.server on
127.0.0.1 that counts requests; "unreachable" is a closed port on 127.0.0.1. Expected layouts
come from the issue (``<root>/<set>/images`` + ``masks``) and architecture §15.4.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from utils.downloads import install as download_install
from utils.downloads.archive import find_dataset_folders, safe_extract
from utils.downloads.cli import choose_groups, main
from utils.downloads.fetch import drive_file_id, is_drive_url
from utils.downloads.verify import VerifyError, file_md5
from utils.io.manifest import ManifestError, load_manifest

STEMS = ["0001", "0002", "img10"]
SET_DEST = "data/RGB_Dataset/Test_Dataset/Foo-TE"
CKPT_DEST = "snapshots/FooNet/latest.pth"


# ------------------------------------------------------------------------------------------------
# fixtures and builders


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/served over HTTP; ``/liar/<f>`` announces 1000 bytes more than it sends."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        timeout = 10

        def do_GET(self):  # noqa: N802 (http.server's name)
            requests.append(self.path)
            name = self.path.lstrip("/")
            liar = name.startswith("liar/")
            path = root / name.removeprefix("liar/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            self.send_response(200)
            kind = "text/html" if path.suffix == ".html" else "application/octet-stream"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data) + (1000 if liar else 0)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(
            root=root, requests=requests, url=f"http://127.0.0.1:{httpd.server_address[1]}"
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_url():
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone.zip"


def png_bytes(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def dataset_entries(prefix: str, images="images", masks="masks") -> dict[str, bytes]:
    """Archive entries of a tiny set: 8x6 JPEG images and PNG masks with the same stems."""
    rng = np.random.default_rng(0)
    entries = {}
    for stem in STEMS:
        image = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        mask = (rng.random((6, 8)) > 0.5).astype(np.uint8) * 255
        entries[f"{prefix}/{images}/{stem}.jpg"] = png_bytes(image, "JPEG")
        entries[f"{prefix}/{masks}/{stem}.png"] = png_bytes(mask, "PNG")
    return entries


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return path


def write_tar(path: Path, entries: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as bundle:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return path


def small_state_dict() -> dict[str, torch.Tensor]:
    return {"conv.weight": torch.arange(6.0).reshape(2, 3), "conv.bias": torch.ones(2)}


def write_manifest(path: Path, items: list[dict]) -> Path:
    groups = [
        {"name": "test", "default": True, "help": "test sets"},
        {"name": "model-zoo", "default": True, "help": "checkpoints"},
        {"name": "extra", "default": False, "help": "extras"},
    ]
    path.write_text(yaml.safe_dump({"groups": groups, "items": items}), encoding="utf-8")
    return path


def dataset_item(name="Foo-TE", dest=SET_DEST, sources=(), group="test") -> dict:
    return {"name": name, "group": group, "kind": "dataset", "dest": dest, "sources": list(sources)}


def checkpoint_item(name="FooNet", dest=CKPT_DEST, sources=(), group="model-zoo") -> dict:
    return {
        "name": name,
        "group": group,
        "kind": "checkpoint",
        "dest": dest,
        "sources": list(sources),
    }


def run(manifest: Path, root: Path, *args: str) -> int:
    return main(["--manifest", str(manifest), "--dest", str(root), *args])


def leftovers(root: Path) -> list[Path]:
    """Temporary install folders left anywhere under ``root``."""
    return [path for path in root.rglob("*") if ".install-" in path.name]


@pytest.fixture
def served_items(server, tmp_path):
    """A served Foo-TE zip (with its md5) and a served checkpoint (no md5: load-checked)."""
    archive = write_zip(server.root / "Foo-TE.zip", dataset_entries("Foo-TE"))
    torch.save(small_state_dict(), server.root / "foo.pth")
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        [
            dataset_item(sources=[{"url": f"{server.url}/Foo-TE.zip", "md5": file_md5(archive)}]),
            checkpoint_item(sources=[f"{server.url}/foo.pth"]),
        ],
    )
    return SimpleNamespace(manifest=manifest, root=tmp_path / "install")


# ------------------------------------------------------------------------------------------------
# done-when 1 and 2: download, verify, extract into the layout; a second run fetches nothing


def test_dataset_and_checkpoint_installed_then_second_run_downloads_nothing(
    server, served_items, capsys
):
    root = served_items.root
    assert run(served_items.manifest, root, "-y") == 0
    set_dir = root / SET_DEST
    assert sorted(p.stem for p in (set_dir / "images").iterdir()) == sorted(STEMS)
    assert sorted(p.stem for p in (set_dir / "masks").iterdir()) == sorted(STEMS)
    loaded = torch.load(root / CKPT_DEST, map_location="cpu", weights_only=True)
    assert torch.equal(loaded["conv.weight"], small_state_dict()["conv.weight"])
    assert (set_dir / ".verified.json").is_file()
    assert (root / "snapshots/FooNet/.latest.pth.verified.json").is_file()
    assert leftovers(root) == []
    assert len(server.requests) == 2

    capsys.readouterr()
    assert run(served_items.manifest, root, "-y") == 0
    assert len(server.requests) == 2, "the second run must not download again"
    assert capsys.readouterr().out.count("all 1 items present and verified") == 2
    assert run(served_items.manifest, root, "--only", "Foo-TE,FooNet") == 0
    assert capsys.readouterr().out.count("already present, verified") == 2

    assert run(served_items.manifest, root, "--list") == 0
    listing = capsys.readouterr().out
    assert listing.count("present, verified") == 2
    assert len(server.requests) == 2


def test_installed_set_is_read_by_the_dataloader(server, served_items):
    from data.dataset import SODDataset

    assert run(served_items.manifest, served_items.root, "--only", "Foo-TE") == 0
    dataset = SODDataset(served_items.root / "data/RGB_Dataset/Test_Dataset", ["Foo-TE"])
    assert len(dataset) == len(STEMS)
    item = dataset[0]
    assert item["name"] == "0001"
    assert tuple(item["shape"]) == (6, 8)
    assert {"image", "gt", "name", "shape"} <= set(item)


def test_archive_folder_names_are_mapped_to_images_and_masks(server, tmp_path):
    """A tar.gz holding Bar/Imgs and Bar/GT ends up as <set>/images and <set>/masks."""
    write_tar(server.root / "bar.tar.gz", dataset_entries("wrapper/Bar", "Imgs", "GT"))
    manifest = write_manifest(
        tmp_path / "m.yaml",
        [
            dataset_item(
                "Bar-TE", "data/RGB_Dataset/Test_Dataset/Bar-TE", [f"{server.url}/bar.tar.gz"]
            )
        ],
    )
    assert run(manifest, tmp_path / "install", "--only", "bar-te") == 0
    set_dir = tmp_path / "install/data/RGB_Dataset/Test_Dataset/Bar-TE"
    assert sorted(os.listdir(set_dir / "images")) == sorted(f"{s}.jpg" for s in STEMS)
    assert sorted(os.listdir(set_dir / "masks")) == sorted(f"{s}.png" for s in STEMS)


def test_find_dataset_folders_prefers_the_named_set_and_refuses_ambiguity(tmp_path):
    for prefix in ("A/Foo-TE", "A/Other"):
        for folder in ("images", "masks"):
            (tmp_path / prefix / folder).mkdir(parents=True)
    images, masks = find_dataset_folders(tmp_path, "Foo-TE")
    assert images == tmp_path / "A/Foo-TE/images" and masks == tmp_path / "A/Foo-TE/masks"
    with pytest.raises(VerifyError, match="found 2"):
        find_dataset_folders(tmp_path, "Baz-TE")


# ------------------------------------------------------------------------------------------------
# done-when 3: corrupted downloads and unsafe archives


def test_wrong_checksum_is_reported_and_nothing_is_left(server, tmp_path, capsys):
    write_zip(server.root / "Foo-TE.zip", dataset_entries("Foo-TE"))
    manifest = write_manifest(
        tmp_path / "m.yaml",
        [dataset_item(sources=[{"url": f"{server.url}/Foo-TE.zip", "md5": "0" * 32}])],
    )
    root = tmp_path / "install"
    assert run(manifest, root, "-y") == 1
    err = capsys.readouterr().err
    assert "MISSING Foo-TE" in err and "md5" in err
    assert not (root / SET_DEST).exists()
    assert leftovers(root) == []


@pytest.mark.parametrize("archive", ["Foo-TE.zip", "Foo-TE.tar.gz"])
def test_truncated_archive_is_refused(server, tmp_path, capsys, archive):
    full = server.root / "full"
    if archive.endswith(".zip"):
        write_zip(full, dataset_entries("Foo-TE"))
    else:
        write_tar(full, dataset_entries("Foo-TE"))
    data = full.read_bytes()
    (server.root / archive).write_bytes(data[: len(data) // 2])
    manifest = write_manifest(
        tmp_path / "m.yaml", [dataset_item(sources=[f"{server.url}/{archive}"])]
    )
    root = tmp_path / "install"
    assert run(manifest, root, "-y") == 1
    err = capsys.readouterr().err
    assert "damaged or truncated" in err or "not a zip or tar archive" in err
    assert not (root / SET_DEST).exists()
    assert leftovers(root) == []


def test_transfer_cut_short_is_refused(server, tmp_path, capsys):
    torch.save(small_state_dict(), server.root / "foo.pth")
    manifest = write_manifest(
        tmp_path / "m.yaml", [checkpoint_item(sources=[f"{server.url}/liar/foo.pth"])]
    )
    root = tmp_path / "install"
    assert run(manifest, root, "-y") == 1
    assert "stopped" in capsys.readouterr().err
    assert not (root / CKPT_DEST).exists()
    assert leftovers(root) == []


def test_web_page_instead_of_file_is_refused(server, tmp_path, capsys):
    (server.root / "quota.html").write_text("<html>quota exceeded</html>")
    manifest = write_manifest(
        tmp_path / "m.yaml", [checkpoint_item(sources=[f"{server.url}/quota.html"])]
    )
    assert run(manifest, tmp_path / "install", "-y") == 1
    assert "web page" in capsys.readouterr().err


def test_archive_with_parent_entry_is_refused_and_nothing_lands_outside(server, tmp_path, capsys):
    entries = dataset_entries("Foo-TE")
    entries["../../../evil.txt"] = b"outside"
    write_zip(server.root / "Foo-TE.zip", entries)
    manifest = write_manifest(
        tmp_path / "m.yaml", [dataset_item(sources=[f"{server.url}/Foo-TE.zip"])]
    )
    root = tmp_path / "deep/er/install"
    assert run(manifest, root, "-y") == 1
    assert "would land outside" in capsys.readouterr().err
    assert list(tmp_path.rglob("evil.txt")) == []
    assert not (root / SET_DEST).exists()
    assert leftovers(root) == []


def _zip_with_symlink(path: Path) -> None:
    info = zipfile.ZipInfo("Foo-TE/images/link.jpg")
    info.external_attr = (0o120777 << 16) | 0  # S_IFLNK
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr(info, "/etc/passwd")


def _tar_with(path: Path, kind: bytes, name: str = "Foo-TE/images/link.jpg") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd"
    with tarfile.open(path, "w") as bundle:
        bundle.addfile(info)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: write_zip(p, {"/abs/file.txt": b"x"}), "absolute path"),
        (lambda p: write_tar(p, {"/abs/file.txt": b"x"}, "w"), "absolute path"),
        (lambda p: write_tar(p, {"a/../../b.txt": b"x"}, "w"), "would land outside"),
        (_zip_with_symlink, "is a link"),
        (lambda p: _tar_with(p, tarfile.SYMTYPE), "is a link"),
        (lambda p: _tar_with(p, tarfile.LNKTYPE), "is a link"),
        (lambda p: _tar_with(p, tarfile.FIFOTYPE, "fifo"), "special file"),
    ],
)
def test_safe_extract_refuses_unsafe_entries_before_writing(tmp_path, build, message):
    archive = tmp_path / "archive"
    build(archive)
    target = tmp_path / "out"
    with pytest.raises(VerifyError, match=message):
        safe_extract(archive, target)
    assert list(target.rglob("*")) == []


def test_checkpoint_that_would_run_code_is_refused(server, tmp_path, capsys):
    marker = tmp_path / "code-ran"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"weight": Evil()}, server.root / "evil.pth")
    manifest = write_manifest(
        tmp_path / "m.yaml", [checkpoint_item(sources=[f"{server.url}/evil.pth"])]
    )
    root = tmp_path / "install"
    assert run(manifest, root, "-y") == 1
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()
    assert not (root / CKPT_DEST).exists()


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    def fetch_then_interrupt(url, target, label):
        target.write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(download_install, "fetch", fetch_then_interrupt)
    manifest = write_manifest(
        tmp_path / "m.yaml", [checkpoint_item(sources=["http://127.0.0.1:9/x"])]
    )
    root = tmp_path / "install"
    assert run(manifest, root, "-y") == 130
    assert not (root / CKPT_DEST).exists()
    assert leftovers(root) == []


def test_stale_temporary_folder_of_a_killed_run_is_removed(server, served_items):
    stale = served_items.root / "snapshots/FooNet/.latest.pth.install-killed"
    stale.mkdir(parents=True)
    (stale / "download").write_bytes(b"partial")
    assert run(served_items.manifest, served_items.root, "--only", "FooNet") == 0
    assert not stale.exists()


# ------------------------------------------------------------------------------------------------
# done-when 4: unreachable URLs give the manual message, the other items still go on


def test_unreachable_url_gives_manual_message_and_others_are_done(
    server, served_items, closed_url, tmp_path, capsys
):
    items = yaml.safe_load(served_items.manifest.read_text())["items"]
    items.insert(0, dataset_item("Bar-TE", "data/RGB_Dataset/Test_Dataset/Bar-TE", [closed_url]))
    manifest = write_manifest(tmp_path / "m2.yaml", items)
    root = served_items.root
    assert run(manifest, root, "-y") == 1
    err = capsys.readouterr().err
    bar = root / "data/RGB_Dataset/Test_Dataset/Bar-TE"
    assert "MISSING Bar-TE" in err and closed_url in err and str(bar / "images") in err
    assert "1 of 3 requested items are missing: Bar-TE" in err
    assert (root / SET_DEST / "images").is_dir() and (root / CKPT_DEST).is_file()
    assert not bar.exists()


def test_mirror_is_used_when_the_first_source_fails(server, served_items, closed_url, tmp_path):
    items = yaml.safe_load(served_items.manifest.read_text())["items"]
    items[1]["sources"].insert(0, closed_url)
    manifest = write_manifest(tmp_path / "m2.yaml", items)
    assert run(manifest, served_items.root, "--only", "FooNet") == 0
    assert (served_items.root / CKPT_DEST).is_file()


def test_item_without_url_asks_for_manual_placement(tmp_path, capsys):
    maps = {"name": "Meth-maps", "group": "extra", "kind": "maps", "dest": "data/pre_computed/Meth"}
    manifest = write_manifest(tmp_path / "m.yaml", [maps])
    root = tmp_path / "install"
    assert run(manifest, root, "--only", "extra") == 1
    err = capsys.readouterr().err
    assert "no download location is published" in err
    assert f"{root / 'data/pre_computed/Meth'}/<dataset>/<image stem>.png" in err
    # placed by hand, it is checked and recorded
    write = root / "data/pre_computed/Meth/DUTS-TE/0001.png"
    write.parent.mkdir(parents=True)
    write.write_bytes(png_bytes(np.zeros((4, 4), np.uint8), "PNG"))
    assert run(manifest, root, "--only", "Meth-maps") == 0
    assert "present, verified now" in capsys.readouterr().out


def test_google_drive_links_go_through_gdown(tmp_path, monkeypatch, capsys):
    gdown = pytest.importorskip("gdown")
    calls = []

    def fake_download(id=None, output=None, **kwargs):  # noqa: A002 (gdown's keyword)
        calls.append(id)
        if id == "refusedFileId0":
            raise gdown.exceptions.FileURLRetrievalError("Too many users have viewed it\nrecently")
        torch.save(small_state_dict(), output)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    refused = "https://drive.google.com/file/d/refusedFileId0/view?usp=sharing"
    good = "https://drive.google.com/file/d/goodFileId000/view?usp=sharing"
    manifest = write_manifest(
        tmp_path / "m.yaml",
        [checkpoint_item("A", "a.pth", [refused]), checkpoint_item("B", "b.pth", [good])],
    )
    assert run(manifest, tmp_path / "install", "-y") == 1
    assert calls == ["refusedFileId0", "goodFileId000"]
    err = capsys.readouterr().err
    assert "Too many users have viewed it recently" in err and refused in err
    assert (tmp_path / "install/b.pth").is_file() and not (tmp_path / "install/a.pth").exists()


def test_drive_link_parsing():
    assert is_drive_url("https://drive.google.com/file/d/1MMhioAsZ-oYa5FpnTi22XBGh5HkjLX3y/view")
    assert not is_drive_url("https://github.com/x/y/releases/download/1/a.pth")
    link = "https://drive.google.com/file/d/1MMhioAsZ-oYa5FpnTi22XBGh5HkjLX3y/view?usp=sharing"
    assert drive_file_id(link) == "1MMhioAsZ-oYa5FpnTi22XBGh5HkjLX3y"
    assert drive_file_id("https://drive.google.com/uc?id=abcdefghijkl") == "abcdefghijkl"


# ------------------------------------------------------------------------------------------------
# items found in place, --url, bundles, selection


def test_hand_placed_checkpoint_is_verified_without_download(server, served_items, capsys):
    dest = served_items.root / CKPT_DEST
    dest.parent.mkdir(parents=True)
    torch.save(small_state_dict(), dest)
    assert run(served_items.manifest, served_items.root, "--list", "--only", "FooNet") == 0
    assert "present, unverified" in capsys.readouterr().out
    assert run(served_items.manifest, served_items.root, "--only", "FooNet") == 0
    assert "present, verified now" in capsys.readouterr().out
    assert server.requests == []
    dest.write_bytes(b"replaced by something else")
    assert run(served_items.manifest, served_items.root, "--only", "FooNet") == 1
    assert "fails its check" in capsys.readouterr().err
    assert dest.read_bytes() == b"replaced by something else", "a file in place is never replaced"


def test_url_override_installs_a_local_file(tmp_path, served_items, server):
    local = write_zip(tmp_path / "by-hand.zip", dataset_entries("Foo-TE"))
    root = served_items.root
    assert run(served_items.manifest, root, "--only", "Foo-TE", "--url", f"foo-te={local}") == 0
    assert server.requests == []
    assert len(os.listdir(root / SET_DEST / "masks")) == len(STEMS)


def test_bundle_is_merged_without_replacing_existing_files(server, tmp_path):
    entries = dataset_entries("data/RGB_Dataset/Test_Dataset/Baz-TE")
    entries["data/backbone_ckpt/keep.pth"] = b"from the bundle"
    write_zip(server.root / "seed.zip", entries)
    bundle = {"name": "seed", "group": "extra", "kind": "bundle", "dest": "data",
              "sources": [f"{server.url}/seed.zip"]}  # fmt: skip
    manifest = write_manifest(tmp_path / "m.yaml", [bundle])
    root = tmp_path / "install"
    (root / "data/backbone_ckpt").mkdir(parents=True)
    (root / "data/backbone_ckpt/keep.pth").write_bytes(b"mine")
    assert run(manifest, root, "--only", "seed") == 0
    assert (root / "data/backbone_ckpt/keep.pth").read_bytes() == b"mine"
    assert len(os.listdir(root / "data/RGB_Dataset/Test_Dataset/Baz-TE/images")) == len(STEMS)
    assert run(manifest, root, "--only", "seed") == 0
    assert len(server.requests) == 1


def test_selection_prompts_and_errors(served_items, tmp_path, capsys, server):
    assert run(served_items.manifest, served_items.root, "--only", "nope") == 2
    assert "no item or group named 'nope'" in capsys.readouterr().err
    # no -y and no terminal (pytest's stdin): every group is declined, nothing is fetched
    assert run(served_items.manifest, served_items.root) == 0
    assert "no terminal" in capsys.readouterr().out
    assert server.requests == []
    manifest = load_manifest(served_items.manifest)
    asked = []
    chosen = choose_groups(manifest, tmp_path, False, lambda q: asked.append(q) or "'test'" in q)
    assert [item.name for item in chosen] == ["Foo-TE"] and len(asked) == 2
    assert [i.name for i in choose_groups(manifest, tmp_path, True, lambda q: False)] == [
        "Foo-TE",
        "FooNet",
    ]


def test_manifest_errors_name_the_entry(tmp_path):
    bad = write_manifest(tmp_path / "m.yaml", [checkpoint_item(dest="../outside.pth")])
    with pytest.raises(ManifestError, match="FooNet.*inside the install root"):
        load_manifest(bad)
    bad = write_manifest(tmp_path / "m.yaml", [checkpoint_item(sources=[{"url": "ftp://x/y"}])])
    with pytest.raises(ManifestError, match="not an http"):
        load_manifest(bad)


# ------------------------------------------------------------------------------------------------
# the real manifest against the published facts


def test_real_manifest_matches_the_published_download_list(fixtures_dir):
    from lib.registry import MODELS
    from utils.io.checkpoint import BACKBONE_DIR, BACKBONE_WEIGHTS
    from utils.io.manifest import install_item_for

    manifest = load_manifest()
    items = {item.name: item for item in manifest.items}
    facts = yaml.safe_load((fixtures_dir / "downloads.yaml").read_text(encoding="utf-8"))
    for fact in facts["items"]:
        item = items[fact["name"]]
        urls = [source.url for source in item.sources]
        if fact["gdrive"]:
            assert urls[0] == fact["gdrive"], fact["name"]
        onedrive = (
            fact["onedrive"]
            if "download=1" in fact["onedrive"]
            else fact["onedrive"] + "&download=1"
        )
        assert onedrive in urls, fact["name"]
        assert item.dest.startswith(fact["dest"].rstrip("/")), fact["name"]
    for release in facts["github_release_checkpoints"]:
        sources = [s for item in manifest.items for s in item.sources if s.url == release["url"]]
        assert [s.md5 for s in sources] == [release["md5"]]
    backbones = {
        item.dest.rsplit("/", 1)[1] for item in manifest.items if "backbone_ckpt" in item.dest
    }
    assert (
        backbones
        == set(BACKBONE_WEIGHTS.values())
        == {
            "res2net50_v1b_26w_4s-3cf99910.pth",
            "res2net101_v1b_26w_4s-0812c246.pth",
            "swin_tiny_patch4_window7_224.pth",
            "swin_small_patch4_window7_224.pth",
            "swin_base_patch4_window12_384_22kto1k.pth",
            "swin_large_patch4_window12_384_22kto1k.pth",
        }
    )
    assert set(BACKBONE_WEIGHTS) == set(MODELS)
    assert all(install_item_for(BACKBONE_DIR / name) in items for name in BACKBONE_WEIGHTS.values())
    defaults = {i.name for g in manifest.groups if g.default for i in manifest.in_group(g.name)}
    test_sets = {
        "DUTS-TE",
        "DUT-OMRON",
        "ECSSD",
        "HKU-IS",
        "PASCAL-S",
        "DAVIS-S",
        "HRSOD-TE",
        "UHRSD-TE",
    }
    assert test_sets | {"DUTS-TR", "Res2Net50", "SwinB"} <= defaults


def test_install_root_that_is_a_file_is_one_line(served_items, tmp_path, capsys):
    blocker = tmp_path / "root"
    blocker.write_text("mine")
    argv = ["--manifest", str(served_items.manifest), "--dest", str(blocker), "--only", "Foo-TE"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: install.sh: ") and "is a file" in err[0]
    assert blocker.read_text() == "mine"
