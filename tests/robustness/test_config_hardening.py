"""Hostile and careless configs (issue "Reliability II"): each is refused at load, by
utils.config (and data.transforms.CONFIG_CHECKS), with one line naming the file and the dotted
key, and each script ends with exit status 2 and that one ``error:`` line.

* an alias bomb ("billion laughs": anchors nested a few levels), in the file or in --opts, a
  recursive alias and nesting too deep: safe_load builds shared objects quickly, and only
  writing the effective config out (save_config) expanded them, so Train hung;
* a key given twice (YAML silently kept the last value);
* a FIFO or a folder as --config (a FIFO blocked forever) and a file over 1 MiB;
* numbers out of range (batch_size 0, base_size [0, 0] or [100000, 100000], depth 0, lr inf or
  nan...), which ended in tracebacks deep in training;
* a misspelt transform name (``random_flipp``).

Expected messages and ranges come from utils/config.py (its docstring and SCHEMA) and README's
"What happens when things go wrong". Every config is the tiny config with one change, written on
the fly; its data and output folders point into the test's temporary folder and do not exist, so
a run that got past its config would fail rather than train or write anything. Runs that could
block (a FIFO) or run away (a regression) run in a thread with a timeout, so they fail instead of
hanging the suite.
"""

import math
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import Expr
from run import Inference, Test, Train
from utils.config import SCHEMA, ConfigError, Key, describe_schema, dump_config, load_config

ROOT = Path(__file__).resolve().parents[2]
TINY = (ROOT / "configs" / "InSPyReNet_Tiny.yaml").read_text(encoding="utf-8")
TIMEOUT = 120  # seconds: a config error takes well under one; only a hang gets near this
BACKBONE = "  backbone:\n    layers: [1, 1, 1, 3]\n    base_width: 4\n"
TRAIN_FLIP = "      random_flip:\n        lr: True\n"
TEST_NUMPY = "      totensor: NULL\n  Dataloader:\n    num_workers: 0\n    pin_memory: False\n"


def tiny(tmp_path: Path, old: str = "", new: str = "", name: str = "config.yaml") -> Path:
    """The tiny config with ``old`` replaced by ``new``, its folders moved into ``tmp_path``."""
    assert TINY.count(old) == 1 or not old, old
    text = TINY.replace(old, new) if old else TINY
    for folder in ("data/synthetic/Train_Dataset", "data/synthetic/Test_Dataset"):
        text = text.replace(folder, str(tmp_path / "missing" / Path(folder).name))
    text = text.replace("snapshots/InSPyReNet_Tiny", str(tmp_path / "snapshots"))
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def bomb(levels: int, indent: int) -> str:
    """YAML lines of a billion-laughs mapping: 10**levels values once aliases are expanded."""
    pad = " " * indent
    lines = [f"{pad}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"{pad}l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def flow_bomb(levels: int) -> str:
    """The same as one flow mapping, as an --opts value."""
    items = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    items += [f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, levels)]
    return "{" + ", ".join(items) + "}"


def error_of(path: Path, overrides=(), **kwargs) -> str:
    """The one-line ConfigError message of loading ``path``; it names the file."""
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides), **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message


