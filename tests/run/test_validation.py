"""Validation while training (utils/engine/validation.py), fine-tuning from a checkpoint with a
frozen backbone, and resuming a validated run; tiny config on the small synthetic data set (CPU).

Every score Train logs is compared with what Test + Eval give for the checkpoint of that moment:
run/Test.py writes the PNG maps, utils.evaluation.evaluator (Eval.py's code) scores them.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from run import Test, Train
from tests.script_args import test_argv, train_argv
from tests.subprocesses import train_and_kill_when
from utils.config import config_from_args
from utils.engine import Hook, train
from utils.engine.distributed import init_distributed
from utils.engine.setup import TrainingError
from utils.engine.state import load_training_state
from utils.engine.validation import validation_settings
from utils.evaluation.evaluator import evaluate_folder
from utils.evaluation.metrics import METRICS
from utils.io.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
METRIC_NAMES = list(METRICS)  # every metric Eval knows, whatever gets added to it


@pytest.fixture(scope="module")
def data(small_synthetic) -> Path:
    """The shared small synthetic data set (tests/conftest.py): 8 training, 2 test pairs."""
    return small_synthetic


def validation_opts(data: Path, *extra: str) -> list[str]:
    """Validation on the test set Synth-TE with every metric, before the first step too."""
    return [
        "Train.Validation.enabled=true",
        f"Train.Validation.root={data / 'Test_Dataset'}",
        "Train.Validation.sets=[Synth-TE]",
        "Train.Validation.at_start=true",
        f"Train.Validation.metrics=[{','.join(METRIC_NAMES)}]",
        f"Test.Dataset.root={data / 'Test_Dataset'}",
        *extra,
    ]


def val_rows(ckpt: Path) -> list[dict[str, str]]:
    with open(ckpt / "val_log.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def eval_scores(data: Path, checkpoint: Path, work: Path, root: Path | None = None) -> dict:
    """Test.py's maps of ``checkpoint`` on Synth-TE, scored by Eval's evaluator."""
    root = root or data
    pred = work / "pred"
    argv = test_argv(data, checkpoint, pred, "--overwrite")
    argv[argv.index(f"Test.Dataset.root={data / 'Test_Dataset'}")] = (
        f"Test.Dataset.root={root / 'Test_Dataset'}"
    )
    assert Test.main(argv) == 0
    gt = root / "Test_Dataset" / "Synth-TE" / "masks"
    result = evaluate_folder(pred / "Synth-TE", gt, METRIC_NAMES)
    assert result.scored == len(list(gt.iterdir()))
    return result.scores


def logged(row: dict[str, str]) -> dict[str, str]:
    return {name: row[name] for name in METRIC_NAMES}


def as_logged(scores: dict) -> dict[str, str]:
    """Scores the way val_log.csv writes them (repr: every digit, nan as 'nan')."""
    return {name: repr(float(scores[name])) for name in METRIC_NAMES}


class Snapshots(Hook):
    """Keeps the weights of every validated moment: epoch_0.pth before training, epoch_<n>.pth
    after epoch n (runs after the built-in hooks, so after the validation of that epoch)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def before_train(self, trainer) -> None:
        save_checkpoint(trainer.run.model, self.folder / "epoch_0.pth")

    def after_epoch(self, trainer, epoch) -> None:
        save_checkpoint(trainer.run.model, self.folder / f"epoch_{epoch.epoch}.pth")


def load_cfg(argv: list[str]) -> dict:
    from data.transforms import CONFIG_CHECKS

    return config_from_args(
        Train.parse_args(argv), require=("Model", "Train"), checks=CONFIG_CHECKS
    )


# About 30 s on 2 CPU cores: every test that uses it is marked slow.
@pytest.fixture(scope="module")
def validated(data, tmp_path_factory) -> tuple[Path, Path]:
    """A 2-epoch validated run (seed 0), uninterrupted, with the weights of every validation
    kept aside: (checkpoint folder, snapshot folder)."""
    ckpt = tmp_path_factory.mktemp("validated")
    snapshots = tmp_path_factory.mktemp("snapshots")
    cfg = load_cfg(train_argv(data, ckpt, *validation_opts(data), epochs=2))
    result = train(
        cfg, init_distributed("cpu"), seed=0, progress=False, hooks=[Snapshots(snapshots)]
    )
    assert result.epochs_done == 2
    return ckpt, snapshots


@pytest.mark.slow
def test_logged_scores_are_evals_and_best_pth_is_the_best_epoch(data, validated, tmp_path):
    ckpt, snapshots = validated
    rows = val_rows(ckpt)
    assert [(row["epoch"], row["set"], row["role"]) for row in rows] == [
        (str(epoch), "Synth-TE", "target") for epoch in range(3)
    ]
    for row in rows:
        snapshot = snapshots / f"epoch_{row['epoch']}.pth"
        assert logged(row) == as_logged(eval_scores(data, snapshot, tmp_path)), row["epoch"]

    best_epoch = max(rows, key=lambda row: float(row["Sm"]))["epoch"]  # the first of equals
    info = json.loads((ckpt / "best.json").read_text())
    assert str(info["epoch"]) == best_epoch and info["select"] == "Sm" and info["mode"] == "max"
    best = torch.load(ckpt / "best.pth", weights_only=True)
    expected = torch.load(snapshots / f"epoch_{best_epoch}.pth", weights_only=True)
    assert best.keys() == expected.keys()
    assert all(torch.equal(best[key], expected[key]) for key in best)
    # The resume state carries the best-so-far.
    assert load_training_state(ckpt)["hooks"]["validation"]["best"]["epoch"] == info["epoch"]


