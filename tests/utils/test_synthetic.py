"""data.synthetic: layout, content, determinism and idempotence of the synthetic data set.

Expected values are the generator's documented contract (module docstring): the folder layout
the tiny config reads, binary masks, sides in [0.75·size, 1.25·size], same seed -> same bytes.
"""

import json

import numpy as np

from data.dataset import SODDataset
from data.synthetic import MANIFEST, main, make_synthetic_dataset
from utils.io.images import read_image, read_mask


def _files(root):
    return {
        str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


def test_layout_and_content(tmp_path):
    result = make_synthetic_dataset(tmp_path, n_train=6, n_test=3, size=64, seed=0)
    assert result.train_root == tmp_path / "Train_Dataset" and result.written == 18
    train = tmp_path / "Train_Dataset" / "Synth-TR"
    assert sorted(p.name for p in (train / "images").iterdir())[:2] == [
        "synth_0000.jpg",
        "synth_0001.jpg",
    ]
    assert len(list((tmp_path / "Test_Dataset" / "Synth-TE" / "masks").glob("*.png"))) == 3
    shapes = []
    for image_path in sorted((train / "images").iterdir()):
        image = np.asarray(read_image(image_path))
        mask = read_mask(train / "masks" / f"{image_path.stem}.png")
        assert image.shape[:2] == mask.shape and 48 <= min(mask.shape) <= max(mask.shape) <= 80
        assert set(np.unique(mask)) == {0, 255}
        assert 0.01 < (mask > 0).mean() < 0.7  # one visible object, not the whole frame
        # the object stands out: its mean colour differs from the background's
        inside, outside = image[mask > 0].mean(axis=0), image[mask == 0].mean(axis=0)
        assert np.abs(inside - outside).max() > 10
        shapes.append(mask.shape)
    assert any(h != w for h, w in shapes) and len(set(shapes)) > 1
    dataset = SODDataset(result.train_root, ["Synth-TR"])
    assert len(dataset) == 6 and not dataset.dropped


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    make_synthetic_dataset(tmp_path / "a", n_train=3, n_test=2, size=48, seed=5)
    make_synthetic_dataset(tmp_path / "b", n_train=3, n_test=2, size=48, seed=5)
    make_synthetic_dataset(tmp_path / "c", n_train=3, n_test=2, size=48, seed=6)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_idempotent_fills_gaps_and_follows_new_parameters(tmp_path):
    make_synthetic_dataset(tmp_path, n_train=4, n_test=2, size=48)
    before = _files(tmp_path)
    assert make_synthetic_dataset(tmp_path, n_train=4, n_test=2, size=48).written == 0
    (tmp_path / "Train_Dataset" / "Synth-TR" / "masks" / "synth_0002.png").unlink()
    assert make_synthetic_dataset(tmp_path, n_train=4, n_test=2, size=48).written == 2
    assert _files(tmp_path) == before  # the gap is refilled with the same bytes
    make_synthetic_dataset(tmp_path, n_train=2, n_test=2, size=48)
    images = sorted(p.name for p in (tmp_path / "Train_Dataset" / "Synth-TR" / "images").iterdir())
    assert images == ["synth_0000.jpg", "synth_0001.jpg"]  # stale pairs removed
    assert json.loads((tmp_path / MANIFEST).read_text())["n_train"] == 2
    assert not list(tmp_path.rglob("*.tmp"))


def test_command_line(tmp_path, capsys):
    main(["--root", str(tmp_path), "--train", "2", "--test", "1", "--size", "32", "--seed", "1"])
    assert "wrote 6 files" in capsys.readouterr().out
    main(["--root", str(tmp_path), "--train", "2", "--test", "1", "--size", "32", "--seed", "1"])
    assert "already complete" in capsys.readouterr().out
    assert main(["--root", str(tmp_path), "--train", "0"]) == 2
    assert "n_train >= 1" in capsys.readouterr().err
