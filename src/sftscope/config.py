"""Typed stage configs: each dataclass is the single source of its options.

A config class declares its fields once, with their help text in the field metadata (`option(...)`). From the
fields are generated: the command line (`ConfigParser`, transformers' `HfArgumentParser` with two adaptations
below), `StageConfig.to_argv` (the command line that rebuilds a config, e.g. for `sweep --list`), and reading a
config from a YAML or JSON file (`StageConfig.from_file`, `--config FILE`). Values are normalised and validated in
`__post_init__`, whichever of the three routes built the config, so a bad value fails the same way from Python,
from the CLI and from a file, before any model loads.

Adaptations of `HfArgumentParser`, because the field's users type lists with commas (`--data gsm8k,mmlu`) and
numbers with `none` (`--max-grad-norm none`): list fields are parsed as strings and split / converted in
`__post_init__`, and optional numbers accept `none`. A bad choice prints one line naming the valid choices.

This module is light on purpose (no torch, no transformers): `sftscope --help` builds every stage's parser.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

from sftscope.errors import SftscopeError

NONE_WORDS = ("none", "None", "null")


def option(default: Any = MISSING, help: str = "", *, factory: Any = MISSING, aliases: list[str] | None = None,
           metavar: str | None = None, repeat: bool = False):
    """A config field with its command-line help. `repeat`: the option may be given several times, values add up
    (`--variant a=X --variant b=Y`). A mutable default goes in `factory`."""
    metadata: dict[str, Any] = {"help": help.replace("%", "%%")}  # argparse formats help text with %
    if aliases:
        metadata["aliases"] = aliases
    if metavar:
        metadata["metavar"] = metavar
    if repeat:
        metadata["action"] = "extend"
    return field(default=default, default_factory=factory, metadata=metadata)


# -- type helpers ---------------------------------------------------------------------------------------------
def _strip_optional(tp) -> tuple[Any, bool]:
    """(X, True) for X | None, else (tp, False)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _list_item(tp) -> Any | None:
    """The item type of list[X] (None for any other type)."""
    return get_args(tp)[0] if get_origin(tp) is list else None


