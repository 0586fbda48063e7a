"""utils.config: schema defaults, clear errors, overrides, the shipped configs, saving."""

import argparse
from pathlib import Path

import pytest

from utils.config import (
    SCHEMA,
    ConfigError,
    add_config_arguments,
    config_from_args,
    describe_schema,
    load_config,
    save_config,
)

ROOT = Path(__file__).resolve().parents[2]
FULL_CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SOTA_CONFIGS = sorted((ROOT / "configs" / "SotA").glob("*.yaml"))

MINIMAL = """\
Model:
  name: "InSPyReNet_SwinB"
Train:
  Dataset:
    root: "data/train"
    sets: ['DUTS-TR']
    transforms:
      static_resize: {size: [384, 384]}
      tonumpy: NULL
  Dataloader:
    batch_size: 6
  Scheduler:
    epoch: 60
  Checkpoint:
    checkpoint_dir: "snapshots/x"
"""


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, overrides=None, require=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides, require=require)
    message = str(info.value)
    assert "\n" not in message  # one line
    assert message.startswith(f"{path}: ")  # names the file
    return message


# ------------------------------------------------------------------------------------------------
# the shipped configs


@pytest.mark.parametrize("path", FULL_CONFIGS, ids=lambda p: p.name)
def test_full_configs_load(path):
    cfg = load_config(path, require=("Model", "Train", "Test", "Eval"))
    name = path.stem
    assert cfg["Train"]["Checkpoint"]["checkpoint_dir"] == f"snapshots/{name}"
    assert cfg["Test"]["Checkpoint"]["checkpoint_dir"] == f"snapshots/{name}"
    assert cfg["Eval"]["pred_root"] == f"snapshots/{name}"
    assert cfg["Eval"]["gt_root"] == cfg["Test"]["Dataset"]["root"]
    assert cfg["Eval"]["datasets"] == cfg["Test"]["Dataset"]["sets"]
    assert cfg["Eval"]["result_path"] == "results"


@pytest.mark.parametrize("path", SOTA_CONFIGS, ids=lambda p: p.name)
def test_sota_configs_are_eval_only(path):
    cfg = load_config(path, require=("Eval",))
    assert list(cfg) == ["Eval"]
    assert cfg["Eval"]["pred_root"] == f"data/pre_computed/{path.stem}"
    assert "DUTS-TE" in cfg["Eval"]["datasets"]


def test_sota_methods_present():
    names = {path.stem for path in SOTA_CONFIGS}
    expected = "BASNet CPD EGNet F3Net GateNet LDF MINet PA_KRN PoolNet VST".split()
    assert names == set(expected)


def test_swinb_recipe_matches_spec():
    # architecture.md §15.2-15.4 and §16.1
    cfg = load_config(ROOT / "configs" / "InSPyReNet_SwinB.yaml")
    train = cfg["Train"]
    assert list(train["Dataset"]["transforms"]) == [
        "static_resize",
        "random_scale_crop",
        "random_flip",
        "random_rotate",
        "random_image_enhance",
        "tonumpy",
        "normalize",
        "totensor",
    ]
    assert train["Dataset"]["transforms"]["static_resize"] == {"size": [384, 384]}
    assert train["Dataset"]["transforms"]["normalize"]["std"] == [0.229, 0.224, 0.225]
    assert train["Dataset"]["sets"] == ["DUTS-TR"]
    assert train["Dataloader"]["batch_size"] == 6 and train["Scheduler"]["epoch"] == 60
    assert train["Optimizer"] == {
        "type": "Adam",
        "lr": 1e-5,
        "weight_decay": 0.0,
        "mixed_precision": False,
    }
    assert train["Scheduler"]["gamma"] == 0.9 and train["Scheduler"]["minimum_lr"] == 1e-7
    assert train["Scheduler"]["warmup_iteration"] == 12000
    assert cfg["Test"]["Dataset"]["transforms"]["dynamic_resize"] == {"L": 1280}
    assert len(cfg["Test"]["Dataset"]["sets"]) == 8
    assert cfg["Model"]["threshold"] == 512 and cfg["Model"]["PM"]["stride"] == 96


def test_res2net_tests_static_and_hr_is_1024():
    res2net = load_config(ROOT / "configs" / "InSPyReNet_Res2Net50.yaml")
    assert res2net["Model"]["threshold"] is None and res2net["Model"]["PM"]["stride"] == 192
    assert res2net["Test"]["Dataset"]["transforms"]["static_resize"] == {"size": [384, 384]}
    hr = load_config(ROOT / "configs" / "InSPyReNet_SwinB_HR.yaml")
    assert hr["Model"]["base_size"] == [1024, 1024] and hr["Model"]["threshold"] is None
    assert hr["Train"]["Dataset"]["transforms"]["static_resize"] == {"size": [1024, 1024]}
    assert hr["Train"]["Dataloader"]["batch_size"] == 1
    assert hr["Test"]["Dataset"]["transforms"]["dynamic_resize"] == {"L": 1280}


