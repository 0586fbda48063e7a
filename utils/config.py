"""The project's one config loader: a YAML file + ``KEY=VALUE`` overrides, checked against a schema.

Usage from a script::

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)            # --config PATH (required), --opts KEY=VALUE ...
    cfg = config_from_args(parser.parse_args(), require=("Model", "Test"))

    cfg = load_config("configs/InSPyReNet_SwinB.yaml", ["Train.Optimizer.lr=2e-5"])

``python -m utils.config`` prints the defaults tree below as commented YAML.

Rules:

* :data:`SCHEMA` is the single defaults tree; every key has a comment (its ``doc``). A config file
  lists only what differs; the loader fills in the rest. Key names are the authors' (seed) names,
  so existing InSPyReNet configs load unchanged.
* A section (``Model``, ``Train``, ``Test``, ``Eval``) may be left out of a file; a script names
  the sections it needs with ``require=``. An evaluation-only config (``configs/SotA/*.yaml``) has
  just ``Eval``. Absent sections are absent from the returned dict.
* Any problem (unknown key, missing required key, wrong type, out-of-range number, bad
  override, unreadable YAML) raises :class:`ConfigError` with one line naming the file and the
  dotted key.
* Numbers are range-checked at load by the schema itself (each :class:`Key`'s :class:`Range`,
  shown by ``python -m utils.config``): e.g. ``batch_size >= 1``, ``lr`` a finite number > 0,
  ``base_size`` two multiples of 32 in 32..4096. Float keys never take nan or inf.
* The layers above add their registries' checks with ``checks=`` (dotted key -> callable), e.g.
  the scripts pass ``data.transforms.CONFIG_CHECKS`` so that a misspelt transform is refused at
  load, naming the key and the file, although this module sits below ``data``.
* Override values are parsed as YAML (``[a,b]`` is a list, ``null`` is None); nothing is ever
  evaluated as code.
* Floats written as ``1e-5`` (which YAML 1.1 reads as a string) are accepted for float keys.

Untrusted files: configs are YAML read with PyYAML's safe loader, with these limits on top (the
file and override values alike), each refused with one line naming the file, the dotted key and
the line:

* Only a regular file is opened (:func:`utils.io.files.file_problem` looks first), so a FIFO or
  a device given as ``--config`` cannot block the run, and at most :data:`MAX_CONFIG_BYTES`
  (1 MiB; the shipped configs are ~3 KB) are read.
* Anchors and aliases (``&a`` / ``*a``) are allowed, but the document, aliases expanded, may
  hold at most :data:`MAX_VALUES` values and nest :data:`MAX_DEPTH` levels. safe_load builds
  shared objects, so an "alias bomb" (a billion laughs in a few hundred bytes) loads in no time
  and only explodes later, when the effective config is written out; it is counted on the parsed
  node graph instead, before anything is built. An alias inside its own anchor (a recursive
  value) is refused too.
* A key given twice in one mapping is refused (YAML would silently keep the last value), naming
  both lines.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from utils.io.atomic import write_bytes_atomic
from utils.io.errors import first_line
from utils.io.files import file_problem

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: the shipped configs are ~3 KB
MAX_VALUES = 10_000  # values (keys included) once aliases are expanded: shipped configs ~210
MAX_DEPTH = 32  # nesting levels: the deepest shipped value has 5 (normalize.mean[0])


class ConfigError(ValueError):
    """A config problem; ``str()`` is one line naming the file and the dotted key."""


class _Required:
    """Marker for keys without a default."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class Range:
    """The numbers a key allows: ``low <= x`` (``low < x`` when ``low_open``), ``x <= high``
    when ``high`` is given, ``x`` a multiple of ``step`` when given; never nan or inf."""

    low: int | float
    high: int | float | None = None
    step: int | None = None
    low_open: bool = False

    def allows(self, number: int | float) -> bool:
        """Whether ``number`` is in the range."""
        if isinstance(number, float) and not math.isfinite(number):
            return False  # (an int is always finite, and may be too large for a float)
        above = number > self.low if self.low_open else number >= self.low
        below = self.high is None or number <= self.high
        return above and below and (self.step is None or number % self.step == 0)

    def __str__(self) -> str:
        if self.high is None:
            bound = f"{'>' if self.low_open else '>='} {self.low}"
        else:
            bound = f"in {self.low}..{self.high}"
        return f"a multiple of {self.step} {bound}" if self.step else bound