@lru_cache(maxsize=None)
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, tp: Any, name: str) -> Any:
    """One scalar value to int / float / str / bool / Literal, with a user-facing error."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise SftscopeError(f"--{name.replace('_', '-')} must be one of {', '.join(map(str, choices))}, "
                                f"not {value!r}")
        return value
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "y"):
                return True
            if value.lower() in ("0", "false", "no", "n"):
                return False
        if isinstance(value, bool):
            return value
        raise SftscopeError(f"--{name.replace('_', '-')} must be true or false, not {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise SftscopeError(f"--{name.replace('_', '-')} must be a number, not {value!r}")
        try:
            number = tp(value) if tp is float else int(str(value)) if isinstance(value, str) else value
        except (TypeError, ValueError):
            kind = "an integer" if tp is int else "a number"
            raise SftscopeError(f"--{name.replace('_', '-')} must be {kind}, not {value!r}") from None
        if tp is int and not (isinstance(number, int) or float(number).is_integer()):
            raise SftscopeError(f"--{name.replace('_', '-')} must be an integer, not {value!r}")
        return tp(number)
    if tp is str:
        return str(value)
    return value


def _normalise(value: Any, tp: Any, name: str) -> Any:
    """A field value as its declared type: lists split at commas ('none' = empty), optionals from 'none'."""
    inner, optional = _strip_optional(tp)
    if value is None or (optional and isinstance(value, str) and value in NONE_WORDS):
        if not optional:
            raise SftscopeError(f"--{name.replace('_', '-')} needs a value")
        return None
    item = _list_item(inner)
    if item is not None:
        raw = [value] if isinstance(value, (str, int, float)) else list(value)
        parts = [p.strip() if isinstance(p, str) else p
                 for v in raw for p in (v.split(",") if isinstance(v, str) else [v])]
        parts = [p for p in parts if p != ""]
        if len(parts) == 1 and isinstance(parts[0], str) and parts[0] in NONE_WORDS:
            return []
        return [_convert(p, item, name) for p in parts]
    return _convert(value, inner, name)


def _cli_type(tp: Any) -> Any:
    """The type HfArgumentParser sees: list items as str (split later), optional numbers accepting 'none'."""
    inner, optional = _strip_optional(tp)
    if _list_item(inner) is not None:
        return list[str]
    if optional and inner in (int, float):
        def parse(text: str, _inner=inner):
            return None if text in NONE_WORDS else _inner(text)
        parse.__name__ = inner.__name__
        return parse
    return tp


# -- the base class -----------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class StageConfig:
    """Base of every stage config: normalisation, validation (`check`), identity, argv and files."""

    # Fields that change what is shown or done now, not what is measured: left out of the run folder's identity.
    NOT_IDENTITY: ClassVar[frozenset[str]] = frozenset({"plots"})

    def __post_init__(self):
        for f in fields(self):
            if f.init:
                setattr(self, f.name, _normalise(getattr(self, f.name), _hints(type(self))[f.name], f.name))
        self.check()

    def check(self) -> None:
        """Validate the values together; raise SftscopeError saying what to change. Subclasses extend it."""

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-friendly."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.init}

    def identity(self) -> dict[str, Any]:
        """The fields that decide the results, as recorded in the run folder's config.json (resume check)."""
        return {k: v for k, v in self.as_dict().items() if k not in self.NOT_IDENTITY}

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_argv(self) -> list[str]:
        """Command-line options that rebuild this config exactly (every field, defaults included)."""
        argv: list[str] = []
        for f in fields(self):
            if not f.init:
                continue
            value, flag = getattr(self, f.name), f"--{f.name.replace('_', '-')}"
            inner, optional = _strip_optional(_hints(type(self))[f.name])
            if inner is bool:
                argv += [flag, "true" if value else "false"]
            elif value is None:
                if f.default is not None:  # the default is a value: say none explicitly
                    argv += [flag, "none"]
            elif _list_item(inner) is not None:
                argv += [flag, ",".join(map(str, value)) if value else "none"]
            else:
                argv += [flag, repr(value) if isinstance(value, float) else str(value)]
        return argv

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from a mapping of field names (dashes or underscores); unknown keys are an error."""
        known = {f.name for f in fields(cls) if f.init}
        values = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SftscopeError(f"unknown option(s) {', '.join(unknown)} for {cls.__name__}; known: "
                                f"{', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path):
        """Read a config from a .yaml/.yml or .json file (keys = option names)."""
        return cls.from_dict(read_config_file(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping stored in a YAML or JSON config file; SftscopeError if it cannot be read."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SftscopeError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml  # a dependency of transformers
            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001  yaml and json raise several types
        raise SftscopeError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: "
                            f"{str(exc).splitlines()[0]}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SftscopeError(f"config file {path} must hold a mapping of option names to values")
    return data


# -- the command-line parser ----------------------------------------------------------------------------------
def _config_parser_class():
    """HfArgumentParser with comma lists, optional numbers and one-line usage errors (imported lazily)."""
    from transformers import HfArgumentParser

    class ConfigParser(HfArgumentParser):
        """One stage's parser, generated from its config dataclass."""

        @staticmethod
        def _parse_dataclass_field(parser, f):
            f = copy.copy(f)
            f.type = _cli_type(f.type)
            HfArgumentParser._parse_dataclass_field(parser, f)

        def error(self, message: str):
            # argparse prints the whole usage block; one line that says what to fix is enough.
            sys.stderr.write(f"sftscope: error: {message}; see `{self.prog} --help`\n")
            sys.exit(2)

    return ConfigParser


def config_from_namespace(cls, namespace) -> StageConfig:
    """Build a config of class `cls` from a parsed argparse namespace (extra attributes ignored)."""
    values = {f.name: getattr(namespace, f.name) for f in fields(cls) if f.init and hasattr(namespace, f.name)}
    return cls(**values)


# -- shared field groups --------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class PlotOptions(StageConfig):
    """For stages that draw figures from their tables."""

    plots: bool = option(True, "draw figures (--no-plots: tables only)")


Dtype = Literal["auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"]


