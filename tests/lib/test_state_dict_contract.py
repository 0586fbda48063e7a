"""Full-size models have exactly the official checkpoints' keys, shapes, dtypes and order
(tests/fixtures/golden/state_dict_keys_*.txt), and project checkpoints round-trip strictly."""

import json

import pytest
import torch

from lib import build_model
from tests.lib.conftest import tiny_model_cfg
from utils.io.checkpoint import load_checkpoint, save_checkpoint


def read_key_file(path):
    entries = []
    for line in path.read_text().splitlines():
        key, shape, dtype = line.split("\t")
        entries.append((key, tuple(json.loads(shape)), dtype))
    return entries


@pytest.mark.parametrize(
    "config_name, key_file",
    [("InSPyReNet_SwinB", "swinb"), ("InSPyReNet_Res2Net50", "res2net50")],
)
def test_full_size_state_dict_matches_official(config_name, key_file, fixtures_dir):
    model = build_model({"name": config_name, "depth": 64, "pretrained": False})
    mine = [
        (k, tuple(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in model.state_dict().items()
    ]
    expected = read_key_file(fixtures_dir / "golden" / f"state_dict_keys_{key_file}.txt")
    assert len(mine) == len(expected)
    for got, want in zip(mine, expected, strict=True):
        assert got == want


@pytest.mark.parametrize("name", ["tiny_swin", "tiny_res2net"])
def test_tiny_state_dicts_match_fixture_keys(name, fixtures_dir):
    model = build_model(tiny_model_cfg(name))
    mine = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    expected = [
        (k, s) for k, s, _ in read_key_file(fixtures_dir / "golden" / f"state_dict_keys_{name}.txt")
    ]
    assert mine == expected


def test_saved_checkpoint_loads_strictly_and_gives_identical_outputs(tmp_path, fixtures_dir):
    cfg = tiny_model_cfg("tiny_res2net")
    torch.manual_seed(1)
    first = build_model(cfg)
    load_checkpoint(first, fixtures_dir / "golden" / "tiny_res2net_weights.pth")
    path = tmp_path / "snap" / "latest.pth"
    save_checkpoint(first, path)

    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == list(first.state_dict())  # plain state dict, official key order

    torch.manual_seed(2)
    second = build_model(cfg)
    load_checkpoint(second, path)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        a = first.eval()({"image": x.clone()})
        b = second.eval()({"image": x.clone()})
    for left, right in zip(
        a["saliency"] + a["laplacian"], b["saliency"] + b["laplacian"], strict=True
    ):
        assert torch.equal(left, right)


def test_ddp_prefix_and_wrapped_checkpoints_load(tmp_path):
    cfg = tiny_model_cfg("tiny_res2net")
    model = build_model(cfg)
    state = {
        f"module.{k}": v + 1 if v.is_floating_point() else v for k, v in model.state_dict().items()
    }
    torch.save({"model": state, "epoch": 3}, tmp_path / "wrapped.pth")
    fresh = build_model(cfg)
    load_checkpoint(fresh, tmp_path / "wrapped.pth")
    key = "decoder.conv5.conv.weight"
    assert torch.equal(fresh.state_dict()[key], model.state_dict()[key] + 1)