@dataclass(frozen=True)
class Key:
    """One leaf of the schema.

    ``kind`` is one of ``str``, ``int``, ``float``, ``bool``, ``str_list``, ``int_pair``,
    ``mapping`` (free-form, validated by whoever consumes it) or ``transforms`` (an ordered
    mapping of transform name -> argument mapping or null). ``nullable`` also allows null;
    ``choices`` restricts a ``str``; ``range`` the numbers of an ``int``, ``float`` or each of
    an ``int_pair`` (every numeric key has one).
    """

    kind: str
    default: Any
    doc: str
    nullable: bool = False
    choices: tuple[str, ...] = ()
    range: Range | None = None


# The ranges of the schema. SIDE: lib's network halves its input five times (strides 4..32) and
# patch merging needs multiples of 32 (lib/pm.py); 4096 is four times the largest published
# base size (SwinB_HR, 1024): SICA pools its stage-0 context at the base size, 64 channels of
# 4096x4096 floats are already 4 GiB per image, and a larger side cannot be run on any GPU.
SIDE = Range(32, 4096, step=32)
AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
POSITIVE = Range(0, low_open=True)
# Seeds seed numpy's legacy generator (0..2**32-1) and torch generators (seed * 100003 + epoch
# must stay below 2**64, utils/engine/setup.py).
SEED = Range(0, 2**32 - 1)


def _dataset_section(split: str) -> dict[str, Key]:
    return {
        "type": Key("str", "RGB_Dataset", "dataset class in the data package's registry"),
        "root": Key("str", REQUIRED, f"folder holding one sub-folder per {split} set"),
        "sets": Key("str_list", REQUIRED, "set names under root, each with images/ and masks/"),
        "transforms": Key(
            "transforms",
            REQUIRED,
            "ordered mapping: transform name -> its arguments (or null); applied in this order",
        ),
    }