@dataclass(kw_only=True)
class LoadConfig(StageConfig):
    """How models are loaded: dtype, device, device map, remote code."""

    dtype: Dtype = option("auto", "auto (float32 on CPU, the checkpoint's dtype on GPU), float32, bf16, fp16")
    device: str = option("auto", "auto, cpu, cuda, cuda:1 ...")
    device_map: str | None = option(None, "where layers go: auto / balanced / sequential (accelerate spreads them "
                                          "over GPUs, CPU and disk), or a JSON map {module: device|cpu|disk} "
                                          "(inline or a .json file)")
    max_memory: str | None = option(None, "memory cap per device for --device-map auto, e.g. 0=20GiB,cpu=64GiB "
                                          "(what does not fit goes to CPU, then to disk)")
    offload_folder: str | None = option(None, "folder for layers offloaded to disk (default: a temporary folder)")
    trust_remote_code: bool = option(False, "allow custom model code from the hub (off by default)")

    def check(self) -> None:
        super().check()
        if self.device_map is not None:
            self.device_map_value()
        if self.max_memory is not None:
            self.max_memory_value()
            if self.device_map is None:
                raise SftscopeError("--max-memory caps what --device-map places: give --device-map auto too")

    def device_map_value(self) -> str | dict:
        """--device-map as transformers reads it: a strategy name or {module name: device}.

        Raises:
            SftscopeError: a map that is neither a strategy, JSON, nor a readable .json file.
        """
        text = self.device_map.strip()
        if text in ("auto", "balanced", "balanced_low_0", "sequential"):
            return text
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SftscopeError(f"--device-map is not valid JSON ({exc.msg}); write it like "
                                    "'{\"model.layers.0\": 0, \"model.layers.1\": \"disk\"}'") from exc
        elif text.endswith(".json"):
            value = read_config_file(text)
        else:
            raise SftscopeError(f"--device-map {text!r}: use auto, balanced, sequential, a JSON map or a .json file")
        if not isinstance(value, dict) or not value:
            raise SftscopeError("--device-map JSON must map module names to a device (0, 'cuda:1', 'cpu', 'disk')")
        return value

    def max_memory_value(self) -> dict | None:
        """--max-memory as transformers reads it: {0: '20GiB', 'cpu': '64GiB'}.

        Raises:
            SftscopeError: entries not written as DEVICE=SIZE.
        """
        if self.max_memory is None:
            return None
        caps = {}
        for item in self.max_memory.split(","):
            device, sep, size = item.strip().partition("=")
            if not sep or not device or not size:
                raise SftscopeError(f"--max-memory entry {item.strip()!r}: write DEVICE=SIZE, e.g. 0=20GiB,cpu=64GiB")
            caps[int(device) if device.isdigit() else device] = size.strip()
        return caps

    def placement(self, name: str = "model") -> dict:
        """from_pretrained's placement arguments: device_map, max_memory, offload_folder (a temporary folder
        per model when none is given and the map can send layers to disk)."""
        out: dict = {"device_map": self.device_map_value()}
        if self.max_memory is not None:
            out["max_memory"] = self.max_memory_value()
        folder = self.offload_folder
        if folder is None:
            import tempfile
            folder = tempfile.mkdtemp(prefix=f"sftscope-offload-{name}-")
        out["offload_folder"] = str(Path(folder).expanduser() / name) if self.offload_folder else folder
        return out

    def load_options(self) -> "LoadConfig":
        """The loading options alone (what `load_model` reads)."""
        return LoadConfig(dtype=self.dtype, device=self.device, device_map=self.device_map,
                          max_memory=self.max_memory, offload_folder=self.offload_folder,
                          trust_remote_code=self.trust_remote_code)


@dataclass(kw_only=True)
class ModelPairOptions(StageConfig):
    """The Base and its fine-tuned variants."""

    needs_variant: ClassVar[bool] = True  # False for stages that can run on the Base alone (suggest)

    base: str = option(help="Base model: hub id or local dir (ID@REVISION pins a revision)")
    sft: str | None = option(None, "fine-tuned model compared with the Base")
    variants: list[str] = option(factory=list, aliases=["--variant"], metavar="NAME=ID", repeat=True,
                                 help="more fine-tuned variants of the same Base (repeatable), e.g. "
                                      "dpo=allenai/OLMo-2-0425-1B-DPO")

    def check(self) -> None:
        super().check()
        if self.needs_variant and self.sft is None and not self.variants:
            raise SftscopeError("give a fine-tuned model to compare with the Base: --sft ID or --variant NAME=ID")
        self.refs()  # parse model specs now: bad specs fail before anything is written

    def refs(self):
        """ModelRef of the Base (first, named 'base'), the SFT model and each variant."""
        from sftscope.models.refs import ModelRef

        refs = [ModelRef.parse(self.base, "base")]
        if refs[0].name != "base":
            raise SftscopeError("the Base model is always named 'base': pass --base ID")
        if self.sft:
            refs.append(ModelRef.parse(self.sft, "sft"))
        refs += [ModelRef.parse(v, f"variant{i + 1}") for i, v in enumerate(self.variants)]
        names = [r.name for r in refs]
        if len(set(names)) != len(names):
            raise SftscopeError(f"model names must be unique, got {', '.join(names)}")
        return refs


@dataclass(kw_only=True)
class DataOptions(StageConfig):
    """Which data sets are streamed through the models, and how they are cut into batches."""

    data: list[str] = option(factory=lambda: ["gsm8k"], help="comma-separated data set names (sftscope ls "
                                                                 "datasets) or files")
    data_dir: str | None = option(None, "folder with local copies (else $SFTSCOPE_DATA_DIR, else the hub)")
    text_field: str = option("text", "field holding the text in user files")
    max_length: int = option(512, "tokens per sample; longer samples are cut and counted")
    batch_size: int = option(8, "samples per forward pass")
    seed: int = option(0, "seed of the sample draw (and of every resampling)")

    def check(self) -> None:
        super().check()
        for name in ("max_length", "batch_size"):
            if getattr(self, name) < 1:
                raise SftscopeError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.data:
            raise SftscopeError("--data needs at least one data set name or file")


@dataclass(kw_only=True)
class PairRunConfig(LoadConfig, DataOptions, ModelPairOptions):
    """Options shared by every stage that loads a Base and its variants and streams data sets through them."""
