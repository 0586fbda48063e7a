"""Each bad checkpoint gets one clear error naming the file (never a deep torch traceback)."""

import pickle

import pytest
import torch

from lib import CheckpointError, build_model
from tests.lib.conftest import tiny_model_cfg
from utils.io.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def tiny_model():
    return build_model(tiny_model_cfg("tiny_res2net"))


def test_missing_file(tiny_model, tmp_path):
    with pytest.raises(CheckpointError, match="not found") as info:
        load_checkpoint(tiny_model, tmp_path / "nope.pth")
    assert "nope.pth" in str(info.value)


def test_truncated_file(tiny_model, tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(tiny_model.state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_checkpoint(tiny_model, path)
    assert str(path) in str(info.value)


def test_not_a_checkpoint(tiny_model, tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.pth"):
        load_checkpoint(tiny_model, path)
    listed = tmp_path / "list.pth"
    torch.save([1, 2, 3], listed)
    with pytest.raises(CheckpointError, match="not a checkpoint: it holds a list"):
        load_checkpoint(tiny_model, listed)


class _RunsCode:
    """Unpickling this calls open(marker, 'w'): it would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_would_run_code_is_refused_without_running(tiny_model, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"weight": _RunsCode(marker)}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(tiny_model, path)
    message = str(info.value)
    assert "evil.pth" in message and "io.open" in message  # names what it tried to load
    assert "\n" not in message and "\x1b" not in message  # one plain line
    assert not marker.exists(), "the pickle's code ran"
    # Sanity: the payload really does run code when unpickled unsafely.
    with open(path, "rb") as handle:
        pickle.load(handle)
    assert marker.exists()


def test_checkpoint_of_another_model(tiny_model, tmp_path):
    other = build_model(tiny_model_cfg("tiny_swin"))
    path = tmp_path / "swin.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tiny_model, path)
    message = str(info.value)
    assert "swin.pth" in message and "InSPyReNet_Res2Net50" in message
    assert "missing keys (first: backbone.conv1.0.weight" in message
    assert "unexpected keys (first: backbone.patch_embed" in message


def test_shape_mismatch_is_named(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    state["decoder.conv5.conv.weight"] = torch.zeros(1, 3, 3, 3)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"decoder.conv5.conv.weight \(1, 3, 3, 3\) vs model"):
        load_checkpoint(tiny_model, path)