SCHEMA: dict[str, dict[str, Any]] = {
    "Model": {
        "name": Key("str", REQUIRED, "registered model name, e.g. InSPyReNet_SwinB"),
        "depth": Key("int", 64, "channels of the decoder / attention heads", range=AT_LEAST_1),
        "pretrained": Key("bool", True, "start the backbone from ImageNet weights"),
        "base_size": Key(
            "int_pair", [384, 384], "[H, W] training size; fixes SICA's context size", range=SIDE
        ),
        "threshold": Key(
            "int",
            512,
            "inputs with H or W <= this take the LR branch; null: never",
            True,
            range=AT_LEAST_0,
        ),
        "PM": {
            "patch_size": Key(
                "int", 384, "Patch-Merging inference: patch side in pixels", range=SIDE
            ),
            "stride": Key("int", 96, "Patch-Merging inference: stride between patches", range=SIDE),
        },
        "backbone": Key(
            "mapping", {}, "extra keyword arguments for the backbone constructor (tiny models)"
        ),
        "precision": Key("str", "fp32", "inference precision", choices=("fp32", "bf16", "fp16")),
    },
    "Train": {
        "Dataset": {
            **_dataset_section("training"),
            "weights": Key(
                "mapping",
                {},
                "set name -> its share per epoch (0.1: a fresh tenth each epoch; 2: twice); "
                "sets not named: 1",
            ),
        },
        "Dataloader": {
            "batch_size": Key(
                "int", REQUIRED, "images per batch (per process under DDP)", range=AT_LEAST_1
            ),
            "shuffle": Key("bool", True, "shuffle the training set every epoch"),
            "num_workers": Key("int", 8, "data-loading worker processes", range=AT_LEAST_0),
            "pin_memory": Key("bool", False, "page-locked host memory for faster GPU copies"),
        },
        "Optimizer": {
            "type": Key("str", "Adam", "optimiser; the head gets 10x lr (in code)"),
            "lr": Key("float", 1.0e-05, "backbone learning rate", range=POSITIVE),
            "weight_decay": Key("float", 0.0, "L2 weight decay", range=AT_LEAST_0),
            "mixed_precision": Key("bool", False, "automatic mixed precision (AMP) training"),
        },
        "Scheduler": {
            "type": Key("str", "PolyLr", "learning-rate schedule, stepped every iteration"),
            "epoch": Key("int", REQUIRED, "number of training epochs", range=AT_LEAST_1),
            "gamma": Key("float", 0.9, "polynomial decay power", range=AT_LEAST_0),
            "minimum_lr": Key("float", 1.0e-07, "floor of the polynomial decay", range=AT_LEAST_0),
            "warmup_iteration": Key(
                "int", 12000, "iterations of linear warm-up from 0.1 x lr", range=AT_LEAST_0
            ),
        },
        "Checkpoint": {
            "checkpoint_epoch": Key(
                "int", 1, "write a checkpoint every this many epochs", range=AT_LEAST_1
            ),
            "checkpoint_dir": Key("str", REQUIRED, "folder for checkpoints and the used config"),
            "init": Key(
                "str",
                None,
                "full InSPyReNet checkpoint (official format) to fine-tune from; null: none",
                True,
            ),
        },
        "Debug": {
            "keys": Key(
                "str_list", ["saliency", "laplacian"], "model outputs drawn in debug images"
            ),
        },
        "Validation": {
            "enabled": Key("bool", False, "score validation sets while training (off: as before)"),
            "root": Key("str", None, "folder holding the validation sets (images/, masks/)", True),
            "sets": Key("str_list", [], "target validation sets under root: select the best"),
            "general": Key(
                "str_list",
                [],
                "general sets (e.g. DUTS-TE) scored beside them to show forgetting; not used "
                "to select",
            ),
            "general_root": Key("str", None, "folder holding the general sets; null: root", True),
            "every": Key(
                "int", 1, "validate every this many epochs (and after the last)", range=AT_LEAST_1
            ),
            "at_start": Key(
                "bool", False, "also validate before the first step (always with general sets)"
            ),
            "metrics": Key("str_list", ["Sm", "mae"], "metrics logged (any of Eval's)"),
            "select": Key("str", "Sm", "metric that selects best.pth (among metrics)"),
            "mode": Key(
                "str",
                None,
                "max or min: the better direction of select; null: min for mae, else max",
                True,
                choices=("max", "min"),
            ),
            "patience": Key(
                "int",
                None,
                "stop after this many validations without improvement; null: never",
                True,
                range=AT_LEAST_1,
            ),
            "save_maps": Key(
                "bool", False, "also write the maps as PNGs to <checkpoint_dir>/validation/"
            ),
        },
        "freeze": Key(
            "str_list",
            [],
            "model parts not trained (e.g. [backbone]): weights and BatchNorm statistics kept",
        ),
        "seed": Key(
            "int", None, "random seed for a repeatable run; null: not seeded", True, range=SEED
        ),
    },
    "Test": {
        "Dataset": {
            **_dataset_section("test"),
            "transforms_PM": Key(
                "mapping", None, "2021 seed: pre-processing for Patch-Merging inference", True
            ),
        },
        "Dataloader": {
            "num_workers": Key("int", 8, "data-loading worker processes", range=AT_LEAST_0),
            "pin_memory": Key("bool", True, "page-locked host memory for faster GPU copies"),
        },
        "Checkpoint": {
            "checkpoint_dir": Key(
                "str", REQUIRED, "folder holding latest.pth; maps are saved here"
            ),
        },
        "foreground": Key(
            "str",
            "fast",
            "Inference's cut-outs and composites: foreground colour estimation "
            "(fast: blur fusion; ml: pymatting; none: the raw image)",
            choices=("fast", "ml", "none"),
        ),
    },
    "Eval": {
        "gt_root": Key("str", REQUIRED, "masks: <gt_root>/<dataset>/masks/ (or <dataset>/)"),
        "pred_root": Key("str", REQUIRED, "predictions: <pred_root>/<dataset>/<stem>.png"),
        "result_path": Key("str", "results", "folder for result_<dataset>.csv/.md and curves"),
        "datasets": Key("str_list", REQUIRED, "datasets to score"),
        "metrics": Key(
            "str_list",
            ["Sm", "mae", "adpEm", "maxEm", "avgEm", "adpFm", "maxFm", "avgFm", "wFm", "mBA"],
            "metrics, in table column order",
        ),
    },
}