def in_thread(call: Callable[[], object], unblock: Callable[[], None] = lambda: None):
    """``call()``'s result, failing (after ``unblock()``, which should free it) when it does not
    return within TIMEOUT seconds."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = call()
        except BaseException as error:  # handed to the test below
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        unblock()
        thread.join(TIMEOUT)
        pytest.fail(f"still running after {TIMEOUT} s: it blocked")
    if "error" in result:
        raise result["error"]
    return result["value"]


def unblock_fifo(fifo: Path) -> Callable[[], None]:
    """Opening the FIFO for writing and closing it gives a reader blocked on it end-of-file."""

    def unblock() -> None:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader is waiting
            pass

    return unblock


# ------------------------------------------------------------------------------------------------
# 1. aliases: bombs, recursion, nesting


def test_alias_bomb_in_a_free_form_key_is_refused_at_load(tmp_path):
    config = tiny(tmp_path, BACKBONE, BACKBONE + bomb(9, 4))  # 10**9 values expanded
    message = in_thread(lambda: error_of(config))
    # l0..l3 hold 11, 111, 1111, 11111 values (lists count): l3, 6 lines below "backbone:", is
    # the first past 10,000
    line = TINY[: TINY.index(BACKBONE)].count("\n") + 1 + 6
    assert message == (
        f"{config}: Model.backbone.l3 (line {line}): more than 10000 values once YAML aliases "
        "are expanded (an alias bomb?); a config needs far fewer"
    )


def test_alias_bomb_in_an_override_is_refused(tmp_path):
    config = tiny(tmp_path)
    message = in_thread(lambda: error_of(config, [f"Model.backbone={flow_bomb(9)}"]))
    assert "--opts: Model.backbone.l3 (line 1): more than 10000 values" in message


def test_merge_key_bomb_is_refused(tmp_path):
    # "<<" merges repeated through aliases: PyYAML flattens them into ever longer lists
    lines = ["    m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    for level in range(1, 5):
        lines.append(f"    m{level}: &m{level} {{<<: [" + ", ".join([f"*m{level - 1}"] * 10) + "]}")
    config = tiny(tmp_path, BACKBONE, BACKBONE + "\n".join(lines) + "\n")
    message = in_thread(lambda: error_of(config))
    assert "Model.backbone.m" in message and "more than 10000 values" in message


def test_anchors_within_the_bound_still_work(tmp_path):
    text = ("  base_size: [96, 96]\n", "  base_size: &side [96, 96]\n")
    config = tiny(tmp_path, *text)
    path = config.read_text(encoding="utf-8").replace("size: [96, 96]", "size: *side")
    config.write_text(path, encoding="utf-8")
    cfg = load_config(config)
    assert cfg["Train"]["Dataset"]["transforms"]["static_resize"] == {"size": [96, 96]}
    assert cfg["Test"]["Dataset"]["transforms"]["static_resize"] == {"size": [96, 96]}
    assert "&" not in dump_config(cfg)  # written out plainly


def test_recursive_alias_is_refused(tmp_path):
    config = tiny(tmp_path, BACKBONE, BACKBONE + "    loop: &loop [1, *loop]\n")
    message = in_thread(lambda: error_of(config))
    assert message.startswith(f"{config}: Model.backbone.loop[1] (line ")
    assert "an alias refers to the value that contains it" in message


@pytest.mark.parametrize("levels", [40, 2000])
def test_nesting_too_deep_is_refused(tmp_path, levels):
    # 40 levels: past utils.config.MAX_DEPTH (32); 2000: past PyYAML's own recursion
    deep = "    deep: " + "[" * levels + "]" * levels + "\n"
    message = in_thread(lambda: error_of(tiny(tmp_path, BACKBONE, BACKBONE + deep)))
    assert "nested more than 32 levels deep" in message


# ------------------------------------------------------------------------------------------------
# 2. duplicate keys


def test_duplicate_key_names_both_lines_and_the_dotted_key(tmp_path):
    old = "    lr: 3.0e-04"
    config = tiny(tmp_path, old, old + "\n    weight_decay: 0.0\n    lr: 1.0e-02")
    first = TINY[: TINY.index(old)].count("\n") + 1
    message = error_of(config)
    assert message == (
        f"{config}: Train.Optimizer.lr: key given twice, at lines {first} and {first + 2} "
        "(YAML would silently keep the last); remove one"
    )


def test_duplicate_section_and_duplicate_in_an_override(tmp_path):
    config = tiny(tmp_path, "Eval:\n", "Model:\n  depth: 8\n\nEval:\n")
    assert f"{config}: Model: key given twice, at lines 3 and " in error_of(config)
    message = error_of(tiny(tmp_path), ["Model.backbone={layers: [1, 1, 1, 3], layers: [2]}"])
    assert "--opts: Model.backbone.layers: key given twice, at lines 1 and 1" in message


# ------------------------------------------------------------------------------------------------
# 3. what --config may be


def test_fifo_config_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    message = in_thread(lambda: error_of(fifo), unblock_fifo(fifo))
    assert message == f"{fifo}: config is a FIFO (named pipe), not a regular file"


def test_folder_and_oversized_configs_are_refused(tmp_path):
    assert error_of(tmp_path) == f"{tmp_path}: config is a folder, not a file"
    padding = "# " + "x" * 1000 + "\n"
    big = tiny(tmp_path, "Eval:\n", padding * 1100 + "Eval:\n")  # ~1.1 MB of comments
    assert big.stat().st_size > 1 << 20
    assert "config is larger than 1048576 bytes (1 MiB)" in error_of(big)
    just_under = tiny(tmp_path, "Eval:\n", padding * 1000 + "Eval:\n", name="ok.yaml")
    assert load_config(just_under)["Eval"]["datasets"] == ["Synth-TE"]


# ------------------------------------------------------------------------------------------------
# 4. ranges

OUT_OF_RANGE = [
    ("Train.Dataloader.batch_size", "0", "an integer >= 1"),
    ("Train.Dataloader.batch_size", "-4", "an integer >= 1"),
    ("Model.base_size", "[0, 0]", "a pair, each a multiple of 32 in 32..4096"),
    ("Model.base_size", "[-96, -96]", "a pair, each a multiple of 32 in 32..4096"),
    ("Model.base_size", "[100000, 100000]", "a pair, each a multiple of 32 in 32..4096"),
    ("Model.base_size", "[100, 96]", "a pair, each a multiple of 32 in 32..4096"),
    ("Model.depth", "0", "an integer >= 1"),
    ("Model.threshold", "-1", "an integer >= 0 or null"),
    ("Model.PM.patch_size", "100", "a multiple of 32 in 32..4096"),
    ("Model.PM.stride", "0", "a multiple of 32 in 32..4096"),
    ("Train.Optimizer.lr", ".inf", "a finite number > 0"),
    ("Train.Optimizer.lr", ".nan", "a finite number > 0"),
    ("Train.Optimizer.lr", "1e999", "a finite number > 0"),
    ("Train.Optimizer.lr", "1" + "0" * 400, "a finite number > 0"),
    ("Train.Optimizer.lr", "0", "a finite number > 0"),
    ("Train.Optimizer.lr", "-1.0e-5", "a finite number > 0"),
    ("Train.Optimizer.weight_decay", "-0.1", "a finite number >= 0"),
    ("Train.Optimizer.weight_decay", ".inf", "a finite number >= 0"),
    ("Train.Scheduler.epoch", "0", "an integer >= 1"),
    ("Train.Scheduler.gamma", ".nan", "a finite number >= 0"),
    ("Train.Scheduler.minimum_lr", "-1.0e-7", "a finite number >= 0"),
    ("Train.Scheduler.warmup_iteration", "-1", "an integer >= 0"),
    ("Train.Dataloader.num_workers", "-1", "an integer >= 0"),
    ("Test.Dataloader.num_workers", "-2", "an integer >= 0"),
    ("Train.Checkpoint.checkpoint_epoch", "0", "an integer >= 1"),
    ("Train.seed", "-1", "an integer in 0..4294967295 or null"),
    ("Train.seed", str(2**32), "an integer in 0..4294967295 or null"),
    ("Train.seed", "1" + "0" * 400, "an integer in 0..4294967295 or null"),
]


@pytest.mark.parametrize(("dotted", "value", "allowed"), OUT_OF_RANGE)
def test_out_of_range_override_names_key_and_range(tmp_path, dotted, value, allowed):
    message = error_of(tiny(tmp_path), [f"{dotted}={value}"])
    assert f": {dotted} must be {allowed}, got " in message
    assert message.endswith("(set by --opts)")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    batch_size: 4",
            "    batch_size: 0",
            "Train.Dataloader.batch_size must be an integer",
        ),
        (
            "    lr: 3.0e-04",
            "    lr: .inf",
            "Train.Optimizer.lr must be a finite number > 0, got inf",
        ),
        (
            "    lr: 3.0e-04",
            "    lr: nan",
            "Train.Optimizer.lr must be a finite number > 0, got 'nan'",
        ),
        ("  depth: 16", "  depth: 0", "Model.depth must be an integer >= 1, got 0"),
        ("  base_size: [96, 96]", "  base_size: [0, 0]", "Model.base_size must be a pair, each"),
    ],
)
def test_out_of_range_in_the_file(tmp_path, old, new, expected):
    config = tiny(tmp_path, old, new)
    assert error_of(config).startswith(f"{config}: {expected}")


def test_range_edges_are_accepted(tmp_path):
    cfg = load_config(
        tiny(tmp_path),
        [
            "Train.Dataloader.batch_size=1",
            "Model.base_size=[32, 4096]",
            "Model.threshold=0",
            "Model.PM.stride=32",
            "Train.Optimizer.lr=1e-12",
            "Train.Optimizer.weight_decay=0",
            "Train.Scheduler.gamma=0",
            "Train.Scheduler.warmup_iteration=0",
            f"Train.seed={2**32 - 1}",
        ],
    )
    assert cfg["Model"]["base_size"] == [32, 4096] and cfg["Train"]["seed"] == 2**32 - 1


NUMERIC = ("int", "float", "int_pair")


def _leaves(node: dict, prefix: str = ""):
    for key, spec in node.items():
        if isinstance(spec, dict):
            yield from _leaves(spec, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", spec


def test_every_number_has_its_range_in_the_schema_and_the_help():
    numeric = {dotted: spec for dotted, spec in _leaves(SCHEMA) if spec.kind in NUMERIC}
    assert len(numeric) == 18  # the brief's list, num_workers twice, seed, Validation (2)
    help_text = describe_schema()
    for dotted, spec in numeric.items():
        assert isinstance(spec, Key) and spec.range is not None, dotted
        default = spec.default if isinstance(spec.default, list) else [spec.default]
        assert all(spec.range.allows(v) for v in default if isinstance(v, int | float)), dotted
        assert str(spec.range) in help_text, dotted
    assert "batch_size: REQUIRED  # images per batch (per process under DDP) [an integer >= 1]" in (
        help_text
    )
    assert not SCHEMA["Train"]["Optimizer"]["lr"].range.allows(math.inf)


# ------------------------------------------------------------------------------------------------
# 5. transform names


@pytest.mark.parametrize("split", ["Train", "Test"])
def test_misspelt_transform_is_refused_at_load_with_a_suggestion(tmp_path, split):
    from data.transforms import CONFIG_CHECKS

    old, right, wrong = {
        "Train": (TRAIN_FLIP, "random_flip", "random_flipp"),
        "Test": (TEST_NUMPY, "totensor", "totensr"),
    }[split]
    config = tiny(tmp_path, old, old.replace(right, wrong))
    message = error_of(config, checks=CONFIG_CHECKS)
    assert message.startswith(
        f"{config}: {split}.Dataset.transforms: unknown transform '{wrong}' "
        f"(did you mean {right}?); valid names: "
    )


def test_bad_transform_argument_is_refused_at_load(tmp_path):
    from data.transforms import CONFIG_CHECKS

    config = tiny(tmp_path, TRAIN_FLIP, TRAIN_FLIP.replace("True", "maybe"))
    message = error_of(config, checks=CONFIG_CHECKS)
    assert f"{config}: Train.Dataset.transforms: transform 'random_flip': lr and ud" in message


def test_checks_must_name_schema_keys(tmp_path):
    with pytest.raises(ValueError, match="not a key of the schema"):
        load_config(tiny(tmp_path), checks={"Train.Dataset.transform": print})


# ------------------------------------------------------------------------------------------------
# 6. the scripts: exit status 2 and one line

SCRIPTS = {
    "Train": (Train.main, ["--no-progress"]),
    "Test": (Test.main, ["--no-progress"]),
    "Inference": (Inference.main, ["--source", "missing.png"]),
    "Expr": (Expr.main, ["--no-progress"]),
}


def _case_bomb(tmp_path):
    # transforms_PM is read by no script unless --PM: Train saved it and hung expanding it
    old = "    sets: ['Synth-TE']\n"
    config = tiny(tmp_path, old, old + "    transforms_PM:\n" + bomb(6, 6))
    return config, [], "Test.Dataset.transforms_PM.l3 (line "


def _case_duplicate(tmp_path):
    config = tiny(tmp_path, "  depth: 16\n", "  depth: 16\n  depth: 64\n")
    return config, [], "Model.depth: key given twice, at lines 5 and 6"


def _case_fifo(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    return fifo, [], "config is a FIFO (named pipe), not a regular file"


def _case_batch_size(tmp_path):
    return tiny(tmp_path, "    batch_size: 4", "    batch_size: 0"), [], "batch_size must be"


def _case_base_size(tmp_path):
    return tiny(tmp_path), ["--opts", "Model.base_size=[0,0]"], "Model.base_size must be a pair"


def _case_depth(tmp_path):
    return tiny(tmp_path, "  depth: 16", "  depth: 0"), [], "Model.depth must be an integer >= 1"


def _case_lr(tmp_path):
    config = tiny(tmp_path, "    lr: 3.0e-04", "    lr: .inf")
    return config, [], "Train.Optimizer.lr must be a finite number > 0, got inf"


def _case_train_transform(tmp_path):
    config = tiny(tmp_path, TRAIN_FLIP, TRAIN_FLIP.replace("random_flip", "random_flipp"))
    return config, [], "Train.Dataset.transforms: unknown transform 'random_flipp' (did you mean"


def _case_test_transform(tmp_path):
    return (
        tiny(tmp_path),
        ["--opts", "Test.Dataset.transforms.tonumpi=null"],
        "Test.Dataset.transforms: unknown transform 'tonumpi' (did you mean tonumpy?)",
    )


CASES = {
    "alias_bomb": _case_bomb,
    "duplicate_key": _case_duplicate,
    "fifo": _case_fifo,
    "batch_size_0": _case_batch_size,
    "base_size_0": _case_base_size,
    "depth_0": _case_depth,
    "lr_inf": _case_lr,
    "train_transform": _case_train_transform,
    "test_transform": _case_test_transform,
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_end_with_status_2_and_one_error_line(tmp_path, run_script, script, case):
    main, extra = SCRIPTS[script]
    config, opts, phrase = CASES[case](tmp_path)
    argv = ["--config", str(config), "--device", "cpu", *extra, *opts]
    run = in_thread(lambda: run_script(main, argv), unblock_fifo(config))
    errors = [line for line in run.lines if line.startswith("error: ")]
    assert run.status == 2, run.lines
    assert errors == run.lines[-1:] and errors[0].startswith(f"error: {config}: "), run.lines
    assert phrase in errors[0]
    assert not (tmp_path / "snapshots").exists()  # nothing was written
