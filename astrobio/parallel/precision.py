"""The mixed-precision layout of a GPU run, applied as the model is built: the LLM in bf16 (its
frozen base stays bf16, 2 bytes/param), every trained module in fp32 (FSDP's policy casts them
to bf16 for compute)."""

from __future__ import annotations

import torch

from astrobio.config import Config
from astrobio.models import UnifiedMultiModalSystem


def build_model(config: Config, low_precision: bool,
                load_llm_weights: bool = True) -> UnifiedMultiModalSystem:
    """The system with the LLM in bf16 and the rest in fp32 under `low_precision` (CUDA), else
    all in fp32. On the current default device; `load_llm_weights=False` leaves a saved LLM on
    the meta device (`load.py`)."""
    if not low_precision:
        return UnifiedMultiModalSystem(config, load_llm_weights=load_llm_weights)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = UnifiedMultiModalSystem(config, load_llm_weights=load_llm_weights)
    finally:
        torch.set_default_dtype(default)
    for name, module in model.named_children():
        if name != "llm":
            _to_fp32(module)
    _to_fp32(model.llm.numerical_projector)
    _to_fp32(model.llm.spectral_projector)
    return model


def _to_fp32(module: torch.nn.Module) -> None:
    """`module.float()` by new parameter objects (`.float()` swaps them in place, which fails
    on the fake tensors of the memory planner)."""
    for sub in module.modules():
        for key, param in sub._parameters.items():
            if param is not None and param.is_floating_point():
                sub._parameters[key] = torch.nn.Parameter(param.detach().float(),
                                                          requires_grad=param.requires_grad)
        for key, buffer in sub._buffers.items():
            if buffer is not None and buffer.is_floating_point():
                sub._buffers[key] = buffer.float()
