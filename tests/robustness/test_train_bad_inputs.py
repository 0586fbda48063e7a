"""Training with every awkward or broken photo and mask (tests/robustness/conftest.py) next to 5
good pairs: the training data set item by item, then run/Train.py (1 epoch, batches of 2).

A file refused when the set is listed (a decompression bomb's header) leaves training exactly as
without it; a file that fails to decode while training is replaced by the next loadable sample
(data/dataset.py), so that run is checked for its messages and counts, not its weights.
"""

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from data import SODDataset
from run import Train
from tests.script_args import train_argv

SET = "Train_Dataset/Synth-TR"
REFUSED_WHEN_LISTED = ("bomb.png", "bomb_mask.png")  # the others of PROBLEMS fail to decode


@pytest.fixture(scope="module")
def dataset(corpus) -> SODDataset:
    """The bad training set as Train.py builds it (skip mode), without transforms."""
    return SODDataset(corpus.bad / "Train_Dataset", ["Synth-TR"], on_error="skip", seed=0)


def check_item(dataset: SODDataset, corpus, bad) -> None:
    """A usable file gives its sample at the displayed size (a usable mask its expected values);
    a refused one is left out when listed or, when it fails to decode, replaced by the next
    loadable sample; both with one line naming the file and the problem."""
    path = corpus.bad / SET / bad.folder / bad.name
    names = [pair.name for pair in dataset.samples]
    if bad.name in REFUSED_WHEN_LISTED:
        assert bad.stem not in names
        messages = [line for line in dataset.failures if line.startswith(f"{path}: ")]
        assert len(messages) == 1 and bad.problem in messages[0]
        return
    item = dataset[names.index(bad.stem)]
    if bad.problem is not None:
        assert item["name"] != bad.stem
        assert item["skipped"].startswith(f"{path}: ") and bad.problem in item["skipped"]
        assert "\n" not in item["skipped"]
        return
    assert item["name"] == bad.stem and item["skipped"] == ""
    gt = np.asarray(item["gt"])
    assert item["image"].mode == "RGB" and gt.dtype == np.uint8
    assert (item["image"].height, item["image"].width) == gt.shape == bad.shape
    if bad.mask is not None:
        np.testing.assert_array_equal(gt, bad.mask)


def test_dataset_item_of_each_photo(dataset, corpus, photo):
    check_item(dataset, corpus, photo)


def test_dataset_item_of_each_mask(dataset, corpus, mask):
    check_item(dataset, corpus, mask)


# Three training runs, about 6 s on 2 CPU cores: every test that uses them is marked slow.
@pytest.fixture(scope="module")
def runs(corpus, run_script, tmp_path_factory):
    """Train.py on the good pairs, on them plus the two bombs, and on the whole bad set."""
    out = tmp_path_factory.mktemp("train")
    listed = out / "with_bombs"
    shutil.copytree(corpus.clean, listed)
    for name in REFUSED_WHEN_LISTED:
        for folder in ("images", "masks"):
            for path in (corpus.bad / SET / folder).glob(f"{Path(name).stem}.*"):
                shutil.copy(path, listed / SET / folder / path.name)

    def train(data: Path, ckpt: Path):
        return run_script(
            Train.main, train_argv(data, ckpt, "Train.Dataloader.batch_size=2", epochs=1)
        )

    return SimpleNamespace(
        clean=train(corpus.clean, out / "clean"),
        clean_dir=out / "clean",
        listed=train(listed, out / "with_bombs_ckpt"),
        listed_dir=out / "with_bombs_ckpt",
        bad=train(corpus.bad, out / "bad"),
    )


@pytest.mark.slow
def test_the_runs_go_on_and_exit_0(runs):
    """Exit 0 (run/Train.py's docstring). Of the 18 pairs of the bad set, the two bombs are left
    out when listed; of the 16 training images (8 full batches), the two that fail to decode are
    replaced (each once: they are not neighbours in the listing) and counted."""
    assert (runs.clean.status, runs.listed.status, runs.bad.status) == (0, 0, 0)
    lines = runs.bad.lines
    assert "2 training file(s) cannot be read and are left out" in lines
    assert any(line.startswith("data: 16 training images;") for line in lines), lines
    assert any(line.startswith("epoch 1: 2 sample(s) replaced because") for line in lines)
    assert any(line.startswith("done: 1 epoch(s) in ") for line in lines)
    assert any("s, 2 unreadable sample(s) skipped; weights: " in line for line in lines)


def check_run_messages(runs, corpus, bad) -> None:
    """A refused file is named with its problem on a line of the run; a usable one is not."""
    path = corpus.bad / SET / bad.folder / bad.name
    lines = runs.bad.naming(path)
    if bad.problem is None:
        assert not lines
    else:
        assert any(bad.problem in line for line in lines), runs.bad.lines


@pytest.mark.slow
def test_training_run_names_each_refused_photo(runs, corpus, photo):
    check_run_messages(runs, corpus, photo)


@pytest.mark.slow
def test_training_run_names_each_refused_mask(runs, corpus, mask):
    check_run_messages(runs, corpus, mask)


@pytest.mark.slow
def test_files_refused_when_listed_leave_training_unchanged(runs):
    """The same seed on the same usable pairs: the very same weights, tensor for tensor."""
    assert "2 training file(s) cannot be read and are left out" in runs.listed.lines
    clean = torch.load(runs.clean_dir / "latest.pth", weights_only=True)
    listed = torch.load(runs.listed_dir / "latest.pth", weights_only=True)
    assert clean.keys() == listed.keys()
    assert all(torch.equal(clean[key], listed[key]) for key in clean)