# ------------------------------------------------------------------------------------------------
# loading


Check = Callable[[Any], object]


def load_config(
    path: str | os.PathLike,
    overrides: Sequence[str] | None = None,
    require: Iterable[str] = (),
    checks: Mapping[str, Check] | None = None,
) -> dict:
    """Load ``path``, apply ``KEY=VALUE`` overrides, fill defaults and validate.

    ``require`` names the sections the caller needs (e.g. ``("Model", "Test")``); any other
    section may be absent. ``checks`` maps dotted keys to callables run on the key's validated
    value when its section is present (e.g. ``data.transforms.CONFIG_CHECKS``); the ValueError
    or TypeError one raises becomes a ConfigError naming the file and the key. Raises
    :class:`ConfigError` (one line, naming the file and key).
    """
    where = str(path)
    raw = _read_yaml(path)
    from_opts: set[str] = set()
    for override in overrides or ():
        dotted, value = _parse_override(where, override)
        _set_override(where, raw, dotted, value)
        from_opts.add(dotted)
    _check_top_level(where, raw)
    config: dict = {}
    for section, schema in SCHEMA.items():
        if section in raw:
            config[section] = _merge(where, schema, raw[section], section, from_opts)
    for section in require:
        if section not in SCHEMA:
            raise ValueError(f"unknown section {section!r} in require=")
        if section not in config:
            raise ConfigError(f"{where}: missing section {section} (this script needs it)")
    for dotted, check in (checks or {}).items():
        _run_check(where, config, dotted, check)
    return config


def _run_check(where: str, config: dict, dotted: str, check: Check) -> None:
    """``check(value of dotted)`` when its section is in ``config``; its error as ConfigError."""
    parts = dotted.split(".")
    spec: Any = SCHEMA
    for part in parts:
        spec = spec.get(part) if isinstance(spec, dict) else None
    if not isinstance(spec, Key):
        raise ValueError(f"checks= names {dotted!r}, which is not a key of the schema")
    if parts[0] not in config:
        return
    value: Any = config
    for part in parts:
        value = value[part]
    try:
        check(value)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where}: {dotted}: {error}") from None


# ------------------------------------------------------------------------------------------------
# reading YAML from untrusted files (see the module docstring)


def _read_yaml(path: str | os.PathLike) -> dict:
    try:
        data = _safe_load(str(path), _read_text(path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or first_line(error)
        raise ConfigError(f"{path}: invalid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {_kind(data)}")
    return data


def _read_text(path: str | os.PathLike) -> str:
    """The config file's text: a regular file only (never opened otherwise), at most 1 MiB."""
    problem = file_problem(path)
    if problem is not None:
        raise ConfigError(f"{path}: config {problem}")
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)  # bounded, even if the file grows meanwhile
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror or error})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: config is larger than {MAX_CONFIG_BYTES} bytes (1 MiB), far more than any "
            "config needs: is this the right file?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: cannot read config (not UTF-8 text: {error.reason} at byte {error.start})"
        ) from None