def test_tiny_config():
    cfg = load_config(ROOT / "configs" / "InSPyReNet_Tiny.yaml")
    assert cfg["Model"] == {
        "name": "InSPyReNet_Res2Net50",
        "depth": 16,
        "pretrained": False,
        "base_size": [96, 96],
        "threshold": None,
        "PM": {"patch_size": 96, "stride": 32},
        "backbone": {"layers": [1, 1, 1, 3], "base_width": 4},
        "precision": "fp32",
    }
    assert cfg["Train"]["Dataset"]["root"] == "data/synthetic/Train_Dataset"
    assert cfg["Train"]["Dataset"]["sets"] == ["Synth-TR"]
    assert cfg["Train"]["Dataloader"]["num_workers"] == 0
    assert cfg["Test"]["Dataset"]["sets"] == ["Synth-TE"]


def test_every_schema_key_has_a_comment():
    text = describe_schema()
    for line in text.splitlines():
        if not line.rstrip().endswith(":"):  # leaves, not section headers
            assert "  # " in line, line
    assert "lr: 1.0e-05" in text and "name: REQUIRED" in text
    assert set(SCHEMA) == {"Model", "Train", "Test", "Eval"}


# ------------------------------------------------------------------------------------------------
# defaults and errors


def test_defaults_are_filled_in(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), require=("Model", "Train"))
    assert cfg["Model"]["depth"] == 64 and cfg["Model"]["threshold"] == 512
    assert cfg["Model"]["backbone"] == {} and cfg["Model"]["precision"] == "fp32"
    assert cfg["Train"]["Optimizer"]["lr"] == 1e-5
    assert cfg["Train"]["Debug"]["keys"] == ["saliency", "laplacian"]
    assert cfg["Train"]["seed"] is None
    assert "Test" not in cfg and "Eval" not in cfg


def test_misspelt_key_names_dotted_path_and_suggestion(tmp_path):
    path = write(tmp_path, MINIMAL + "  Optimizer:\n    lrr: 1.0e-4\n")
    message = error_of(path)
    assert "unknown key Train.Optimizer.lrr (did you mean lr?)" in message


def test_misspelt_section(tmp_path):
    message = error_of(write(tmp_path, MINIMAL.replace("Dataloader:", "Dataloder:")))
    assert "unknown key Train.Dataloder (did you mean Dataloader?)" in message
    message = error_of(write(tmp_path, "Evall:\n  gt_root: x\n"))
    assert "unknown key Evall (did you mean Eval?)" in message


def test_missing_required_key(tmp_path):
    message = error_of(write(tmp_path, MINIMAL.replace("    epoch: 60\n", "    gamma: 0.9\n")))
    assert "missing required key Train.Scheduler.epoch" in message
    message = error_of(write(tmp_path, MINIMAL.replace('  name: "InSPyReNet_SwinB"\n', "")))
    assert "missing required key Model.name" in message


def test_required_sections(tmp_path):
    path = write(tmp_path, MINIMAL)
    message = error_of(path, require=("Model", "Eval"))
    assert "missing section Eval" in message


def test_type_errors(tmp_path):
    message = error_of(write(tmp_path, MINIMAL.replace("batch_size: 6", "batch_size: six")))
    assert "Train.Dataloader.batch_size must be an integer, got str 'six'" in message
    message = error_of(write(tmp_path, MINIMAL.replace("batch_size: 6", "batch_size: 6.0")))
    assert "Train.Dataloader.batch_size must be an integer" in message
    bad_bool = MINIMAL.replace("batch_size: 6", "batch_size: 6\n    shuffle: 'yes'")
    assert "Train.Dataloader.shuffle must be true or false" in error_of(write(tmp_path, bad_bool))
    bad_pair = MINIMAL.replace('name: "InSPyReNet_SwinB"', 'name: "X"\n  base_size: [384]')
    assert "Model.base_size must be a list of two integers" in error_of(write(tmp_path, bad_pair))
    bad_choice = MINIMAL.replace('name: "InSPyReNet_SwinB"', 'name: "X"\n  precision: fp61')
    assert "Model.precision must be one of fp32, bf16, fp16" in error_of(
        write(tmp_path, bad_choice)
    )
    bad_transforms = MINIMAL.replace("tonumpy: NULL", "tonumpy: 3")
    assert "Train.Dataset.transforms must be a mapping" in error_of(write(tmp_path, bad_transforms))


def test_float_without_dot_is_accepted(tmp_path):
    # YAML 1.1 reads 1e-4 (no dot) as a string; float keys accept it
    path = write(tmp_path, MINIMAL + "  Optimizer:\n    lr: 1e-4\n    weight_decay: 0\n")
    cfg = load_config(path)
    assert cfg["Train"]["Optimizer"]["lr"] == 1e-4
    assert isinstance(cfg["Train"]["Optimizer"]["weight_decay"], float)


