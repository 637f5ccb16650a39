"""Materialising a model built on the meta device: every rank allocates and fills only its shards.

Under torchrun the system is built on the meta device, laid out (LoRA, tensor parallelism,
activation checkpointing, FSDP2: `parallelize`), and only then given memory: `materialize`
allocates the module's tensors on the device (`to_empty`, which FSDP2 follows by re-registering
its sharded parameters) and fills each parameter and buffer with this rank's box of the whole
tensor (`local_box`: the offsets and sizes of a DTensor's local shard, whatever its placements:
TP, FSDP or both), so no rank ever holds the whole model. Two sources:

  `SafetensorsFiles`  a saved LLM (`model.llm.path`, `save_pretrained`'s safetensors): each
                      rank reads only its box of each tensor through safetensors' slices of the
                      memory-mapped file. Rotary tables, which are not saved, are recomputed.
  `RankZeroModel`     a random initialisation, made once on rank 0's host (the same numbers one
                      process would draw with the same seed); rank 0 broadcasts each tensor in
                      turn and every rank keeps its box, so one whole tensor at a time is on a
                      device, and one whole model on one host.

LoRA adapters are not in either source: each is drawn whole as `LoRALinear` draws it and each
rank keeps its box, so every rank and one process agree on them.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import safe_open
from torch import nn
from torch.distributed.tensor import DTensor

from astrobio.errors import ConfigError
from astrobio.parallel.lora import LoRALinear
from astrobio.parallel.mesh import local_box
from astrobio.parallel.qlora import is_nf4, quantize

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
LLM_PREFIX = "llm.lm."


def saved_tensor_files(path: str | Path) -> dict[str, Path]:
    """Which safetensors file of the directory `path` holds each tensor name."""
    path = Path(path)
    if (path / INDEX_FILE).is_file():
        weight_map = json.loads((path / INDEX_FILE).read_text())["weight_map"]
        return {name: path / file for name, file in weight_map.items()}
    if (path / SINGLE_FILE).is_file():
        with safe_open(path / SINGLE_FILE, framework="pt") as handle:
            return dict.fromkeys(handle.keys(), path / SINGLE_FILE)
    raise ConfigError(f"model.llm.path {str(path)!r}: neither {SINGLE_FILE} nor {INDEX_FILE} "
                      "there; give a directory written by save_pretrained (safetensors)")


def unwrapped_name(name: str) -> str:
    """The unparallelized model's name of a tensor that wrappers (activation checkpointing,
    LoRA's `base`) have renamed."""
    return name.replace("_checkpoint_wrapped_module.", "").replace(".base.", ".")


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


