"""data.dataset: listing, pairing by stem, errors, size filter, skipping and seeding.

Expected values are properties of small folders built here (names, sizes, pixel values set by
hand) and the §15.4 rules (natural sort, size-mismatch drop, sample keys).
"""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from data.dataset import ImageFolderDataset, SODDataset, build_dataset, skipped_files
from utils.io.files import natural_key
from utils.io.images import ImageReadError

SPEC = {
    "static_resize": {"size": [32, 32]},
    "random_scale_crop": {"range": [0.75, 1.25]},
    "random_flip": {"lr": True, "ud": False},
    "random_rotate": {"range": [-10, 10]},
    "tonumpy": None,
    "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "totensor": None,
}


def _write(path, width, height, value, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (width, height), value).save(path)


def _make_set(root, set_name, stems, image_ext=".jpg", size=(40, 30)):
    for index, stem in enumerate(stems):
        _write(root / set_name / "images" / f"{stem}{image_ext}", *size, (index * 20, 0, 0))
        _write(root / set_name / "masks" / f"{stem}.png", *size, 255, mode="L")


def test_natural_key_orders_digit_runs_as_numbers():
    names = ["img10.jpg", "IMG2.jpg", "img1.jpg", "a.jpg"]
    assert sorted(names, key=natural_key) == ["a.jpg", "img1.jpg", "IMG2.jpg", "img10.jpg"]


def test_pairs_by_stem_across_sets_ignoring_extra_files(tmp_path, caplog):
    _make_set(tmp_path, "A", ["img10", "img2", "img1"])
    _make_set(tmp_path, "B", ["x"], image_ext=".PNG")
    (tmp_path / "A" / "images" / "notes.txt").write_text("not an image")
    (tmp_path / "A" / "images" / ".DS_Store").write_bytes(b"\0")
    _write(tmp_path / "A" / "masks" / "orphan.png", 40, 30, 0, mode="L")
    with caplog.at_level(logging.INFO, logger="data.pairs"):
        dataset = SODDataset(tmp_path, ["A", "B"])
    assert "orphan.png" in caplog.text
    assert [(p.set, p.name) for p in dataset.samples] == [
        ("A", "img1"),
        ("A", "img2"),
        ("A", "img10"),
        ("B", "x"),
    ]
    item = dataset[1]
    assert item["image"].mode == "RGB" and item["gt"].mode == "L"
    assert item["name"] == "img2" and item["set"] == "A" and item["shape"] == (30, 40)
    assert np.asarray(item["image"])[0, 0, 0] == pytest.approx(20, abs=2)  # img2 is the 2nd written


def test_image_without_mask_is_a_clear_error(tmp_path):
    _make_set(tmp_path, "A", ["a", "b"])
    for stem in ("c", "d"):
        _write(tmp_path / "A" / "images" / f"{stem}.jpg", 40, 30, (0, 0, 0))
    with pytest.raises(ValueError, match=r"A: 2 image\(s\) .* have no mask .*: c.jpg, d.jpg"):
        SODDataset(tmp_path, "A")
    _write(tmp_path / "only" / "S" / "images" / "a.jpg", 8, 8, (0, 0, 0))
    with pytest.raises(ValueError, match="masks: folder not found"):
        SODDataset(tmp_path / "only", "S")


def test_duplicate_stems_and_missing_folders(tmp_path):
    _make_set(tmp_path, "A", ["a"])
    _write(tmp_path / "A" / "images" / "a.png", 40, 30, (0, 0, 0))
    with pytest.raises(ValueError, match="share a stem.*a.jpg / a.png"):
        SODDataset(tmp_path, "A")
    with pytest.raises(ValueError, match="Nope.images: folder not found"):
        SODDataset(tmp_path, "Nope")


def test_size_mismatch_pairs_dropped_with_warning(tmp_path, caplog):
    _make_set(tmp_path, "A", ["good", "bad"])
    _write(tmp_path / "A" / "masks" / "bad.png", 30, 40, 255, mode="L")  # transposed size
    with caplog.at_level(logging.WARNING, logger="data.pairs"):
        dataset = SODDataset(tmp_path, "A")
    assert [p.name for p in dataset.samples] == ["good"]
    assert dataset.dropped == ["bad (image 30x40, mask 40x30)"]
    assert "dropped 1 of 2 pair(s)" in caplog.text and "bad" in caplog.text


def test_transformed_items_and_dynamic_resize_keys(tmp_path):
    _make_set(tmp_path, "A", ["a", "b"], size=(70, 50))
    item = SODDataset(tmp_path, "A", SPEC, seed=0)[0]
    assert item["image"].shape == (3, 32, 32) and item["gt"].shape == (1, 32, 32)
    assert item["image"].dtype == torch.float32 and item["shape"] == (50, 70)
    test_spec = {"dynamic_resize": {"L": 1280}, "tonumpy": None, "totensor": None}
    item = SODDataset(tmp_path, "A", test_spec)[0]
    assert item["image"].shape == (3, 64, 64) and item["image_resized"].shape == (3, 384, 384)