def _safe_load(where: str, text: str, dotted: str = "") -> Any:
    """``yaml.safe_load(text)`` after :class:`_NodeCheck` has looked at the composed nodes;
    ``dotted`` is where ``text`` goes in the config (an override's key). YAMLError propagates;
    the checks raise ConfigError."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # PyYAML composes nested collections recursively
            raise ConfigError(
                f"{where}: {dotted or 'the config'} is nested more than {MAX_DEPTH} levels deep"
            ) from None
        if node is None:
            return None
        _NodeCheck(where).count(node, dotted, 0)
        return loader.construct_document(node)
    finally:
        loader.dispose()


class _NodeCheck:
    """One walk over a composed YAML node graph that refuses, by dotted key and line, a key
    given twice in a mapping, nesting deeper than MAX_DEPTH, an alias inside its own anchor and
    more than MAX_VALUES values once aliases are expanded. An aliased node is the same object
    as its anchor, so its count is computed once: the walk is linear in the file's size."""

    def __init__(self, where: str):
        self.where = where
        self.counts: dict[int, int] = {}  # id(node) -> values below it, aliases expanded
        self.open: set[int] = set()  # the nodes being counted: an alias to one is a cycle

    def count(self, node: yaml.Node, dotted: str, depth: int) -> int:
        """Values in ``node`` (itself included), aliases expanded; ConfigError past a limit."""
        ident = id(node)
        if ident in self.counts:
            return self.counts[ident]
        at = f"{self.where}: {dotted or 'the top level'} (line {node.start_mark.line + 1})"
        if ident in self.open:
            raise ConfigError(f"{at}: an alias refers to the value that contains it")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{at}: nested more than {MAX_DEPTH} levels deep")
        self.open.add(ident)
        total = 1
        for child, child_dotted in self._children(node, dotted):
            total += self.count(child, child_dotted, depth + 1)
            if total > MAX_VALUES:
                raise ConfigError(
                    f"{at}: more than {MAX_VALUES} values once YAML aliases are expanded (an "
                    "alias bomb?); a config needs far fewer"
                )
        self.open.discard(ident)
        self.counts[ident] = total
        return total

    def _children(self, node: yaml.Node, dotted: str) -> list[tuple[yaml.Node, str]]:
        """The nodes directly inside ``node`` with their dotted keys (keys count as values)."""
        if isinstance(node, yaml.SequenceNode):
            return [(item, f"{dotted}[{index}]") for index, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode):
            return []
        self._refuse_duplicates(node, dotted)
        children = []
        for key, value in node.value:
            name = _join(dotted, key.value if isinstance(key, yaml.ScalarNode) else "?")
            children += [(key, name), (value, name)]
        return children

    def _refuse_duplicates(self, node: yaml.MappingNode, dotted: str) -> None:
        """ConfigError for a key given twice in ``node`` (YAML would keep the last silently)."""
        lines: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            ident, line = (key.tag, key.value), key.start_mark.line + 1
            if ident in lines:
                raise ConfigError(
                    f"{self.where}: {_join(dotted, key.value)}: key given twice, at lines "
                    f"{lines[ident]} and {line} (YAML would silently keep the last); remove one"
                )
            lines[ident] = line


def _join(dotted: str, key: str) -> str:
    return f"{dotted}.{key}" if dotted else key


def _check_top_level(where: str, raw: dict) -> None:
    for key in raw:
        if key not in SCHEMA:
            raise ConfigError(f"{where}: unknown key {key}{did_you_mean(key, SCHEMA)}")


