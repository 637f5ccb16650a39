"""Per-rank memory of a parallel plan: the analytic model, and the headroom a GPU must keep.

Analytic model (bytes on one rank; `t` = TP, `d` = DP degree, `w = d t` ranks, `b` micro-batch,
`s` LLM positions (prefix + text), `h` hidden, `a` heads, `L` layers, `V` vocabulary, `e` bytes
per activation element: 2 in bf16 on CUDA, 4 in fp32 on the CPU):

    parameters   frozen LLM base: 2 bytes/param in bf16 (`qlora.nf4_bytes`, 0.516, for the
                 LoRA-wrapped projections in NF4; embedding, head and norms stay bf16), split
                 by TP (colwise/rowwise projections, embedding and lm_head / t, norms whole)
                 and, with d > 1, by FSDP / d; trained parameters: 4 bytes (fp32 master):
                 LoRA adapters as TP splits them (/ d with d > 1), everything else
                 (encoders, fusion, heads, projectors) FSDP-sharded over all w ranks
    gradients    4 bytes per trained parameter, sharded as the parameter
    optimizer    AdamW moments, 8 bytes per trained parameter, sharded as the parameter
                 (4 + 4 + 8 = 16 bytes: the mixed-precision AdamW cost)
    activations  per decoder layer (Korthikanti et al. 2022, tensor + sequence parallel):
                   none       s b h (34/t + 5 a s / (h t))   (the s^2 term only where the
                                                           attention scores are materialised;
                                                           flash / memory-efficient SDPA keeps
                                                           none of them)
                   selective  s b h 34/t
                   full       2 s b h / t (the sequence-sharded layer input)
                 scaled by e/2 (the paper counts 2-byte elements), plus the LLM's input
                 embeddings and gathered output hidden states, 2 s b h e
    temporaries  the backward's: the larger of the logits (e + fp32 copy 4 (none in fp32) +
                 fp32 gradient 4 bytes per element of [b, s, V/t]) and, with full
                 recomputation, one layer's activations rebuilt (the logits are gone by
                 then); plus the largest FSDP unit gathered whole (e bytes/param; an NF4
                 base gathered in NF4). An NF4 base adds to the layer's term one projection
                 dequantized, (8 + 3e) bytes per weight: torchao's `get_original_weight`
                 holds both halves' code indices as int64 (8), their looked-up halves,
                 scaled halves and the stacked result (3e) until it returns (measured: 14.05
                 bytes per weight in bf16, 20.08 in fp32)
    peak         parameters, gradients and optimizer state (steady state: the moments exist)
                 plus the larger of the backward's activations + temporaries and the
                 optimizer step's temporary (AdamW one tensor at a time, `foreach=False`:
                 foreach kernels would hold several fp32 copies of every trained parameter)

The encoders' activations are not in the analytic model; at micro-batch 1 they are a small
share next to the LLM's (the measurement, `measure.py`, shows them).

Headroom: what a GPU holds besides the tensors either figure counts (`Headroom`): the CUDA
context (the driver's and the loaded kernels', about 0.3-0.6 GiB with CUDA 12's lazy loading),
each NCCL communicator's buffers (NCCL_BUFFSIZE 4 MiB per channel and peer, send and receive,
plus its own structures: about 0.1-0.3 GiB each) and the caching allocator's fragmentation
(reserved over allocated: 5-20 % in practice, less with `expandable_segments`). The defaults are
these ranges' upper ends, stated rather than measured (no GPU here); a plan fits when
`peak (1 + fragmentation) + context + communicators x NCCL` is within the GPU's memory.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass

import torch

from astrobio.config import Config, ParallelConfig
from astrobio.errors import ConfigError
from astrobio.parallel.lora import COLWISE, ROWWISE
from astrobio.parallel.qlora import nf4_bytes

GiB = 1024**3
CATEGORIES = ("parameters", "gradients", "optimizer", "activations", "temporaries")
TRAINED_BYTES = {"parameters": 4, "gradients": 4, "optimizer": 8}


@dataclass(frozen=True)
class PlanSpec:
    tp: int = 1
    dp: int = 1
    lora_rank: int = 0
    activation_checkpointing: str = "none"
    micro_batch: int = 1
    seq: int | None = None  # text tokens; None = config.data.max_text_tokens
    freeze_llm: bool = False
    quantize_base: str = "none"  # "nf4": QLoRA

    @property
    def world(self) -> int:
        return self.tp * self.dp

    def parallel_config(self) -> ParallelConfig:
        return ParallelConfig(tp=self.tp, dp=self.dp, lora_rank=self.lora_rank,
                              freeze_llm=self.freeze_llm,
                              activation_checkpointing=self.activation_checkpointing,
                              quantize_base=self.quantize_base)

    def describe(self) -> str:
        lora = f"LoRA r={self.lora_rank}" if self.lora_rank else (
            "LLM frozen" if self.freeze_llm else "LLM trained in full")
        base = ", NF4 base (QLoRA)" if self.quantize_base == "nf4" else ""
        return (f"TP={self.tp} DP={self.dp}, {lora}{base}, activation checkpointing "
                f"{self.activation_checkpointing}, micro-batch {self.micro_batch}")


@dataclass
class Breakdown:
    parameters: float = 0.0
    gradients: float = 0.0
    optimizer: float = 0.0
    activations: float = 0.0
    temporaries: float = 0.0

    @property
    def total(self) -> float:
        return sum(getattr(self, name) for name in CATEGORIES)

    def gib(self) -> dict[str, float]:
        return {**{n: getattr(self, n) / GiB for n in CATEGORIES}, "total": self.total / GiB}


@dataclass(frozen=True)
class Headroom:
    """What a GPU holds outside the counted tensors (module docstring), in bytes."""

    cuda_context: float = 0.6 * GiB
    nccl_per_communicator: float = 0.3 * GiB
    fragmentation: float = 0.15  # of the peak allocated

    @staticmethod
    def communicators(spec: PlanSpec) -> int:
        """NCCL communicators the plan opens: the default group (barriers, loss means), the
        TP group, the FSDP group of all ranks, and the data-parallel group of the LLM."""
        if spec.world == 1:
            return 0
        groups = {"default"}
        if spec.tp > 1:
            groups.add("tp")
        if spec.dp > 1:
            groups.add("dp")
        if spec.tp > 1 and spec.dp > 1:
            groups.add("dp_tp")
        return len(groups)

    def reserved(self, spec: PlanSpec, peak: float) -> float:
        return (self.cuda_context + self.nccl_per_communicator * self.communicators(spec)
                + self.fragmentation * peak)

    def fits(self, spec: PlanSpec, peak: float, gpu_memory: float) -> bool:
        return peak + self.reserved(spec, peak) <= gpu_memory


def text_tokens(config: Config, spec: PlanSpec) -> int:
    return spec.seq if spec.seq is not None else config.data.max_text_tokens


def llm_positions(config: Config, spec: PlanSpec) -> int:
    return config.model.prefix_tokens + text_tokens(config, spec)


def with_seq(config: Config, spec: PlanSpec) -> Config:
    """`config` with `spec.seq` text tokens; refused where they and the prefix exceed the
    LLM's positions (the model would refuse them: the planner never enlarges it)."""
    positions = llm_positions(config, spec)
    limit = config.model.llm.max_position_embeddings
    if positions > limit:
        prefix = config.model.prefix_tokens
        raise ConfigError(f"--seq {text_tokens(config, spec)}: with the {prefix} prefix "
                          f"tokens that is {positions} positions, beyond the LLM's "
                          f"max_position_embeddings {limit} (preset {config.preset}); at most "
                          f"--seq {limit - prefix}")
    return dataclasses.replace(config, data=dataclasses.replace(
        config.data, max_text_tokens=text_tokens(config, spec)))


