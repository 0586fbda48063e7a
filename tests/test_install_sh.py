"""install.sh as a user runs it (subprocess, no network): --help, --list, failures, --env.

The wrapper runs $VENV/bin/python; the tests set VENV to the interpreter running pytest.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install.sh"


def install_sh(*args: str, script: Path = INSTALL) -> subprocess.CompletedProcess:
    env = {**os.environ, "VENV": sys.prefix}
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def test_help_documents_the_options():
    result = install_sh("--help")
    assert result.returncode == 0, result.stderr
    for option in ("-y", "--only", "--dest", "--list", "--env", "--manifest", "--url"):
        assert option in result.stdout
    assert "`install.sh --env` alone then exits 0" in result.stdout


def test_list_of_the_real_manifest_works_offline(tmp_path):
    result = install_sh("--list", "--dest", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in ("DUTS-TE", "DUT-OMRON", "ECSSD", "HKU-IS", "PASCAL-S", "DAVIS-S", "HRSOD-TE"):
        assert any(line.split()[:1] == [name] and "missing" in line for line in lines), name
    assert "swin_large_patch4_window12_384_22kto1k.pth" in result.stdout
    assert "snapshots/Plus_Ultra/latest.pth" in result.stdout
    assert list(tmp_path.iterdir()) == [], "--list writes nothing"


def test_unreachable_item_exits_nonzero_with_the_manual_message(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/w.pth"
    manifest = tmp_path / "m.yaml"
    item = {
        "name": "W",
        "group": "g",
        "kind": "checkpoint",
        "dest": "w/latest.pth",
        "sources": [url],
    }
    manifest.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "default": True}], "items": [item]})
    )
    result = install_sh("-y", "--manifest", str(manifest), "--dest", str(tmp_path / "root"))
    assert result.returncode == 1
    assert "MISSING W" in result.stderr and url in result.stderr
    assert str(tmp_path / "root/w/latest.pth") in result.stderr
    listing = install_sh("--list", "--manifest", str(manifest), "--dest", str(tmp_path / "root"))
    assert listing.returncode == 0 and "missing" in listing.stdout


def _copy_of_the_repo(tmp_path: Path) -> Path:
    """install.sh and utils/ copied, with a stub make_env.sh that leaves a marker file."""
    repo = tmp_path / "repo"
    (repo / "utils").mkdir(parents=True)
    shutil.copy(INSTALL, repo / "install.sh")
    for path in (ROOT / "utils").iterdir():
        if path.suffix in (".py", ".yaml"):
            shutil.copy(path, repo / "utils" / path.name)
    (repo / "utils/make_env.sh").write_text('echo stub-env; touch "$(dirname "$0")/../env-made"\n')
    return repo


def test_env_alone_makes_the_environment_and_stops(tmp_path):
    repo = _copy_of_the_repo(tmp_path)
    result = install_sh("--env", script=repo / "install.sh")
    assert result.returncode == 0, result.stderr
    assert (repo / "env-made").exists() and "stub-env" in result.stdout
    assert "nothing to download" in result.stdout


def test_env_runs_before_the_listing(tmp_path):
    repo = _copy_of_the_repo(tmp_path)
    result = install_sh(
        "--env", "--list", "--dest", str(tmp_path / "root"), script=repo / "install.sh"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.index("stub-env") < result.stdout.index("DUTS-TE")
