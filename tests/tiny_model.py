"""The tiny Res2Net with its real (golden) weights as a snapshot folder, the test transforms,
and a config the predicting scripts can run (``from tests.tiny_model import tiny_snapshot``)."""

import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "tests/fixtures/golden/tiny_res2net_weights.pth"
CONFIG = ROOT / "tests/configs/tiny_res2net.yaml"
# The published configs' test transforms (architecture §16): dynamic resize, ImageNet statistics
TRANSFORMS = {
    "dynamic_resize": {"L": 1280},
    "tonumpy": None,
    "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "totensor": None,
}


def tiny_snapshot(folder: Path) -> tuple[Path, dict]:
    """A copy of the tiny Res2Net's golden weights at ``folder``/latest.pth (the folder is made
    when missing), and the model's ``Model`` config section."""
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "latest.pth"
    shutil.copy(WEIGHTS, ckpt)
    return ckpt, yaml.safe_load(CONFIG.read_text())["Model"]


def write_test_config(folder: Path, model: dict, transforms: dict, name: str = "config") -> Path:
    """``folder``/``name``.yaml (the name is the default output folder's): ``model`` with a
    Test section (these ``transforms``, the checkpoint folder ``folder``/snapshot, where
    :func:`tiny_snapshot` puts it, and no test set) for the scripts that predict; its path."""
    config = {
        "Model": model,
        "Test": {
            "Dataset": {"root": str(folder), "sets": ["none"], "transforms": transforms},
            "Checkpoint": {"checkpoint_dir": str(folder / "snapshot")},
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
