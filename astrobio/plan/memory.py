"""Per-rank memory of a parallel plan: an analytic model, and a measurement on fake tensors.

Analytic model (bytes on one rank; `t` = TP, `d` = DP degree, `b` micro-batch, `s` LLM
positions (prefix + text), `h` hidden, `a` heads, `L` layers, `V` vocabulary, `e` bytes per
activation element: 2 in bf16 on CUDA, 4 in fp32 on the CPU):

    parameters   frozen LLM base: e_base bytes/param (bf16 = 2), TP-split: colwise/rowwise
                 projections, embedding and lm_head / t, norms whole; trained parameters
                 (LoRA, encoders, fusion, heads, projectors; the LLM too when trained): 4
                 bytes (fp32 master), FSDP-sharded / d
    gradients    4 bytes per trained parameter, / d
    optimizer    AdamW moments, 8 bytes per trained parameter, / d  (4 + 4 + 8 = 16 bytes:
                 the mixed-precision AdamW cost)
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
                 then); plus the largest FSDP unit gathered whole (e bytes/param)
    peak         parameters, gradients and optimizer state (steady state: the moments exist)
                 plus the larger of the backward's activations + temporaries and the
                 optimizer step's temporary (AdamW one tensor at a time, `foreach=False`:
                 foreach kernels would hold several fp32 copies of every trained parameter)

The encoders' activations are not in the analytic model; at micro-batch 1 they are a small
share next to the LLM's (the measurement shows them).

Measurement: rank 0 of the real plan (`parallelize`) is built inside `FakeTensorMode` (no
storage is allocated) with the fake process group standing in for the other ranks, and runs
two full steps (forward, backward, AdamW step); the second, with the optimizer state in place,
under `MemTracker`, which accounts every tensor by category at the step's peak (MemTracker
files what the optimizer step allocates, its temporaries too, as optimizer state). Things that
need care: MemTracker registers gradient hooks on every parameter, which a frozen one refuses
(`_Tracker` gives those an inert handle, and keeps only the device-wide peak: its per-module
walk on every op would take hours for 40 layers); the graph VAE's message passing has
data-dependent sizes (`repeat_interleave` over the CSR's rows), which fake tensors cannot
answer, so it runs on
real tensors (its parameters are a few MB) with its output feeding the fake rest; the text's
`input_ids` enter as a fake constant so the LLM's range check can read them, and boolean-mask
selections (the LM loss's supervised positions) count every position.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from astrobio.config import Config, ParallelConfig
from astrobio.parallel.lora import COLWISE, ROWWISE

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

    @property
    def world(self) -> int:
        return self.tp * self.dp

    def parallel_config(self) -> ParallelConfig:
        return ParallelConfig(tp=self.tp, dp=self.dp, lora_rank=self.lora_rank,
                              freeze_llm=self.freeze_llm,
                              activation_checkpointing=self.activation_checkpointing)

    def describe(self) -> str:
        lora = f"LoRA r={self.lora_rank}" if self.lora_rank else (
            "LLM frozen" if self.freeze_llm else "LLM trained in full")
        return (f"TP={self.tp} DP={self.dp}, {lora}, activation checkpointing "
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


def text_tokens(config: Config, spec: PlanSpec) -> int:
    return spec.seq if spec.seq is not None else config.data.max_text_tokens


def llm_positions(config: Config, spec: PlanSpec) -> int:
    return config.model.prefix_tokens + text_tokens(config, spec)


def _with_seq(config: Config, spec: PlanSpec) -> Config:
    """`config` with room for `spec.seq` text tokens (the model checks its position table)."""
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, max_text_tokens=text_tokens(config, spec)))
    positions = llm_positions(config, spec)
    if positions > config.model.llm.max_position_embeddings:
        llm = dataclasses.replace(config.model.llm, max_position_embeddings=positions)
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, llm=llm))
    return config


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


@functools.lru_cache(maxsize=8)
def _parameters(config_json: str, lora_rank: int, lora_alpha: float, freeze_llm: bool
                ) -> tuple[list[tuple[str, int, bool]], tuple[tuple[str, ...], ...]]:
    """(name, numel, trained) of every parameter, and the names in each FSDP unit, of the
    model built on the meta device (no memory, no initialisation cost beyond the structure)."""
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
    params = [(n, p.numel(), p.requires_grad) for n, p in model.named_parameters()]
    units = {"trained": trained_units(model), "llm": llm_units(model)}
    # An FSDP unit manages the parameters no unit listed before it (its children) took.
    taken: set[int] = set()
    unit_names = []
    for unit in units["trained"] + units["llm"]:
        own = [p for p in unit.parameters() if p.requires_grad and id(p) not in taken]
        taken.update(id(p) for p in own)
        unit_names.append(tuple(names[id(p)] for p in own))
    unit_names = tuple(unit_names)
    return params, (unit_names, len(units["trained"]))


def parameter_counts(config: Config, spec: PlanSpec) -> dict[str, float]:
    """Per-rank parameter counts: `frozen` (the LLM base), `trained`, the largest trained
    tensor and the largest FSDP unit (trained parameters, whole); from the model's structure
    on the meta device and the plan's sharding rules."""
    config_json = json.dumps(_with_seq(config, spec).to_dict(), sort_keys=True)
    params, (unit_names, n_trained_units) = _parameters(
        config_json, spec.lora_rank, 16.0, spec.freeze_llm)
    numel = {name: count for name, count, _ in params}
    frozen = trained = largest = 0.0
    for name, count, is_trained in params:
        count = count / (_tp_divisor(name, spec.tp) if name.startswith("llm.lm.") else 1)
        if not name.startswith("llm.lm.") or spec.dp > 1:
            count /= spec.dp
        if is_trained:
            trained += count
            largest = max(largest, count)
        else:
            frozen += count
    units = unit_names if spec.dp > 1 else unit_names[:n_trained_units]
    largest_unit = max(sum(numel[n] for n in unit) for unit in units)
    return {"frozen": frozen, "trained": trained, "largest_trained": largest,
            "largest_unit": largest_unit}


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
    # FSDP gathers one unit at a time (in the compute dtype, bf16 on CUDA) and frees it after.
    backward_temps = (max(logits, layer_full if mode == "full" else 0.0)
                      + e * counts["largest_unit"])
    base_bytes = 2 if cuda else 4
    static = Breakdown(
        parameters=base_bytes * counts["frozen"] + TRAINED_BYTES["parameters"] * counts["trained"],
        gradients=TRAINED_BYTES["gradients"] * counts["trained"],
        optimizer=TRAINED_BYTES["optimizer"] * counts["trained"])
    # The peak is the larger of the backward's (activations live) and the optimizer step's
    # (activations freed; AdamW, one parameter at a time, holds one fp32 temporary).
    optimizer_temps = 4 * counts["largest_trained"]
    if activations + backward_temps >= optimizer_temps:
        return dataclasses.replace(static, activations=activations, temporaries=backward_temps)
    return dataclasses.replace(static, temporaries=optimizer_temps)


