"""Megatron-style tensor parallelism of the transformers Llama inside `MultiModalLLM`.

Applied with `parallelize_module` to the unchanged modules (Shoeybi et al. 2019, Korthikanti et
al. 2022), per decoder layer, `t` = TP degree:

    input_layernorm, post_attention_layernorm   SequenceParallel: activations [B, S/t, h]
    self_attn, mlp (input)                      all-gather the sequence: [B, S, h] replicated
    q_proj, k_proj, v_proj, gate_proj, up_proj  colwise: weight rows (heads, FFN) sharded
    o_proj, down_proj                           rowwise, reduce-scatter back to [B, S/t, h]

`embed_tokens` is rowwise over the vocabulary with a replicated output (the LLM concatenates
its prefix tokens to the embeddings before the layers, so the first layer shards the sequence
itself); the final norm runs sequence-parallel and all-gathers its output, because the system
reads the hidden states as a plain tensor; `lm_head` is colwise over the vocabulary. With loss
parallelism the logits stay a vocabulary-sharded DTensor and the cross-entropy runs inside
`torch.distributed.tensor.parallel.loss_parallel()` (`loss_parallel_context`) without
gathering them; a forward hook on the `MultiModalLLM` turns the replicated loss into a plain
tensor for the rest of the loss sum. Without sequence parallelism the norms are replicated and
the rowwise layers all-reduce.

LoRA adapters (`lora.LoRALinear`) follow their base: colwise base -> A replicated, B colwise;
rowwise base -> A rowwise (its r-wide output all-reduced), B replicated.
Attention heads must divide by `t` (each rank keeps whole heads; the Llama attention reshapes
with `-1` heads, so it runs on its local heads unchanged).
"""

from __future__ import annotations

import contextlib
import dataclasses

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Replicate, Shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    PrepareModuleInput,
    PrepareModuleOutput,
    RowwiseParallel,
    SequenceParallel,
    loss_parallel,
    parallelize_module,
)

from astrobio.errors import ConfigError
from astrobio.parallel.lora import COLWISE, ROWWISE, LoRALinear


def check_divisible(lm_config, tp: int) -> None:
    """Each rank must hold whole heads, whole FFN columns and an equal vocabulary slice."""
    sizes = {"num_attention_heads": lm_config.num_attention_heads,
             "num_key_value_heads": lm_config.num_key_value_heads,
             "intermediate_size": lm_config.intermediate_size,
             "vocab_size": lm_config.vocab_size}
    for name, value in sizes.items():
        if value % tp:
            raise ConfigError(f"model.llm {name}={value} is not divisible by parallel.tp={tp}")


def _linear_plan(name: str, module: nn.Module, colwise: bool, sp: bool) -> dict:
    row_out = Shard(1) if sp else Replicate()
    if not isinstance(module, LoRALinear):
        style = (ColwiseParallel() if colwise
                 else RowwiseParallel(output_layouts=row_out, use_local_output=not sp))
        return {name: style}
    if colwise:
        return {f"{name}.base": ColwiseParallel(), f"{name}.lora_b": ColwiseParallel()}
    # A's r-wide output is all-reduced whole: B then runs on a contiguous [B, S, r] (a
    # sequence-scattered one is strided, and Linear's view of it fails) and, under SP, its
    # output is cut to this rank's sequence slice to meet the base's.
    plan = {f"{name}.base": RowwiseParallel(output_layouts=row_out, use_local_output=not sp),
            f"{name}.lora_a": RowwiseParallel(output_layouts=Replicate())}
    if sp:
        plan[f"{name}.lora_b"] = PrepareModuleOutput(
            output_layouts=Replicate(), desired_output_layouts=Shard(1), use_local_output=False)
    return plan


def layer_plan(layer: nn.Module, sp: bool) -> dict:
    """The `parallelize_module` plan of one `LlamaDecoderLayer` (possibly with LoRA)."""
    plan = {}
    for block_name, names, colwise in (("self_attn", COLWISE, True),
                                       ("self_attn", ROWWISE, False),
                                       ("mlp", COLWISE, True), ("mlp", ROWWISE, False)):
        block = getattr(layer, block_name)
        for name in names:
            if hasattr(block, name):
                plan.update(_linear_plan(f"{block_name}.{name}", getattr(block, name),
                                         colwise, sp))
    if sp:
        plan.update({
            "input_layernorm": SequenceParallel(),
            "post_attention_layernorm": SequenceParallel(),
            "self_attn": PrepareModuleInput(
                input_kwarg_layouts={"hidden_states": Shard(1)},
                desired_input_kwarg_layouts={"hidden_states": Replicate()},
                use_local_output=True),
            "mlp": PrepareModuleInput(input_layouts=(Shard(1),),
                                      desired_input_layouts=(Replicate(),),
                                      use_local_output=True),
        })
    return plan


def _loss_to_local(module, inputs, output):
    if isinstance(output.loss, DTensor):
        return dataclasses.replace(output, loss=output.loss.to_local())
    return output


def apply_tensor_parallel(llm: nn.Module, tp_mesh: DeviceMesh, sequence_parallel: bool = True,
                          loss_parallel: bool = True) -> None:
    """Shard `llm` (a `MultiModalLLM`) over `tp_mesh` in place."""
    lm = llm.lm
    check_divisible(lm.config, tp_mesh.size())
    # parallelize_module wraps parameters anew (requires_grad=True); frozen ones stay frozen.
    frozen = {name for name, p in lm.named_parameters() if not p.requires_grad}
    sp = sequence_parallel
    for index, layer in enumerate(lm.model.layers):
        plan = layer_plan(layer, sp)
        if sp and index == 0:
            plan[""] = PrepareModuleInput(input_layouts=(Replicate(),),
                                          desired_input_layouts=(Shard(1),))
        for fqn, style in plan.items():
            parallelize_module(layer.get_submodule(fqn), tp_mesh, style)
    parallelize_module(lm.model.embed_tokens, tp_mesh,
                       RowwiseParallel(input_layouts=Replicate(), output_layouts=Replicate()))
    if sp:
        parallelize_module(lm.model.norm, tp_mesh, SequenceParallel())
        parallelize_module(lm.model.norm, tp_mesh, PrepareModuleOutput(
            output_layouts=Shard(1), desired_output_layouts=Replicate(), use_local_output=True))
    if loss_parallel:
        parallelize_module(lm.lm_head, tp_mesh, ColwiseParallel(
            output_layouts=Shard(-1), use_local_output=False))
        llm.register_forward_hook(_loss_to_local)
    else:
        parallelize_module(lm.lm_head, tp_mesh, ColwiseParallel(output_layouts=Replicate()))
    for name, param in lm.named_parameters():
        if name in frozen:
            param.requires_grad_(False)


def loss_parallel_context(enabled: bool):
    """The context the forward and the backward must both run in when logits are sharded."""
    return loss_parallel() if enabled else contextlib.nullcontext()