def _merge(where: str, schema: dict, value: Any, dotted: str, from_opts: set[str]) -> dict:
    """Validate the user's mapping ``value`` against ``schema`` and fill in the defaults."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {dotted} must be a mapping, got {_kind(value)}")
    for key in value:
        if key not in schema:
            raise ConfigError(
                f"{where}: unknown key {dotted}.{key}{did_you_mean(str(key), schema)}"
            )
    merged: dict = {}
    for key, spec in schema.items():
        child = f"{dotted}.{key}"
        if isinstance(spec, dict):
            merged[key] = _merge(where, spec, value.get(key), child, from_opts)
        elif key in value:
            merged[key] = _check_value(where, spec, value[key], child, child in from_opts)
        elif spec.default is REQUIRED:
            raise ConfigError(f"{where}: missing required key {child} ({spec.doc})")
        else:
            merged[key] = copy.deepcopy(spec.default)
    return merged


_KIND_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str_list": "a list of strings",
    "int_pair": "a list of two integers",
    "mapping": "a mapping",
    "transforms": "a mapping of transform name -> arguments (or null)",
}


def _check_value(where: str, spec: Key, value: Any, dotted: str, from_opts: bool) -> Any:
    """Return ``value`` checked (and lightly coerced) against ``spec``."""
    if value is None and spec.nullable:
        return None
    checked = _coerce(spec.kind, value)
    if checked is _INVALID:
        expected = _KIND_NAMES[spec.kind] + (" or null" if spec.nullable else "")
        source = " (set by --opts)" if from_opts else ""
        raise ConfigError(
            f"{where}: {dotted} must be {expected}, got {_kind(value)} {value!r}{source}"
        )
    if spec.choices and checked not in spec.choices:
        raise ConfigError(
            f"{where}: {dotted} must be one of {', '.join(spec.choices)}, got {checked!r}"
            f"{did_you_mean(str(checked), spec.choices)}"
        )
    numbers = checked if spec.kind == "int_pair" else [checked]
    if spec.range is not None and not all(spec.range.allows(number) for number in numbers):
        source = " (set by --opts)" if from_opts else ""
        raise ConfigError(f"{where}: {dotted} must be {_allowed(spec)}, got {value!r}{source}")
    return checked


def _allowed(spec: Key) -> str:
    """The values of ``spec``'s range in words, e.g. 'an integer >= 1' or 'a finite number > 0'."""
    if spec.kind == "float":
        words = f"a finite number {spec.range}"
    elif spec.kind == "int_pair":
        words = f"a pair, each {spec.range}"
    else:
        words = str(spec.range) if spec.range.step else f"an integer {spec.range}"
    return words + (" or null" if spec.nullable else "")


_INVALID = object()


def _coerce(kind: str, value: Any) -> Any:
    """``value`` converted to ``kind``, or ``_INVALID``. Only lossless, obvious conversions."""
    if kind == "str":
        return value if isinstance(value, str) else _INVALID
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if kind == "float":
        if isinstance(value, bool):
            return _INVALID
        if isinstance(value, (int, float)):
            try:
                return float(value)
            except OverflowError:  # an integer of hundreds of digits: out of any range
                return math.inf
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                return _INVALID
        return _INVALID
    if kind == "bool":
        return value if isinstance(value, bool) else _INVALID
    if kind == "str_list":
        if isinstance(value, str):  # a single name, e.g. --opts Test.Dataset.sets=ECSSD
            return [value]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        return _INVALID
    if kind == "int_pair":
        ok = isinstance(value, list) and len(value) == 2
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return list(value) if ok else _INVALID
    if kind == "mapping":
        if value is None:
            return {}
        return copy.deepcopy(value) if isinstance(value, dict) else _INVALID
    if kind == "transforms":
        ok = isinstance(value, dict) and all(
            isinstance(name, str) and (args is None or isinstance(args, dict))
            for name, args in value.items()
        )
        return copy.deepcopy(value) if ok else _INVALID
    raise AssertionError(f"unknown schema kind {kind!r}")


# ------------------------------------------------------------------------------------------------
# overrides


def _parse_override(where: str, override: str) -> tuple[str, Any]:
    """Split ``KEY=VALUE``; the value is parsed with ``yaml.safe_load`` (never evaluated)."""
    dotted, sep, text = override.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted:
        raise ConfigError(f"{where}: override {override!r} must look like KEY=VALUE")
    try:
        value = _safe_load(f"{where}: --opts", text, dotted) if text.strip() else None
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"{where}: override {override!r}: cannot parse value ({problem})"
        ) from None
    return dotted, value