def test_seeded_draws_depend_on_seed_epoch_and_index_only(tmp_path):
    _make_set(tmp_path, "A", [f"s{i}" for i in range(4)], size=(48, 36))
    for path in (tmp_path / "A" / "masks").iterdir():  # an asymmetric mask shows the augmentation
        mask = np.zeros((36, 48), np.uint8)
        mask[5:30, 3:20] = 255
        Image.fromarray(mask).save(path)
    first, second = SODDataset(tmp_path, "A", SPEC, seed=3), SODDataset(tmp_path, "A", SPEC, seed=3)
    forward = [first[i]["gt"] for i in range(4)]
    backward = [second[i]["gt"] for i in reversed(range(4))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward, strict=True))
    epochs = []
    for epoch in range(6):
        first.set_epoch(epoch)
        epochs.append(first[0]["gt"])
    assert any(not torch.equal(epochs[0], other) for other in epochs[1:])
    first.set_epoch(0)
    assert torch.equal(first[0]["gt"], epochs[0])  # resuming at an epoch gives the same draws
    unseeded = SODDataset(tmp_path, "A", SPEC)
    assert isinstance(unseeded.seed, int) and unseeded.seed >= 0


def test_skip_mode_replaces_broken_samples_and_reports_them(tmp_path, caplog):
    _make_set(tmp_path, "A", ["a", "b", "c", "d"])
    dataset = SODDataset(tmp_path, "A", SPEC, on_error="skip", seed=0)
    strict = SODDataset(tmp_path, "A", SPEC)
    broken = tmp_path / "A" / "images" / "b.jpg"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated after the listing
    with caplog.at_level(logging.WARNING, logger="data.dataset"):
        item = dataset[1]
    assert item["name"] == "c" and str(broken) in item["skipped"]
    assert f"skipped {broken}" in caplog.text and dataset.failures == [item["skipped"]]
    assert dataset[0]["skipped"] == ""
    loader = DataLoader(dataset, batch_size=2, num_workers=2)
    reported = [line for batch in loader for line in skipped_files(batch)]
    assert len(reported) == 1 and reported[0].startswith(str(broken))
    assert sum(len(batch["name"]) for batch in loader) == 4  # batches keep their size

    with pytest.raises(ImageReadError, match="b.jpg"):
        strict[1]


def test_skip_mode_drops_unreadable_headers_at_listing(tmp_path):
    _make_set(tmp_path, "A", ["a", "b"])
    (tmp_path / "A" / "images" / "b.jpg").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="b.jpg"):
        SODDataset(tmp_path, "A")
    dataset = SODDataset(tmp_path, "A", on_error="skip")
    assert [p.name for p in dataset.samples] == ["a"] and "b.jpg" in dataset.failures[0]


def test_image_folder_dataset_masks_optional(tmp_path):
    _write(tmp_path / "T" / "images" / "p.jpg", 40, 30, (9, 9, 9))
    _write(tmp_path / "T" / "images" / "q.jpg", 20, 10, (9, 9, 9))
    _write(tmp_path / "T" / "masks" / "q.png", 20, 10, 255, mode="L")
    dataset = ImageFolderDataset(tmp_path, "T")
    p, q = dataset[0], dataset[1]
    assert "gt" not in p and p["shape"] == (30, 40) and p["name"] == "p"
    assert q["gt"].size == (20, 10)


def test_bad_arguments(tmp_path):
    _make_set(tmp_path, "A", ["a"])
    with pytest.raises(ValueError, match="on_error"):
        SODDataset(tmp_path, "A", on_error="ignore")
    with pytest.raises(ValueError, match="seed"):
        SODDataset(tmp_path, "A", seed=-1)
    with pytest.raises(ValueError, match="unknown transform"):
        SODDataset(tmp_path, "A", {"blur": None})


def test_build_dataset_from_config_section(tmp_path):
    _make_set(tmp_path, "A", ["a", "b"])
    section = {"type": "RGB_Dataset", "root": str(tmp_path), "sets": ["A"], "transforms": SPEC}
    dataset = build_dataset(section, on_error="skip", seed=1)
    assert isinstance(dataset, SODDataset) and dataset.on_error == "skip" and dataset.seed == 1
    assert dataset[0]["image"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="unknown Dataset type 'Video'; valid: .*RGB_Dataset"):
        build_dataset({**section, "type": "Video"})


def test_two_seeded_runs_with_workers_are_identical(tmp_path):
    _make_set(tmp_path, "A", [f"s{i}" for i in range(6)], size=(40, 30))
    geometric = {k: v for k, v in SPEC.items() if k.startswith(("static", "random"))}
    spec = {
        **geometric,
        "random_image_enhance": {"methods": ["contrast", "brightness", "sharpness"]},
        "tonumpy": None,
        "normalize": SPEC["normalize"],
        "totensor": None,
    }

    def run():
        dataset = SODDataset(tmp_path, "A", spec, seed=11)
        images = []
        for epoch in range(2):
            dataset.set_epoch(epoch)
            images += [b["image"] for b in DataLoader(dataset, batch_size=2, num_workers=2)]
        return torch.stack(images)

    first, second = run(), run()
    assert torch.equal(first, second)
    assert not torch.equal(first[:3], first[3:])  # epochs differ


def test_listing_and_test_set_writing_import_no_torch():
    """An exported engine's run/Test.py lists pairs and writes maps without torch."""
    code = "import sys, data.pairs, utils.inference.test_sets; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stdout + done.stderr
