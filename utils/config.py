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
* Any problem (unknown key, missing required key, wrong type, bad override, unreadable YAML)
  raises :class:`ConfigError` with one line naming the file and the dotted key.
* Override values are parsed with ``yaml.safe_load`` (``[a,b]`` is a list, ``null`` is None);
  nothing is ever evaluated as code.
* Floats written as ``1e-5`` (which YAML 1.1 reads as a string) are accepted for float keys.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from utils.io.atomic import write_bytes_atomic

SECTIONS = ("Model", "Train", "Test", "Eval")


class ConfigError(ValueError):
    """A config problem; ``str()`` is one line naming the file and the dotted key."""


class _Required:
    """Marker for keys without a default."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class Key:
    """One leaf of the schema.

    ``kind`` is one of ``str``, ``int``, ``float``, ``bool``, ``str_list``, ``int_pair``,
    ``mapping`` (free-form, validated by whoever consumes it) or ``transforms`` (an ordered
    mapping of transform name -> argument mapping or null). ``nullable`` also allows null;
    ``choices`` restricts a ``str``.
    """

    kind: str
    default: Any
    doc: str
    nullable: bool = False
    choices: tuple[str, ...] = ()


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
        "depth": Key("int", 64, "channels of the decoder / attention heads"),
        "pretrained": Key("bool", True, "start the backbone from ImageNet weights"),
        "base_size": Key("int_pair", [384, 384], "[H, W] training size; fixes SICA's context size"),
        "threshold": Key(
            "int", 512, "inputs with H or W <= this take the LR branch; null: never", True
        ),
        "PM": {
            "patch_size": Key("int", 384, "Patch-Merging inference: patch side in pixels"),
            "stride": Key("int", 96, "Patch-Merging inference: stride between patches"),
        },
        "backbone": Key(
            "mapping", {}, "extra keyword arguments for the backbone constructor (tiny models)"
        ),
        "precision": Key("str", "fp32", "inference precision", choices=("fp32", "bf16", "fp16")),
    },
    "Train": {
        "Dataset": _dataset_section("training"),
        "Dataloader": {
            "batch_size": Key("int", REQUIRED, "images per batch (per process under DDP)"),
            "shuffle": Key("bool", True, "shuffle the training set every epoch"),
            "num_workers": Key("int", 8, "data-loading worker processes"),
            "pin_memory": Key("bool", False, "page-locked host memory for faster GPU copies"),
        },
        "Optimizer": {
            "type": Key("str", "Adam", "optimiser; the head gets 10x lr (in code)"),
            "lr": Key("float", 1.0e-05, "backbone learning rate"),
            "weight_decay": Key("float", 0.0, "L2 weight decay"),
            "mixed_precision": Key("bool", False, "automatic mixed precision (AMP) training"),
        },
        "Scheduler": {
            "type": Key("str", "PolyLr", "learning-rate schedule, stepped every iteration"),
            "epoch": Key("int", REQUIRED, "number of training epochs"),
            "gamma": Key("float", 0.9, "polynomial decay power"),
            "minimum_lr": Key("float", 1.0e-07, "floor of the polynomial decay"),
            "warmup_iteration": Key("int", 12000, "iterations of linear warm-up from 0.1 x lr"),
        },
        "Checkpoint": {
            "checkpoint_epoch": Key("int", 1, "write a checkpoint every this many epochs"),
            "checkpoint_dir": Key("str", REQUIRED, "folder for checkpoints and the used config"),
        },
        "Debug": {
            "keys": Key(
                "str_list", ["saliency", "laplacian"], "model outputs drawn in debug images"
            ),
        },
        "seed": Key("int", None, "random seed for a repeatable run; null: not seeded", True),
    },
    "Test": {
        "Dataset": {
            **_dataset_section("test"),
            "transforms_PM": Key(
                "mapping", None, "2021 seed: pre-processing for Patch-Merging inference", True
            ),
        },
        "Dataloader": {
            "num_workers": Key("int", 8, "data-loading worker processes"),
            "pin_memory": Key("bool", True, "page-locked host memory for faster GPU copies"),
        },
        "Checkpoint": {
            "checkpoint_dir": Key(
                "str", REQUIRED, "folder holding latest.pth; maps are saved here"
            ),
        },
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


def load_config(
    path: str | os.PathLike,
    overrides: Sequence[str] | None = None,
    require: Iterable[str] = (),
) -> dict:
    """Load ``path``, apply ``KEY=VALUE`` overrides, fill defaults and validate.

    ``require`` names the sections the caller needs (e.g. ``("Model", "Test")``); any other
    section may be absent. Raises :class:`ConfigError` (one line, naming the file and key).
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
    return config


def _read_yaml(path: str | os.PathLike) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config ({error})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {_kind(data)}")
    return data


def _check_top_level(where: str, raw: dict) -> None:
    for key in raw:
        if key not in SCHEMA:
            raise ConfigError(f"{where}: unknown key {key}{_did_you_mean(key, SCHEMA)}")


def _merge(where: str, schema: dict, value: Any, dotted: str, from_opts: set[str]) -> dict:
    """Validate the user's mapping ``value`` against ``schema`` and fill in the defaults."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {dotted} must be a mapping, got {_kind(value)}")
    for key in value:
        if key not in schema:
            raise ConfigError(
                f"{where}: unknown key {dotted}.{key}{_did_you_mean(str(key), schema)}"
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
            f"{_did_you_mean(str(checked), spec.choices)}"
        )
    return checked


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
            return float(value)
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
        value = yaml.safe_load(text) if text.strip() else None
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
                f"{_did_you_mean(part, options) if options else ''}"
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


def _did_you_mean(key: str, options: Iterable[str]) -> str:
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


def add_config_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--config PATH`` (required) and ``--opts KEY=VALUE ...`` to ``parser``."""
    parser.add_argument("--config", required=True, help="YAML config file, e.g. configs/X.yaml")
    parser.add_argument(
        "--opts",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. Train.Optimizer.lr=2e-5 Test.Dataset.sets=[ECSSD]",
    )
    return parser


def config_from_args(args: argparse.Namespace, require: Iterable[str] = ()) -> dict:
    """``load_config(args.config, args.opts, require)`` for scripts using add_config_arguments."""
    return load_config(args.config, getattr(args, "opts", None) or [], require=require)


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
            lines.append(f"{pad}{key}: {shown}  # {comment}")

    walk(SCHEMA, 0)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(describe_schema(), end="")
