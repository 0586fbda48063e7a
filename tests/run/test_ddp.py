"""run/Train.py and Expr.py under torchrun with two CPU processes (Gloo): data split, one writer,
one tester."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.script_args import training_files
from utils.engine.records import read_log
from utils.engine.state import load_training_state

ROOT = Path(__file__).resolve().parents[2]


def torchrun(script: str, data: Path, ckpt: Path, *opts: str) -> subprocess.CompletedProcess:
    """``script`` on the tiny config under torchrun, 2 processes, 2 epochs of batch 2."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(ROOT / script)]
    command += ["--config", str(ROOT / "configs" / "InSPyReNet_Tiny.yaml"), "--seed", "0"]
    command += ["--device", "cpu", "--no-progress", "--opts"]
    command += [f"Train.Dataset.root={data / 'Train_Dataset'}"]
    command += [f"Train.Checkpoint.checkpoint_dir={ckpt}", "Train.Scheduler.epoch=2"]
    command += ["Train.Dataloader.batch_size=2", *opts]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data(small_synthetic) -> Path:
    """The shared small synthetic data set (tests/conftest.py)."""
    return small_synthetic


@pytest.mark.slow
def test_two_processes_share_the_data_and_write_one_checkpoint(data, tmp_path):
    ckpt = tmp_path / "ckpt"
    done = torchrun("run/Train.py", data, ckpt)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # 8 images over 2 processes: each sees 4 per epoch (DistributedSampler), 2 batches of 2.
    assert "images per process and epoch 4+4 (2 process(es)), 2 batches of 2 each" in out
    assert out.count("samples per process 4+4") == 2  # counted while training, per epoch
    assert out.count("done: 2 epoch(s)") == 1  # only rank 0 reports

    # Only rank 0 writes: one set of files, one log row per step.
    assert sorted(path.name for path in ckpt.iterdir()) == training_files(
        "config.yaml", "latest.pth", "state.pth", "train_log.csv"
    )
    assert [int(row["iteration"]) for row in read_log(ckpt / "train_log.csv")] == [1, 2, 3, 4]
    state = load_training_state(ckpt)
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # both ranks' RNG states
    assert not any(key.startswith("module.") for key in state["model"])


@pytest.mark.slow
def test_expr_under_torchrun_tests_and_scores_once(data, tmp_path):
    ckpt = tmp_path / "ckpt"
    opts = [
        f"Test.Dataset.root={data / 'Test_Dataset'}",
        f"Eval.gt_root={data / 'Test_Dataset'}",
        f"Test.Checkpoint.checkpoint_dir={ckpt}",
        f"Eval.pred_root={tmp_path / 'pred'}",
        f"Eval.result_path={tmp_path / 'results'}",
    ]
    done = torchrun("Expr.py", data, ckpt, *opts)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("[Synth-TE] 2 images: 2 written") == 1  # rank 0 only
    assert done.stdout.count("| InSPyReNet_Tiny |") == 1
    assert len(list((tmp_path / "pred" / "Synth-TE").glob("*.png"))) == 2
