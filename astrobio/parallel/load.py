"""Each rank reads only its shards of a saved LLM (`model.llm.path`).

`from_pretrained` would build the whole LM in every rank's host memory (26 GB in bf16 for the
13B preset) before tensor parallelism kept a part of it. Under torchrun the LM is built on the
meta device instead (`UnifiedMultiModalSystem(load_llm_weights=False)`); `parallelize` applies
tensor parallelism to the empty LM and then calls `load_llm_shards`, which allocates this
rank's shards (`to_empty`) and fills them from the safetensors files: each tensor is read
through safetensors' memory map and `distribute_tensor(..., src_data_rank=None)` keeps this
rank's slice without communication, so host memory holds one full tensor at a time. LoRA
adapters are initialised afresh and the rotary tables recomputed (neither is in the file).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

from astrobio.errors import ConfigError
from astrobio.parallel.lora import LoRALinear

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


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


def _saved_name(name: str) -> str:
    """The name `save_pretrained` gave a parameter that wrappers have renamed since."""
    return name.replace("_checkpoint_wrapped_module.", "").replace(".base.", ".")


def load_llm_shards(lm: nn.Module, path: str | Path, device: torch.device) -> None:
    """Allocate `lm` (a meta-device Llama, possibly tensor-parallel and LoRA-wrapped) on
    `device` and fill it from the safetensors files at `path` (module docstring)."""
    files = saved_tensor_files(path)
    lm.to_empty(device=device)
    handles: dict[Path, object] = {}
    with torch.no_grad(), contextlib.ExitStack() as opened:
        for name, param in lm.named_parameters():
            if ".lora_" in name:
                continue
            key = _saved_name(name)
            if key not in files:
                raise ConfigError(f"model.llm.path {str(path)!r}: tensor {key!r} of the model "
                                  "is not in its safetensors files")
            if files[key] not in handles:
                handles[files[key]] = opened.enter_context(safe_open(files[key], framework="pt"))
            full = handles[files[key]].get_tensor(key).to(device=device, dtype=param.dtype)
            if isinstance(param, DTensor):
                mine = distribute_tensor(full, param.device_mesh, param.placements,
                                         src_data_rank=None)
                param.to_local().copy_(mine.to_local())
            else:
                param.copy_(full)
        for module in lm.modules():
            if isinstance(module, LoRALinear):
                module.reset_adapters()
        rotary = lm.model.rotary_emb
        fresh = type(rotary)(lm.config)
        for name, buffer in rotary.named_buffers():
            buffer.copy_(getattr(fresh, name))