class SafetensorsFiles:
    """The LLM saved at `path`; `read(name, box)` reads only that box of the tensor (names are
    the system's, `llm.lm.` + the LLM's own). Use as a context manager (files are opened once)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.files = saved_tensor_files(path)
        self._stack = contextlib.ExitStack()
        self._handles: dict[Path, object] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()
        self._handles.clear()

    def has(self, name: str) -> bool:
        return name.startswith(LLM_PREFIX) and name[len(LLM_PREFIX):] in self.files

    def read(self, name: str, box: tuple[slice, ...], shape, dtype) -> torch.Tensor:
        key = name[len(LLM_PREFIX):]
        if not self.has(name):
            raise ConfigError(f"model.llm.path {str(self.path)!r}: tensor {key!r} of the model "
                              "is not in its safetensors files")
        file = self.files[key]
        if file not in self._handles:
            self._handles[file] = self._stack.enter_context(safe_open(file, framework="pt"))
        part = self._handles[file].get_slice(key)
        if tuple(part.get_shape()) != tuple(shape):
            raise ConfigError(f"model.llm.path {str(self.path)!r}: tensor {key!r} has shape "
                              f"{tuple(part.get_shape())}, the model expects {tuple(shape)}")
        return part[box].to(dtype)


class RankZeroModel:
    """A model that only rank 0 holds (`model` there, None elsewhere); `read` broadcasts each
    whole tensor from rank 0 over `group` and returns this rank's box of it. Collective: every
    rank reads the same names in the same order."""

    def __init__(self, model: nn.Module | None, device: torch.device, group=None):
        self.device, self.group = device, group
        self.tensors = {} if model is None else {**dict(model.named_parameters()),
                                                 **dict(model.named_buffers())}

    def has(self, name: str) -> bool:
        return True

    def read(self, name: str, box: tuple[slice, ...], shape, dtype) -> torch.Tensor:
        if name in self.tensors:
            whole = self.tensors[name].detach().to(self.device, dtype)
        else:
            whole = torch.empty(shape, dtype=dtype, device=self.device)
        if dist.is_initialized() and dist.get_world_size(self.group) > 1:
            dist.broadcast(whole, src=dist.get_global_rank(self.group, 0) if self.group
                           else 0, group=self.group)
        return whole[box]


def materialize(module: nn.Module, source, device: torch.device, prefix: str = "") -> None:
    """Allocate `module` (built on the meta device, then laid out by `parallelize`) on `device`
    and fill every parameter and buffer with its box from `source` (`SafetensorsFiles`,
    `RankZeroModel`), by the unwrapped name `prefix + name`; LoRA adapters are drawn afresh
    (module docstring). NF4 placeholders (`qlora.py`) are filled first, one whole weight read
    and quantized at a time, and the rest allocated around them."""
    with torch.no_grad():
        quantized = _fill_nf4(module, source, device, prefix)
    if quantized:
        _allocate_meta(module, device)
    else:
        module.to_empty(device=device)  # FSDP2 re-registers its sharded parameters after it
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            full_name = prefix + unwrapped_name(name)
            if (".lora_" in name or is_nf4(tensor)
                    or (_is_rotary(name) and not source.has(full_name))):
                continue
            local = _local(tensor)
            local.copy_(source.read(full_name, local_box(tensor), tensor.shape, local.dtype))
        for name, sub in module.named_modules():
            if isinstance(sub, LoRALinear):
                sub.reset_adapters()
            elif _is_rotary(name + ".") and not source.has(f"{prefix}{name}.inv_freq"):
                fresh = type(sub)(sub.config)  # the rotary tables are not saved: recomputed
                for key, buffer in sub.named_buffers():
                    buffer.copy_(getattr(fresh, key))


def _fill_nf4(module: nn.Module, source, device: torch.device, prefix: str) -> int:
    """Replace each NF4 placeholder on the meta device by the NF4 tensor of its source weight,
    read whole in the placeholder's dtype; the full-precision copy is dropped before the next
    is read. Returns how many. Runs before FSDP (an NF4 base is sharded once quantized)."""
    count = 0
    for module_name, sub in module.named_modules():
        for key, param in sub._parameters.items():
            if param is None or not is_nf4(param) or not param.is_meta:
                continue
            name = prefix + unwrapped_name(f"{module_name}.{key}")
            whole = source.read(name, tuple(slice(0, n) for n in param.shape), param.shape,
                                param.dtype).to(device)
            sub._parameters[key] = nn.Parameter(quantize(whole, param), requires_grad=False)
            del whole
            count += 1
    return count


def _allocate_meta(module: nn.Module, device: torch.device) -> None:
    """`to_empty` of the tensors still on the meta device only (it would empty an NF4 weight
    already filled); for a module FSDP has not sharded yet."""
    for sub in module.modules():
        for store in (sub._parameters, sub._buffers):
            for key, tensor in store.items():
                if tensor is None or not tensor.is_meta:
                    continue
                empty = torch.empty_like(tensor, device=device)
                store[key] = (nn.Parameter(empty, requires_grad=tensor.requires_grad)
                              if isinstance(tensor, nn.Parameter) else empty)


def _is_rotary(name: str) -> bool:
    return "rotary_emb." in name
