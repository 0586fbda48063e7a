"""Every registered model builds from a config dict; bad configs and missing weights are clear."""

import pytest
import torch

from lib import MODELS, build_model
from utils.io.checkpoint import BACKBONE_DIR, load_model

SMALL_BACKBONES = {
    "Res2Net": {"layers": [1, 1, 1, 3], "base_width": 4},
    "SwinTransformer": {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2]},
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_builds_and_runs(name):
    spec = MODELS[name]
    cfg = {
        "name": name,
        "depth": 8,
        "pretrained": False,
        "base_size": [64, 64],
        "threshold": None,
        "backbone": SMALL_BACKBONES[spec.backbone.__name__],
    }
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model({"image": torch.randn(1, 3, 64, 96)})
    assert [tuple(t.shape[-2:]) for t in out["saliency"]] == [(8, 12), (16, 24), (32, 48), (64, 96)]
    assert [tuple(t.shape[-2:]) for t in out["laplacian"]] == [(16, 24), (32, 48), (64, 96)]
    assert out["pred"].min() >= 0 and out["pred"].max() <= 1


def test_unknown_name_and_keys_are_clear():
    with pytest.raises(ValueError, match="unknown Model.name 'InSPyReNet_Foo'.*InSPyReNet_SwinB"):
        build_model({"name": "InSPyReNet_Foo"})
    with pytest.raises(ValueError, match=r"unknown Model keys \['detph'\]"):
        build_model({"name": "InSPyReNet_SwinB", "detph": 64})
    with pytest.raises(ValueError, match="Model.backbone for InSPyReNet_SwinB"):
        build_model({"name": "InSPyReNet_SwinB", "backbone": {"embed_dims": 3}})


def test_missing_pretrained_weights_name_path_and_install_option(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_model({"name": "InSPyReNet_Res2Net50", "pretrained": True}, backbone_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "res2net50_v1b_26w_4s-3cf99910.pth") in message
    assert "install.sh --only Res2Net50" in message
    assert BACKBONE_DIR.parts[-2:] == ("data", "backbone_ckpt")


def test_pretrained_res2net_weights_load_strictly_ignoring_fc(tmp_path):
    small = {"layers": [1, 1, 1, 3], "base_width": 4}
    source = build_model({"name": "InSPyReNet_Res2Net50", "backbone": small})
    state = {k: v + 0.5 for k, v in source.backbone.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(state, tmp_path / "res2net50_v1b_26w_4s-3cf99910.pth")
    model = load_model(
        {"name": "InSPyReNet_Res2Net50", "pretrained": True, "backbone": small},
        backbone_dir=tmp_path,
    )
    assert torch.equal(model.backbone.conv1[0].weight, state["conv1.0.weight"])


def test_pretrained_swin_weights_load_non_strictly_from_model_key(tmp_path):
    small = SMALL_BACKBONES["SwinTransformer"]
    source = build_model({"name": "InSPyReNet_SwinB", "backbone": small})
    state = {k: v for k, v in source.backbone.state_dict().items() if not k.startswith("norm")}
    state["head.weight"], state["norm.weight"] = torch.zeros(1000, 128), torch.ones(128)
    state["patch_embed.proj.bias"] = torch.full((16,), 0.25)
    torch.save({"model": state}, tmp_path / "swin_base_patch4_window12_384_22kto1k.pth")
    model = load_model(
        {"name": "InSPyReNet_SwinB", "pretrained": True, "backbone": small},
        backbone_dir=tmp_path,
    )
    assert torch.equal(model.backbone.patch_embed.proj.bias, torch.full((16,), 0.25))
    assert torch.equal(model.backbone.norm0.weight, torch.ones(16))  # keeps its default


def test_forward_switching_follows_the_reference():
    """A fresh model infers; train() and train(False) train; only eval() infers (checklist 12)."""
    small = SMALL_BACKBONES["Res2Net"]
    model = build_model({"name": "InSPyReNet_Res2Net50", "depth": 8, "backbone": small})
    x = torch.randn(2, 3, 64, 64)
    gt = (torch.rand(2, 1, 64, 64) > 0.5).float()
    assert model({"image": x, "gt": gt})["loss"] == 0  # inference path: no loss
    assert model.train(False)({"image": x, "gt": gt})["loss"] > 0
    assert model.train()({"image": x, "gt": gt})["loss"] > 0
    assert model.eval()({"image": x, "gt": gt})["loss"] == 0


def test_pyramid_blending_without_image_resized_is_a_clear_error():
    small = SMALL_BACKBONES["Res2Net"]
    model = build_model(
        {"name": "InSPyReNet_Res2Net50", "depth": 8, "backbone": small, "threshold": 32}
    ).eval()
    with pytest.raises(ValueError, match="needs sample\\['image_resized'\\]"):
        model({"image": torch.randn(1, 3, 64, 64)})