def _set_override(where: str, raw: dict, dotted: str, value: Any) -> None:
    """Set ``dotted`` in the raw tree after checking the path exists in the schema."""
    parts = dotted.split(".")
    spec: Any = SCHEMA
    free_form = False
    for depth, part in enumerate(parts):
        if free_form:
            break
        if not isinstance(spec, dict) or part not in spec:
            prefix = ".".join(parts[:depth])
            options = spec if isinstance(spec, dict) else {}
            raise ConfigError(
                f"{where}: --opts {dotted}: unknown key {dotted}"
                f"{did_you_mean(part, options) if options else ''}"
                + ("" if isinstance(spec, dict) else f" ({prefix} is not a section)")
            )
        spec = spec[part]
        free_form = isinstance(spec, Key) and spec.kind in ("mapping", "transforms")
    if isinstance(spec, dict):
        raise ConfigError(f"{where}: --opts {dotted}: {dotted} is a section, not a key")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def did_you_mean(key: str, options: Iterable[str]) -> str:
    """' (did you mean X?)' for the option closest to ``key`` (case first), or ''."""
    names = [str(option) for option in options]
    lowered = {name.lower(): name for name in names}
    if key.lower() in lowered:
        return f" (did you mean {lowered[key.lower()]}?)"
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# ------------------------------------------------------------------------------------------------
# command line and saving


def add_config_arguments(
    parser: argparse.ArgumentParser, required: bool = True
) -> argparse.ArgumentParser:
    """Add ``--config PATH`` (required unless ``required=False``) and ``--opts KEY=VALUE ...``
    to ``parser``."""
    parser.add_argument("--config", required=required, help="YAML config file, e.g. configs/X.yaml")
    parser.add_argument(
        "--opts",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. Train.Optimizer.lr=2e-5 Test.Dataset.sets=[ECSSD]",
    )
    return parser


def config_from_args(
    args: argparse.Namespace,
    require: Iterable[str] = (),
    checks: Mapping[str, Check] | None = None,
) -> dict:
    """``load_config(args.config, args.opts, require, checks)`` for scripts using
    add_config_arguments."""
    opts = getattr(args, "opts", None) or []
    return load_config(args.config, opts, require=require, checks=checks)


def config_name(path: str | os.PathLike) -> str:
    """A config's name: its file stem (``configs/InSPyReNet_SwinB.yaml`` -> InSPyReNet_SwinB)."""
    return Path(path).stem


def dump_config(config: Mapping) -> str:
    """The config as YAML text (key order kept)."""
    return yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=None)


def save_config(config: Mapping, path: str | os.PathLike) -> None:
    """Write the effective config as YAML to ``path``, atomically."""
    header = "# Effective config (defaults filled in, --opts applied); loads with load_config.\n"
    write_bytes_atomic(path, (header + dump_config(config)).encode("utf-8"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def describe_schema() -> str:
    """The defaults tree as commented YAML (``REQUIRED`` marks keys without a default)."""
    lines: list[str] = []

    def walk(node: dict, indent: int) -> None:
        for key, spec in node.items():
            pad = "  " * indent
            if isinstance(spec, dict):
                lines.append(f"{pad}{key}:")
                walk(spec, indent + 1)
                continue
            if spec.default is REQUIRED:
                shown = "REQUIRED"
            else:
                shown = yaml.safe_dump(spec.default, default_flow_style=True).strip()
                shown = shown.removesuffix("\n...").removesuffix("...").strip()
            comment = spec.doc + (f" ({' | '.join(spec.choices)})" if spec.choices else "")
            comment += f" [{_allowed(spec)}]" if spec.range else ""
            lines.append(f"{pad}{key}: {shown}  # {comment}")

    walk(SCHEMA, 0)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(describe_schema(), end="")
