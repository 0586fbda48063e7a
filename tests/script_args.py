"""Command lines of run/Train.py and run/Test.py on the tiny config, shared by the test modules
(``from tests.script_args import train_argv, test_argv``)."""

import importlib.util
from pathlib import Path

TINY_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "InSPyReNet_Tiny.yaml")


def train_argv(data: Path, ckpt: Path, *opts: str, epochs: int = 3) -> list[str]:
    """Train.py arguments: the tiny config on ``data``, checkpoints in ``ckpt``, seed 0, CPU."""
    return [
        "--config",
        TINY_CONFIG,
        "--seed",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        "--opts",
        f"Train.Dataset.root={data / 'Train_Dataset'}",
        f"Train.Checkpoint.checkpoint_dir={ckpt}",
        f"Train.Scheduler.epoch={epochs}",
        *opts,
    ]


def test_argv(data: Path, ckpt: Path, pred: Path, *extra: str) -> list[str]:
    """Test.py arguments: the tiny config's test sets under ``data``, maps into ``pred``."""
    return [
        "--config",
        TINY_CONFIG,
        "--ckpt",
        str(ckpt),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
        "--opts",
        f"Test.Dataset.root={data / 'Test_Dataset'}",
        f"Eval.pred_root={pred}",
    ]


test_argv.__test__ = False  # a helper, not a test for pytest to collect


def training_files(*names: str) -> list[str]:
    """The sorted file names a training run writes into its checkpoint folder: ``names`` plus
    ``tensorboard`` when the optional tensorboard package is installed."""
    board = ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    return sorted([*names, *board])
