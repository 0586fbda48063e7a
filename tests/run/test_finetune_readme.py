"""README "Fine-tune on your own images": the walk-through's commands, taken from the README
between its markers and run as written (bash, in a copy of the repository), so the two cannot
drift apart."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- finetune-walkthrough -->", "<!-- /finetune-walkthrough -->"


def walkthrough() -> str:
    """The bash block between the README's markers."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert block.startswith("```bash\n") and block.endswith("\n```"), block
    return block.removeprefix("```bash\n").removesuffix("\n```")


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The repository's code and configs in a fresh folder (no data, snapshots or results), with
    ``.venv/bin/python`` running this interpreter."""
    copy = tmp_path / "repo"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "snapshots", "results", "tests", "docs", "bench"
    )
    shutil.copytree(ROOT, copy, ignore=skip)
    for generated in ("synthetic", "custom"):
        shutil.rmtree(copy / "data" / generated, ignore_errors=True)
    python = copy / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return copy


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(checkout):
    commands = walkthrough()
    assert "--init-from snapshots/InSPyReNet_Tiny/latest.pth" in commands
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout + done.stderr
    run = checkout / "snapshots" / "InSPyReNet_Tiny_custom"

    # The validation log: step 0 and every epoch, target and general set.
    with open(run / "val_log.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    epochs = sorted({int(row["epoch"]) for row in rows})
    assert epochs[0] == 0 and len(epochs) >= 2
    assert {(row["set"], row["role"]) for row in rows} == {
        ("Synth-TE", "target"),
        ("Synth-TR", "general"),
    }
    assert "forgetting: general set Synth-TR: Sm" in out

    # best.json names the best logged epoch; best.pth is a published-format checkpoint.
    best = json.loads((run / "best.json").read_text())
    target = [row for row in rows if row["role"] == "target"]
    assert best["epoch"] == int(max(target, key=lambda row: float(row["Sm"]))["epoch"])
    assert all(
        not key.startswith("module.") for key in torch.load(run / "best.pth", weights_only=True)
    )

    # Inference with best.pth wrote one cut-out per validation image.
    images = sorted(
        p.stem for p in (checkout / "data/custom/Test_Dataset/Synth-TE/images").iterdir()
    )
    assert sorted(p.stem for p in (checkout / "results" / "custom").glob("*.png")) == images
