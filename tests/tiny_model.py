"""The tiny Res2Net with its real (golden) weights, as a snapshot folder the scripts can use
(``from tests.tiny_model import tiny_snapshot``)."""

import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "tests/fixtures/golden/tiny_res2net_weights.pth"
CONFIG = ROOT / "tests/configs/tiny_res2net.yaml"


def tiny_snapshot(folder: Path) -> tuple[Path, dict]:
    """A copy of the tiny Res2Net's golden weights at ``folder``/latest.pth (the folder is made
    when missing), and the model's ``Model`` config section."""
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "latest.pth"
    shutil.copy(WEIGHTS, ckpt)
    return ckpt, yaml.safe_load(CONFIG.read_text())["Model"]