def test_unreadable_files(tmp_path):
    assert "config file not found" in error_of(tmp_path / "absent.yaml")
    message = error_of(write(tmp_path, "Model:\n  name: [unclosed\n"))
    assert "invalid YAML at line" in message
    assert "top level must be a mapping" in error_of(write(tmp_path, "- a\n- b\n"))


def test_transforms_keep_their_order(tmp_path):
    text = MINIMAL.replace(
        "      static_resize: {size: [384, 384]}\n      tonumpy: NULL\n",
        "      totensor: NULL\n      tonumpy: NULL\n      static_resize: {size: [8, 8]}\n",
    )
    cfg = load_config(write(tmp_path, text))
    assert list(cfg["Train"]["Dataset"]["transforms"]) == ["totensor", "tonumpy", "static_resize"]


# ------------------------------------------------------------------------------------------------
# overrides


def test_overrides_parse_floats_ints_lists_and_null(tmp_path):
    cfg = load_config(
        ROOT / "configs" / "InSPyReNet_SwinB.yaml",
        [
            "Train.Optimizer.lr=2e-5",
            "Train.Scheduler.epoch=1",
            "Test.Dataset.sets=[DUTS-TE,ECSSD]",
            "Model.threshold=null",
            "Model.base_size=[512, 512]",
            "Train.Dataloader.shuffle=false",
            "Test.Dataset.transforms.dynamic_resize.L=640",
            "Eval.datasets=ECSSD",
        ],
    )
    assert cfg["Train"]["Optimizer"]["lr"] == 2e-5
    assert cfg["Train"]["Scheduler"]["epoch"] == 1
    assert cfg["Test"]["Dataset"]["sets"] == ["DUTS-TE", "ECSSD"]
    assert cfg["Model"]["threshold"] is None
    assert cfg["Model"]["base_size"] == [512, 512]
    assert cfg["Train"]["Dataloader"]["shuffle"] is False
    assert cfg["Test"]["Dataset"]["transforms"]["dynamic_resize"] == {"L": 640}
    assert cfg["Eval"]["datasets"] == ["ECSSD"]  # a single name becomes a one-item list


def test_override_can_add_a_section(tmp_path):
    path = write(tmp_path, MINIMAL)
    cfg = load_config(
        path,
        ["Eval.gt_root=a", "Eval.pred_root=b", "Eval.datasets=[X]", "Eval.metrics=[Sm]"],
        require=("Eval",),
    )
    assert cfg["Eval"] == {
        "gt_root": "a",
        "pred_root": "b",
        "result_path": "results",
        "datasets": ["X"],
        "metrics": ["Sm"],
    }


def test_override_errors(tmp_path):
    path = write(tmp_path, MINIMAL)
    message = error_of(path, ["Train.Optimizer.lrr=1"])
    assert "unknown key Train.Optimizer.lrr (did you mean lr?)" in message
    assert "unknown key Nope.x" in error_of(path, ["Nope.x=1"])
    assert "Train.Optimizer.lr.x" in error_of(path, ["Train.Optimizer.lr.x=1"])
    assert "is a section, not a key" in error_of(path, ["Train.Optimizer=1"])
    assert "must look like KEY=VALUE" in error_of(path, ["Train.Optimizer.lr"])
    message = error_of(path, ["Train.Scheduler.epoch=abc"])
    assert "Train.Scheduler.epoch must be an integer, got str 'abc' (set by --opts)" in message
    assert "cannot parse value" in error_of(path, ["Train.Dataset.sets=[a, b"])


def test_overrides_are_never_evaluated(tmp_path):
    path = write(tmp_path, MINIMAL)
    cfg = load_config(path, ["Train.Checkpoint.checkpoint_dir=__import__('os').getcwd()"])
    assert cfg["Train"]["Checkpoint"]["checkpoint_dir"] == "__import__('os').getcwd()"


def test_argparse_helpers(tmp_path):
    path = write(tmp_path, MINIMAL)
    parser = add_config_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        ["--config", str(path), "--opts", "Train.Scheduler.epoch=3", "Model.depth=32"]
    )
    cfg = config_from_args(args, require=("Model",))
    assert cfg["Train"]["Scheduler"]["epoch"] == 3 and cfg["Model"]["depth"] == 32
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --config is required


def test_save_config_round_trip(tmp_path):
    cfg = load_config(ROOT / "configs" / "InSPyReNet_Tiny.yaml", ["Train.Optimizer.lr=3e-4"])
    out = tmp_path / "snap" / "config.yaml"
    save_config(cfg, out)
    assert load_config(out) == cfg
    assert list(out.parent.iterdir()) == [out]  # atomic write left no temporary file
