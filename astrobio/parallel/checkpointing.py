"""Activation checkpointing of the LLM's decoder layers, applied from outside.

`full`: each decoder layer keeps only its input and recomputes everything in the backward
(Korthikanti et al. 2022: 2sbh bytes per layer, here 2sbh/t since the input is sequence-sharded).
`selective`: the paper's selective recomputation: the attention core (QK^T, softmax, the
weighted sum; the ops whose memory grows as s^2) is recomputed and every other activation is
kept (sbh * 34/t per layer).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

from astrobio.config import ACTIVATION_CHECKPOINTING
from astrobio.errors import ConfigError

_aten = torch.ops.aten
ATTENTION_CORE = {
    _aten._scaled_dot_product_flash_attention.default,
    _aten._scaled_dot_product_efficient_attention.default,
    _aten._scaled_dot_product_cudnn_attention.default,
    _aten._scaled_dot_product_flash_attention_for_cpu.default,
    _aten._softmax.default,
    _aten.bmm.default,
}


def _recompute_attention_core(ctx, op, *args, **kwargs):
    return (CheckpointPolicy.PREFER_RECOMPUTE if op in ATTENTION_CORE
            else CheckpointPolicy.MUST_SAVE)


def _selective_contexts():
    return create_selective_checkpoint_contexts(_recompute_attention_core)


def wrap_layer(layer: nn.Module, mode: str) -> nn.Module:
    if mode == "full":
        return checkpoint_wrapper(layer, preserve_rng_state=False)
    if mode == "selective":
        return checkpoint_wrapper(layer, preserve_rng_state=False,
                                  context_fn=partial(_selective_contexts))
    raise ConfigError(f"activation checkpointing mode {mode!r}; choose one of "
                      f"{ACTIVATION_CHECKPOINTING}")


def apply_activation_checkpointing(layers: nn.ModuleList, mode: str) -> None:
    """Wrap each module of `layers` (the decoder layers) in place; `none` leaves them."""
    if mode == "none":
        return
    for index, layer in enumerate(layers):
        layers[index] = wrap_layer(layer, mode)