# ---- analytic model ----------------------------------------------------------------------

def _tp_divisor(name: str, tp: int) -> int:
    """How many ways TP splits the parameter `name` of the Llama (see tensor_parallel.py)."""
    parts = name.split(".")
    if "embed_tokens" in parts or "lm_head" in parts:
        return tp
    for proj in COLWISE + ROWWISE:
        if proj not in parts:
            continue
        leaf = parts[parts.index(proj) + 1]
        colwise = proj in COLWISE
        if leaf in ("weight", "bias", "base"):
            return tp
        if leaf == "lora_a":
            return 1 if colwise else tp
        if leaf == "lora_b":
            return tp if colwise else 1
    return 1


def _is_quantized(name: str) -> bool:
    """A LoRA-wrapped projection's base weight: what QLoRA holds in NF4."""
    return ".base." in name and name.startswith("llm.lm.")


@functools.lru_cache(maxsize=8)
def _parameters(config_json: str, lora_rank: int, lora_alpha: float, freeze_llm: bool
                ) -> tuple[dict[str, tuple[tuple[int, ...], bool]], tuple[tuple[str, ...], ...],
                           int]:
    """{name: (shape, trained)} of every parameter; the names in each FSDP unit (the non-LLM
    units, the root's remainder last among them, then the LLM's units) and how many units are
    non-LLM; from the model built on the meta device."""
    from astrobio.config import config_from_dict
    from astrobio.models import UnifiedMultiModalSystem
    from astrobio.parallel.fsdp import llm_units, trained_units
    from astrobio.parallel.parallelize import freeze_llm_base

    config = config_from_dict(json.loads(config_json))
    parallel = ParallelConfig(lora_rank=lora_rank, lora_alpha=lora_alpha, freeze_llm=freeze_llm)
    with torch.device("meta"):
        model = UnifiedMultiModalSystem(config)
        freeze_llm_base(model, parallel)
    names = {id(p): n for n, p in model.named_parameters()}
    params = {n: (tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()}
    in_llm = {id(p) for p in model.llm.lm.parameters()}
    # An FSDP unit manages the parameters no unit listed before it (its children) took.
    taken: set[int] = set()
    unit_names = []

    def claim(candidates) -> None:
        own = [p for p in candidates if id(p) not in taken]
        taken.update(id(p) for p in own)
        unit_names.append(tuple(names[id(p)] for p in own))

    for unit in trained_units(model):
        claim(unit.parameters())
    claim(p for p in model.parameters() if id(p) not in in_llm)  # the root's remainder
    n_trained_units = len(unit_names)
    for unit in llm_units(model):
        claim(unit.parameters())
    return params, tuple(unit_names), n_trained_units


def _config_key(config: Config, spec: PlanSpec) -> tuple:
    config_json = json.dumps(with_seq(config, spec).to_dict(), sort_keys=True)
    return config_json, spec.lora_rank, 16.0, spec.freeze_llm


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def parameter_counts(config: Config, spec: PlanSpec) -> dict[str, float]:
    """Per-rank parameter counts: `frozen` (the LLM base; `frozen_nf4` of it quantized),
    `trained`, the largest trained tensor, the largest FSDP unit gathered (all of its
    parameters, TP-sharded as they are) and the largest NF4 weight gathered; from the model's
    structure on the meta device and the plan's sharding rules."""
    params, unit_names, n_trained_units = _parameters(*_config_key(config, spec))
    frozen = frozen_nf4 = trained = largest = largest_nf4 = 0.0
    for name, (shape, is_trained) in params.items():
        count = _numel(shape) / _sharding(name, spec)
        if is_trained:
            trained += count
            largest = max(largest, count)
        else:
            frozen += count
            if spec.quantize_base == "nf4" and _is_quantized(name):
                frozen_nf4 += count
                largest_nf4 = max(largest_nf4, _numel(shape) / _tp_share(name, spec))
    units = unit_names if spec.dp > 1 else unit_names[:n_trained_units]
    largest_unit = max(sum(_numel(params[n][0]) / _tp_share(n, spec) for n in unit)
                       for unit in units)
    return {"frozen": frozen, "frozen_nf4": frozen_nf4, "trained": trained,
            "largest_trained": largest, "largest_unit": largest_unit,
            "largest_nf4": largest_nf4}


def _tp_share(name: str, spec: PlanSpec) -> int:
    return _tp_divisor(name, spec.tp) if name.startswith("llm.lm.") else 1


def _sharding(name: str, spec: PlanSpec) -> int:
    """Into how many parts the plan splits the parameter `name` (fsdp.py, tensor_parallel.py):
    LLM parameters by TP, and by FSDP over dp when dp > 1; the rest by FSDP over all ranks."""
    if name.startswith("llm.lm."):
        return _tp_divisor(name, spec.tp) * spec.dp
    return spec.world


def unit_sizes(config: Config, spec: PlanSpec, target: str = "cuda"
               ) -> list[tuple[float, float, int, bool]]:
    """Per FSDP unit, on one rank: (bytes one all-gather returns, fp32 gradient elements one
    reduce-scatter takes, the ranks it spans, whether it is the root), each parameter padded
    along dim 0 to a multiple of the ranks as FSDP2 pads it. Compute dtype: bf16 for "cuda", fp32
    for "cpu"; an NF4 base is gathered in NF4."""
    params, unit_names, n_trained_units = _parameters(*_config_key(config, spec))
    sizes = []
    for index, unit in enumerate(unit_names):
        llm_unit = index >= n_trained_units
        if llm_unit and spec.dp == 1:
            break
        ranks = spec.dp if llm_unit else spec.world
        gathered = reduced = 0.0
        for name in unit:
            shape, is_trained = params[name]
            dim0 = shape[0] // _tp_share(name, spec)
            padded = math.ceil(dim0 / ranks) * ranks * _numel(shape[1:])
            element = 4 if target != "cuda" else 2
            if spec.quantize_base == "nf4" and _is_quantized(name):
                gathered += nf4_bytes(padded, element)
            else:
                gathered += padded * element
            reduced += padded if is_trained else 0
        sizes.append((gathered, reduced, ranks, index == n_trained_units - 1))
    return sizes


def analytic(config: Config, spec: PlanSpec, device_type: str = "cuda",
             scores_materialised: bool | None = None) -> Breakdown:
    """The analytic per-rank breakdown of `spec` for `config` (see the module docstring)."""
    cuda = device_type == "cuda"
    e = 2 if cuda else 4
    if scores_materialised is None:
        scores_materialised = not cuda
    counts = parameter_counts(config, spec)
    llm = config.model.llm
    t, b = spec.tp, spec.micro_batch
    s, h, a, L, V = (llm_positions(config, spec), llm.hidden_size, llm.num_heads,
                     llm.num_layers, llm.vocab_size)
    sbh = s * b * h
    scale = e / 2
    mode = spec.activation_checkpointing
    layer_full = sbh * (34 / t + (5 * a * s / (h * t) if scores_materialised else 0)) * scale
    kept_per_layer = {"none": layer_full, "selective": sbh * 34 / t * scale,
                      "full": 2 * sbh / t * scale}[mode]
    activations = L * kept_per_layer + 2 * sbh * e
    # The loss's logits (e), their fp32 copy (none when e is 4 already) and fp32 gradient are
    # freed before the first layer is recomputed, so the two do not add up.
    logits = s * b * V / t * (e + 4 + (4 if e != 4 else 0))
    # FSDP gathers one unit at a time (in the compute dtype, bf16 on CUDA) and frees it after;
    # an NF4 base is gathered in NF4 and each projection dequantized as it is used.
    gathered = e * counts["largest_unit"]
    layer = layer_full if mode == "full" else 0.0
    if spec.quantize_base == "nf4":
        gathered = max(g for g, *_ in unit_sizes(config, spec, device_type))
        layer += (8 + 3 * e) * counts["largest_nf4"]
    backward_temps = max(logits, layer) + gathered
    base_bytes = 2 if cuda else 4
    frozen_bytes = (base_bytes * (counts["frozen"] - counts["frozen_nf4"])
                    + nf4_bytes(counts["frozen_nf4"], base_bytes))
    static = Breakdown(
        parameters=frozen_bytes + TRAINED_BYTES["parameters"] * counts["trained"],
        gradients=TRAINED_BYTES["gradients"] * counts["trained"],
        optimizer=TRAINED_BYTES["optimizer"] * counts["trained"])
    # The peak is the larger of the backward's (activations live) and the optimizer step's
    # (activations freed; AdamW, one parameter at a time, holds one fp32 temporary).
    optimizer_temps = 4 * counts["largest_trained"]
    if activations + backward_temps >= optimizer_temps:
        return dataclasses.replace(static, activations=activations, temporaries=backward_temps)
    return dataclasses.replace(static, temporaries=optimizer_temps)
