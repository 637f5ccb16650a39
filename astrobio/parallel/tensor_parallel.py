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
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_module
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    ParallelStyle,
    PrepareModuleInput,
    PrepareModuleOutput,
    RowwiseParallel,
    SequenceParallel,
    loss_parallel,
    parallelize_module,
)
from torch.distributed.tensor.placement_types import Placement

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


class ReplicateParallel(ParallelStyle):
    """Every parameter of the module replicated over the mesh as a DTensor (so its gradient is
    reduced over the ranks that share it); a plain-tensor input is taken as `input_layout`; the
    output stays a DTensor unless `use_local_output`."""

    def __init__(self, input_layout: Placement | None = None, use_local_output: bool = False):
        super().__init__()
        self.input_layout = input_layout or Replicate()
        self.use_local_output = use_local_output

    def _prepare_input(self, module, inputs, mesh):
        x = inputs[0]
        if not isinstance(x, DTensor):
            return (DTensor.from_local(x, mesh, (self.input_layout,), run_check=False),
                    *inputs[1:])
        local = x.to_local()
        if local.is_contiguous():
            return inputs
        # A sequence-scattered tensor's shard is strided (the collective ran on a permuted
        # copy), and Linear flattens its leading dims with a view, which needs it contiguous.
        return (DTensor.from_local(local.contiguous(), mesh, x.placements, run_check=False,
                                   shape=x.shape, stride=x.stride()), *inputs[1:])

    def _prepare_output(self, module, output, mesh):
        return output.to_local() if self.use_local_output else output

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        return distribute_module(module, device_mesh, input_fn=self._prepare_input,
                                 output_fn=self._prepare_output)


def _linear_plan(name: str, module: nn.Module, colwise: bool, sp: bool) -> dict:
    """Colwise layers take the block's replicated DTensor input and give local heads/columns;
    rowwise layers give a DTensor sequence-sharded (SP) or a plain all-reduced tensor."""
    row_out = Shard(1) if sp else Replicate()
    if not isinstance(module, LoRALinear):
        style = (ColwiseParallel() if colwise
                 else RowwiseParallel(output_layouts=row_out, use_local_output=not sp))
        return {name: style}
    if colwise:
        # A replicated on the replicated input, B colwise like its base: x's gradient from
        # the adapter is a partial sum like the base's, reduced once with it at the block input.
        return {f"{name}.base": ColwiseParallel(), f"{name}.lora_a": ReplicateParallel(),
                f"{name}.lora_b": ColwiseParallel()}
    # A rowwise: its r-wide partial output is reduce-scattered over the sequence (SP) or
    # all-reduced, and the replicated B runs on that slice, meeting the base's output there.
    return {f"{name}.base": RowwiseParallel(output_layouts=row_out, use_local_output=not sp),
            f"{name}.lora_a": RowwiseParallel(output_layouts=row_out, use_local_output=False),
            f"{name}.lora_b": ReplicateParallel(use_local_output=not sp)}


def layer_plan(layer: nn.Module, sp: bool) -> dict:
    """The `parallelize_module` plan of one `LlamaDecoderLayer` (possibly with LoRA).

    The attention and MLP blocks take their input as a replicated DTensor (all-gathered from
    the sequence-sharded norm output under SP): every colwise layer of the block (q, k, v or
    gate, up, and their adapters) reads that one DTensor, so their input gradients add up as
    partial sums and are reduce-scattered (all-reduced without SP) once per block, as in
    Korthikanti et al. 2022 and torchtitan's Llama plan; local inputs would reduce each
    layer's gradient on its own."""
    plan = {}
    for block_name, names, colwise in (("self_attn", COLWISE, True),
                                       ("self_attn", ROWWISE, False),
                                       ("mlp", COLWISE, True), ("mlp", ROWWISE, False)):
        block = getattr(layer, block_name)
        for name in names:
            if hasattr(block, name):
                plan.update(_linear_plan(f"{block_name}.{name}", getattr(block, name),
                                         colwise, sp))
    block_in = Shard(1) if sp else Replicate()
    plan.update({
        "self_attn": PrepareModuleInput(input_kwarg_layouts={"hidden_states": block_in},
                                        desired_input_kwarg_layouts={"hidden_states": Replicate()}),
        "mlp": PrepareModuleInput(input_layouts=(block_in,), desired_input_layouts=(Replicate(),)),
    })
    if sp:
        plan.update({"input_layernorm": SequenceParallel(),
                     "post_attention_layernorm": SequenceParallel()})
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
        elif isinstance(param, DTensor) and any(p.is_replicate() for p in param.placements):
            param.register_post_accumulate_grad_hook(_reduce_partial_gradient)


def _reduce_partial_gradient(param: DTensor) -> None:
    """A replicated parameter used on sharded data (LoRA's replicated A and B, the sequence-
    parallel norms) gets a partial-sum gradient; it is all-reduced here, once per backward,
    rather than by each optimizer and clipping op that reads it."""
    grad = param.grad
    if isinstance(grad, DTensor) and any(p.is_partial() for p in grad.placements):
        param.grad = grad.redistribute(param.device_mesh, param.placements)


def loss_parallel_context(enabled: bool):
    """The context the forward and the backward must both run in when logits are sharded."""
    return loss_parallel() if enabled else contextlib.nullcontext()