@pytest.mark.slow
def test_resume_after_a_kill_keeps_the_best_so_far(data, validated, tmp_path):
    reference, _ = validated
    ckpt = tmp_path / "ckpt"
    argv = train_argv(data, ckpt, *validation_opts(data), epochs=2)
    # Kill once epoch 1's checkpoint is written (after its validation): inside epoch 2.
    saved = lambda: (ckpt / "state.pth").is_file()  # noqa: E731
    train_and_kill_when(argv, saved, "the end of epoch 1")
    state = load_training_state(ckpt)
    assert state["epoch"] < 2
    assert state["hooks"]["validation"]["history"][-1]["epoch"] == state["epoch"]

    assert Train.main(argv + ["--resume"]) == 0
    assert val_rows(ckpt) == val_rows(reference)
    assert json.loads((ckpt / "best.json").read_text()) == json.loads(
        (reference / "best.json").read_text()
    )
    resumed = torch.load(ckpt / "best.pth", weights_only=True)
    uninterrupted = torch.load(reference / "best.pth", weights_only=True)
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in uninterrupted)


@pytest.mark.slow
def test_init_from_a_checkpoint_with_a_frozen_backbone(data, validated, tmp_path, capsys):
    reference, _ = validated
    init = reference / "latest.pth"
    ckpt = tmp_path / "finetuned"
    opts = validation_opts(
        data,
        "Train.freeze=[backbone]",
        "Train.Validation.general=[Synth-TR]",
        f"Train.Validation.general_root={data / 'Train_Dataset'}",
        "Train.Validation.save_maps=true",
    )
    argv = train_argv(data, ckpt, *opts, epochs=1) + ["--init-from", str(init)]
    assert Train.main(argv) == 0
    out = capsys.readouterr().out
    rows = val_rows(ckpt)
    assert [(row["epoch"], row["set"], row["role"]) for row in rows] == [
        ("0", "Synth-TE", "target"),
        ("0", "Synth-TR", "general"),
        ("1", "Synth-TE", "target"),
        ("1", "Synth-TR", "general"),
    ]
    maps = ckpt / "validation" / "Synth-TE"  # save_maps: the last validation's PNGs
    images = data / "Test_Dataset" / "Synth-TE" / "images"
    assert sorted(p.stem for p in maps.glob("*.png")) == sorted(p.stem for p in images.iterdir())
    # Step 0 scores the init checkpoint exactly as Eval does.
    assert logged(rows[0]) == as_logged(eval_scores(data, init, tmp_path))
    # The forgetting report: the general set's score next to the target's, and its change.
    assert "general Synth-TR Sm" in out
    assert "forgetting: general set Synth-TR: Sm" in out and "than at step 0" in out

    before = torch.load(init, weights_only=True)
    after = torch.load(ckpt / "latest.pth", weights_only=True)
    backbone = [key for key in before if key.startswith("backbone.")]
    assert any(key.endswith("running_mean") for key in backbone)  # BN statistics included
    assert all(torch.equal(before[key], after[key]) for key in backbone)
    head = [key for key in before if not key.startswith("backbone.")]
    assert any(not torch.equal(before[key], after[key]) for key in head)  # the rest trained
    assert load_cfg(["--config", str(ckpt / "config.yaml")])["Train"]["Checkpoint"]["init"] == str(
        init
    )


def test_init_from_a_missing_checkpoint_is_one_line(data, tmp_path, capsys):
    missing = tmp_path / "nothing.pth"
    argv = train_argv(data, tmp_path / "ckpt", epochs=1) + ["--init-from", str(missing)]
    assert Train.main(argv) == 1
    err = capsys.readouterr().err
    assert f"Train.Checkpoint.init: {missing}: checkpoint not found" in err


def test_freezing_an_unknown_part_names_the_parts(data, tmp_path, capsys):
    argv = train_argv(data, tmp_path / "ckpt", "Train.freeze=[backbon]", epochs=1)
    assert Train.main(argv) == 1
    err = capsys.readouterr().err
    assert "Train.freeze: the model has no part 'backbon'; its parts are backbone," in err


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (["Train.Validation.sets=[]"], "Train.Validation.sets is empty"),
        (["Train.Validation.select=wFm"], "Train.Validation.select 'wFm' is not among"),
        (["Train.Validation.general=[Synth-TE]"], "listed in both sets and general"),
    ],
)
def test_validation_settings_are_checked(data, tmp_path, opts, message):
    cfg = load_cfg(train_argv(data, tmp_path, *validation_opts(data), *opts))
    cfg["Train"]["Validation"]["metrics"] = ["Sm", "mae"]
    with pytest.raises(TrainingError, match=message):
        validation_settings(cfg)