# ---- one real step of rank 0 ----------------------------------------------------------------

class _InertHandle:
    def remove(self) -> None:
        pass


def _tracker():
    from torch.distributed._tools.mem_tracker import MemTracker

    class _Tracker(MemTracker):
        """MemTracker that leaves frozen parameters (which refuse gradient hooks) alone and keeps
        only the device-wide peak."""

        def _track_module_params_and_buffers(self, module, install_grad_hooks=True):
            for param in module.parameters():
                if not param.requires_grad and param not in self._param_to_grad_hook_handles:
                    self._param_to_grad_hook_handles[param] = (_InertHandle(), _InertHandle())
            return super()._track_module_params_and_buffers(module, install_grad_hooks)

        def _update_peak_stats(self, peak_state) -> None:
            # Only the device-wide peak is read here; MemTracker's per-module walk on every op
            # costs O(modules) and makes a 40-layer model take hours on fake tensors.
            for device, snap in self._curr_mem_snap.items():
                if self._peak_mem.get(device, 0) < snap["Total"]:
                    self._peak_mem[device] = snap["Total"]
                    self._peak_mem_snap[device] = dict(snap)

    return _Tracker()


class _EveryMaskedElement:
    """A dispatch mode (over FakeTensorMode) that answers boolean-mask indexing of fake tensors
    as if every element were selected: the size a fake tensor cannot know, taken at its
    maximum (the LM loss selects its supervised positions this way; all of them is the
    analytic model's assumption too). Values are irrelevant here; only sizes are."""

    def __new__(cls):
        from torch._subclasses.fake_tensor import FakeTensor
        from torch.utils._python_dispatch import TorchDispatchMode

        aten = torch.ops.aten
        puts = {aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}

        def fake_mask(indices) -> torch.Tensor | None:
            if len(indices) != 1 or indices[0] is None:
                return None
            mask = indices[0]
            return mask if isinstance(mask, FakeTensor) and mask.dtype == torch.bool else None

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func is aten.index.Tensor and fake_mask(args[1]) is not None:
                    return args[0].flatten(0, args[1][0].dim() - 1).clone()
                if func in puts and fake_mask(args[1]) is not None:
                    return args[0] if func is not aten.index_put.default else args[0].clone()
                return func(*args, **kwargs)

        return Mode()


