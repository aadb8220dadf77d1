"""Checkpoint tensors read one row range at a time: safetensors (sharded or not), .bin, a module, a state dict.

Nothing here loads a whole model. A safetensors tensor is read by row ranges straight from the file (the
format's header gives each tensor's byte offsets), so the process holds only the rows being compared; `.bin`
files are memory-mapped with `torch.load(mmap=True, weights_only=True)`, one file at a time (their touched
pages are file-backed and reclaimable, but count in RSS while the file is mapped).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from sftscope.errors import SftscopeError

RowReader = Callable[[int, int], torch.Tensor]  # (start, stop) -> rows start..stop-1 of a tensor


class TensorSource:
    """Names, shapes and row-sliced reads of one checkpoint's tensors."""

    description: str = ""
    config: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]

    @property
    def names(self) -> list[str]:
        return list(self.shapes)

    @contextmanager
    def open(self, name: str) -> Iterator[RowReader]:
        """Yield a reader of rows [a, b) of tensor `name` (a 0-d tensor reads as shape [1])."""
        raise NotImplementedError


# safetensors dtype codes -> torch dtypes (the format stores little-endian, row-major data).
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": getattr(torch, "float8_e4m3fn", None), "F8_E5M2": getattr(torch, "float8_e5m2", None),
}


class SafetensorsSource(TensorSource):
    """safetensors files read by row ranges with plain file reads.

    The header (names, dtypes, shapes, byte offsets) comes from `safe_open`'s format; the rows are read with
    seek + readinto rather than through a memory map, because every touched page of a map stays in the
    process's resident set until the map closes: for a 2 GB embedding that alone would be 2 GB of RSS.
    """

    def __init__(self, files: list[Path], config: dict[str, Any], description: str):
        self.config, self.description, self.shapes = config, description, {}
        self._where: dict[str, tuple[Path, torch.dtype, int]] = {}  # name -> (file, dtype, absolute byte offset)
        for path in files:
            header, header_len = _safetensors_header(path)
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
                if dtype is None:
                    raise SftscopeError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
                self.shapes[name] = tuple(info["shape"])
                self._where[name] = (path, dtype, 8 + header_len + info["data_offsets"][0])

    @contextmanager
    def open(self, name: str) -> Iterator[RowReader]:
        path, dtype, offset = self._where[name]
        shape = self.shapes[name]
        row_shape = shape[1:]
        row_bytes = math.prod(row_shape) * torch.empty((), dtype=dtype).element_size()
        with open(path, "rb", buffering=0) as f:
            def read(start: int, stop: int) -> torch.Tensor:
                if not shape:  # a scalar tensor
                    start, stop = 0, 1
                f.seek(offset + start * row_bytes)
                buffer = bytearray((stop - start) * row_bytes)
                if f.readinto(buffer) != len(buffer):
                    raise SftscopeError(f"{path} is truncated: cannot read tensor {name}")
                return torch.frombuffer(buffer, dtype=dtype).reshape((stop - start, *row_shape))
            yield read


def _safetensors_header(path: Path) -> tuple[dict, int]:
    """The header of a .safetensors file and its length, checked against the file's size (a truncated download
    fails here, by name, not half-way through a comparison).

    Raises:
        SftscopeError: the file is too short for its header or for the tensors the header lists, or the header
            is not the format's JSON.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if size < 8 or header_len > size - 8:
            raise SftscopeError(f"{path} is truncated or not a .safetensors file ({size} bytes); download or save "
                                "the model again")
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SftscopeError(f"{path} has a damaged header ({exc}); download or save the model again") from exc
    ends = [info["data_offsets"][1] for name, info in header.items() if name != "__metadata__"]
    if ends and 8 + header_len + max(ends) > size:
        raise SftscopeError(f"{path} is truncated ({size} bytes, its header lists {8 + header_len + max(ends)}); "
                            "download or save the model again")
    return header, header_len


class BinSource(TensorSource):
    def __init__(self, files: list[Path], config: dict[str, Any], description: str):
        self.config, self.description, self.shapes, self._file = config, description, {}, {}
        self._cached: tuple[Path, dict] | None = None
        for path in files:
            for name, tensor in self._load(path).items():
                if isinstance(tensor, torch.Tensor):
                    self.shapes[name], self._file[name] = tuple(tensor.shape), path
            self._cached = None

    def _load(self, path: Path) -> dict:
        if self._cached is None or self._cached[0] != path:  # keep one file mapped at a time
            try:
                self._cached = (path, torch.load(path, map_location="cpu", mmap=True, weights_only=True))
            except Exception as exc:  # a non-zipfile legacy pickle cannot be memory-mapped
                raise SftscopeError(f"cannot memory-map {path}: {exc}. Re-save it with safetensors") from exc
        return self._cached[1]

    @contextmanager
    def open(self, name: str) -> Iterator[RowReader]:
        tensor = self._load(self._file[name])[name]
        yield (lambda a, b: tensor.reshape(1)) if tensor.dim() == 0 else (lambda a, b: tensor[a:b])


class MemorySource(TensorSource):
    """An nn.Module's parameters (tied ones once) or a state-dict-like mapping of tensors."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], config: dict[str, Any], description: str):
        lora = [n for n in tensors if "lora_A" in n or ".base_layer." in n]
        if lora:
            raise SftscopeError(f"{description} holds unmerged LoRA tensors (e.g. {lora[0]}); pass "
                                f"model.merge_and_unload() so the compared weights include the adapter")
        self.config, self.description = config, description
        self._tensors = {n: t for n, t in tensors.items() if isinstance(t, torch.Tensor)}
        self.shapes = {n: tuple(t.shape) for n, t in self._tensors.items()}

    @contextmanager
    def open(self, name: str) -> Iterator[RowReader]:
        tensor = self._tensors[name].detach()
        yield (lambda a, b: tensor.reshape(1)) if tensor.dim() == 0 else (lambda a, b: tensor[a:b])