def test_an_unknown_validation_metric_is_a_config_error(data, tmp_path, capsys):
    argv = train_argv(data, tmp_path, *validation_opts(data), "Train.Validation.metrics=[Sn]")
    assert Train.main(argv) == 2
    assert "Train.Validation.metrics: unknown metric 'Sn' (did you mean Sm?)" in (
        capsys.readouterr().err
    )


def test_mode_follows_the_metric(data, tmp_path):
    cfg = load_cfg(
        train_argv(data, tmp_path, *validation_opts(data), "Train.Validation.select=mae")
    )
    assert validation_settings(cfg).mode == "min"
    cfg["Train"]["Validation"]["select"] = "Sm"
    assert validation_settings(cfg).mode == "max"
    cfg["Train"]["Validation"]["enabled"] = False
    assert validation_settings(cfg) is None


@pytest.mark.slow
def test_two_processes_gather_the_scores_of_one(data, validated, tmp_path, one_torch_thread):
    """torchrun, 2 CPU processes (Gloo), 3 validation images (2 + 1 per rank): the logged
    scores are Eval's of the same weights, so those of a single process. torchrun gives each
    process one thread (OMP_NUM_THREADS=1), so Test runs with one too: another thread count
    may round a convolution differently and move a map pixel by one level."""
    from data.synthetic import make_synthetic_dataset

    val = tmp_path / "val"
    make_synthetic_dataset(val, n_train=1, n_test=3, size=64, seed=4)
    init = validated[0] / "latest.pth"
    ckpt = tmp_path / "ckpt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(ROOT / "run" / "Train.py")]
    command += train_argv(
        data, ckpt, *validation_opts(val), "Train.Dataloader.batch_size=2", epochs=1
    )
    command += ["--init-from", str(init)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("validation after epoch 1:") == 1  # rank 0 reports
    rows = val_rows(ckpt)
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert logged(rows[0]) == as_logged(eval_scores(data, init, tmp_path, root=val))
    latest = ckpt / "latest.pth"
    assert logged(rows[1]) == as_logged(eval_scores(data, latest, tmp_path, root=val))


def test_weighted_training_sets(data, tmp_path, capsys):
    """Train.Dataset.weights: half of Synth-TR per epoch, so one batch of 4."""
    ckpt = tmp_path / "ckpt"
    argv = train_argv(data, ckpt, "Train.Dataset.weights={Synth-TR: 0.5}", epochs=1)
    assert Train.main(argv) == 0
    out = capsys.readouterr().out
    assert "each epoch: Synth-TR 4 of 8" in out
    assert "images per process and epoch 4 (1 process(es)), 1 batches of 4 each" in out
    argv = train_argv(data, ckpt, "Train.Dataset.weights={DUTS-TR: 0.5}", epochs=1)
    assert Train.main(argv) == 1
    assert "Train.Dataset.weights: weights names 'DUTS-TR', which is not one of the sets" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("preset", sorted((ROOT / "configs" / "finetune").glob("*.yaml")))
def test_finetune_presets_load_and_start_from_a_published_checkpoint(preset):
    from data.transforms import CONFIG_CHECKS
    from utils.config import load_config
    from utils.io.manifest import install_item_for

    cfg = load_config(preset, require=("Model", "Train", "Test", "Eval"), checks=CONFIG_CHECKS)
    settings = validation_settings(cfg)
    assert settings is not None and settings.targets
    init = cfg["Train"]["Checkpoint"]["init"]
    if "SwinB" in preset.name:  # install.sh fetches the checkpoint it starts from
        assert install_item_for(Path(init)) == init.split("/")[1]


@pytest.mark.slow
def test_early_stopping_after_patience(data, tmp_path, capsys, monkeypatch):
    """Scores that only get worse after epoch 1: patience 1 stops after epoch 2 of 3."""
    import utils.engine.validation

    sm = iter([0.5, 0.4, 0.3])

    def fake_score_set(*args, **kwargs):
        return {"Sm": next(sm), "mae": 0.1}, 2, []

    monkeypatch.setattr(utils.engine.validation, "score_set", fake_score_set)
    ckpt = tmp_path / "ckpt"
    opts = validation_opts(data, "Train.Validation.patience=1", "Train.Validation.at_start=false")
    opts[opts.index(f"Train.Validation.metrics=[{','.join(METRIC_NAMES)}]")] = (
        "Train.Validation.metrics=[Sm,mae]"
    )
    assert Train.main(train_argv(data, ckpt, *opts, epochs=3)) == 0
    out = capsys.readouterr().out
    assert "early stop: Sm has not improved for 1 validation(s)" in out
    assert "done: 2 epoch(s)" in out
    assert json.loads((ckpt / "best.json").read_text())["epoch"] == 1
    state = load_training_state(ckpt)
    assert state["epoch"] == 2 and state["hooks"]["validation"]["stale"] == 1