def synthetic_batch(config: Config, micro_batch: int, seq: int):
    """`micro_batch` generated planets with exactly `seq` text tokens each."""
    from astrobio.data.batch import multimodal_collate_fn
    from astrobio.data.synthetic.generator import generate_samples

    rng = np.random.default_rng(0)
    samples = [dataclasses.replace(
        sample, input_ids=rng.integers(1, config.model.llm.vocab_size, seq).astype(np.int64))
        for sample in generate_samples(0, micro_batch, config.data)]
    return multimodal_collate_fn(samples)


@contextlib.contextmanager
def fake_process_group(world: int):
    """Rank 0 of `world` ranks, every collective answered locally (no other process)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise RuntimeError("a process group is already running; measure in a fresh process")
    dist.init_process_group("fake", rank=0, world_size=world, store=FakeStore())
    try:
        yield
    finally:
        dist.destroy_process_group()


def _real_graph_encoder(model: nn.Module, config: Config, fake: bool) -> None:
    """Swap in a real-tensor GraphVAE of the same shape whose forward leaves the fake mode."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    from astrobio.models import GraphVAE

    m = config.model
    with unset_fake_temporarily():
        graph = GraphVAE(m.gnn_hidden, m.gnn_layers, m.gnn_latent, m.d_model,
                         n_heads=m.fusion_heads)
    if fake:
        forward = graph.forward

        def real_forward(*args, **kwargs):
            with unset_fake_temporarily():
                return forward(*args, **kwargs)

        graph.forward = real_forward
    model.graph_encoder = graph


def run_step(config: Config, spec: PlanSpec, device_type: str, fake: bool = True,
             target: str = "cuda"):
    """Build rank 0 of `spec` on `device_type` and run two training steps, the second under
    MemTracker; returns (MemTracker, seconds).

    With `fake` nothing is allocated (FakeTensorMode, on any device); without, tensors are
    real (the GPU benchmark). `target` "cuda" uses the GPU plan's precisions (bf16 LLM base,
    bf16 compute under autocast and FSDP's policy), "cpu" fp32 throughout. Call inside
    `fake_process_group(spec.world)`."""
    import time

    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed.device_mesh import init_device_mesh

    from astrobio.parallel.parallelize import (
        adamw,
        parallelize,
        trainable_parameters,
        uses_loss_parallel,
    )
    from astrobio.parallel.precision import build_model
    from astrobio.parallel.tensor_parallel import loss_parallel_context
    from astrobio.train.losses import compute_losses
    started = time.perf_counter()
    config = _with_seq(config, spec)
    device = torch.device(device_type)
    batch = synthetic_batch(config, spec.micro_batch, text_tokens(config, spec)).to(device)
    mesh = init_device_mesh(device_type, (spec.dp, spec.tp), mesh_dim_names=("dp", "tp"))
    parallel = spec.parallel_config()
    mode = FakeTensorMode(allow_non_fake_inputs=True) if fake else contextlib.nullcontext()
    low = target == "cuda"
    autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=low)
    masks = _EveryMaskedElement() if fake else contextlib.nullcontext()
    with mode, masks, device:
        model = build_model(config, low)
        _real_graph_encoder(model, config, fake)
        parallelize(model, mesh, parallel, low_precision=low)  # built on `device`: no .to()
        optimizer = adamw(trainable_parameters(model), lr=1e-4, weight_decay=0.01,
                          foreach=False)

        def step():
            inputs = batch
            if fake:  # a fresh constant each step: an op that may alias it drops its value
                inputs = dataclasses.replace(batch, input_ids=mode.fake_tensor_converter
                                             .from_real_tensor(mode, batch.input_ids,
                                                               make_constant=True))
            with loss_parallel_context(uses_loss_parallel(mesh, parallel)):
                with autocast:
                    output = model(inputs)
                    total = compute_losses(output, inputs, config.loss, step=1)[0]
                total.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step()  # creates the optimizer state: the tracked step is a steady-state one
        tracker = _tracker()
        tracker.track_external(model, optimizer)
        with tracker:
            step()
    return tracker, time.perf_counter() - started


def measured(tracker) -> Breakdown:
    """The tracker's peak snapshot in the planner's categories."""
    peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
    get = lambda *keys: float(sum(peak.get(k, 0) for k in keys))
    return Breakdown(parameters=get("Parameter", "Buffer"), gradients=get("Gradient"),
                     optimizer=get("Optstate"), activations=get("Activation"),
                     temporaries=get("Temp", "Other"))


def measure(config: Config, spec: PlanSpec, target: str = "cuda") -> tuple[Breakdown, float]:
    """Rank 0's peak of one steady-state step of `spec` on fake tensors (CPU-hosted, with the
    precisions of `target`): (breakdown, seconds taken)."""
    with fake_process_group(spec.world):
        tracker, seconds = run_step(config, spec, "cpu", fake=True, target=target)
    return measured(tracker), seconds