def open_source(ref: Any, revision: str | None = None) -> TensorSource:
    """A TensorSource for a local dir/file, a Hugging Face hub id, an nn.Module or a state-dict mapping."""
    if isinstance(ref, torch.nn.Module):
        config = getattr(ref, "config", None)
        config = config.to_dict() if hasattr(config, "to_dict") else {}
        return MemorySource(dict(ref.named_parameters()), config, f"in-memory {type(ref).__name__}")
    if isinstance(ref, Mapping):
        return MemorySource(ref, {}, "in-memory state dict")
    path = Path(ref)
    if not path.exists():
        path = _download(str(ref), revision)
    return _open_local(path)


def _read_config(directory: Path) -> dict[str, Any]:
    cfg = directory / "config.json"
    return json.loads(cfg.read_text()) if cfg.is_file() else {}


def _open_local(path: Path) -> TensorSource:
    if path.is_file():
        cls = SafetensorsSource if path.suffix == ".safetensors" else BinSource
        return cls([path], _read_config(path.parent), str(path))
    for index_name, cls in (("model.safetensors.index.json", SafetensorsSource),
                            ("pytorch_model.bin.index.json", BinSource)):
        index = path / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [s for s in shards if not (path / s).is_file()]
            if missing:
                raise SftscopeError(f"{index} lists shard files that are missing: {', '.join(missing[:5])}")
            return cls([path / s for s in shards], _read_config(path), str(path))
    safetensors = [p for p in sorted(path.glob("*.safetensors")) if not p.name.startswith(("adapter", "consolidated"))]
    if (path / "model.safetensors").is_file():
        safetensors = [path / "model.safetensors"]
    if safetensors:
        return SafetensorsSource(safetensors, _read_config(path), str(path))
    if (path / "pytorch_model.bin").is_file():
        return BinSource([path / "pytorch_model.bin"], _read_config(path), str(path))
    if (path / "adapter_config.json").is_file():
        raise SftscopeError(f"{path} is a PEFT adapter, not a full checkpoint: merge it into its base model "
                            f"(merge_and_unload + save_pretrained) and pass that directory")
    raise SftscopeError(f"no model weights (*.safetensors or pytorch_model.bin) found in {path}")


def _download(repo_id: str, revision: str | None) -> Path:
    """Fetch only config JSON and the weight files (safetensors preferred, else .bin) of a hub repo."""
    if not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", repo_id):
        raise SftscopeError(f"{repo_id!r} is neither an existing path nor a Hugging Face hub id")
    try:
        from huggingface_hub import HfApi, constants, snapshot_download

        if constants.HF_HUB_OFFLINE:  # no listing possible: use what the local cache holds
            return Path(snapshot_download(repo_id, revision=revision, local_files_only=True,
                                          allow_patterns=["*.json", "*.safetensors", "pytorch_model*.bin"]))
        files = HfApi().list_repo_files(repo_id, revision=revision)
        weights = [f for f in files if "/" not in f and f.endswith(".safetensors")
                   and not f.startswith(("adapter", "consolidated"))]
        if not weights:
            weights = [f for f in files if "/" not in f and re.fullmatch(r"pytorch_model.*\.bin", f)]
        if not weights:
            raise SftscopeError(f"hub repo {repo_id} has no *.safetensors or pytorch_model*.bin weights")
        local = snapshot_download(repo_id, revision=revision, allow_patterns=["*.json", *weights])
    except SftscopeError:
        raise
    except Exception as exc:  # network, auth, unknown repo: one line for the user
        raise SftscopeError(f"could not fetch {repo_id} from the Hugging Face hub: {exc}") from exc
    return Path(local)
