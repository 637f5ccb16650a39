"""Rank 0 of the real plan on fake tensors: per-phase memory peaks and the collectives of a step.

Rank 0 of `spec` is built exactly as a torchrun rank builds it (`MeshParallelism.build`): the
system on the meta device, laid out by `parallelize`, then materialized shard by shard
(`load.materialize`, here from a stand-in for the LLM's files that hands each rank its box),
inside `FakeTensorMode` (no storage is allocated) with the fake process group standing in for
the other ranks. It then runs two training steps, an evaluation forward, a checkpoint save and
a resume; `MemTracker` accounts every tensor, and its peak is read per phase:

    load       the build: empty shards allocated and filled tensor by tensor
    forward    of the second (steady-state: AdamW's moments exist) training step
    backward   its backward
    optimizer  gradient clipping, AdamW step, gradients freed
    eval       a no-grad forward in eval mode (the trainer's validation)
    save       a DCP save: the state dicts and every item DCP resolves for writing (an
               asynchronous save stages those items in host memory: `staged_bytes`)
    restore    a resume into the running model: the optimizer state rebuilt empty (DCP's
               `get_optimizer_state_dict` initialises it with a zero-gradient step), then every
               item read into a host buffer and copied into its shard

The peak of a phase is the device's total at its highest within the phase, what was live
before it included. `CollectiveCounter` records the second step's collectives (`traffic.py`).

Things that need care: MemTracker registers gradient hooks on every parameter, which a frozen
one refuses (`_Tracker` gives those an inert handle, and keeps only the device-wide peak: its
per-module walk on every op would take hours for 40 layers); the graph VAE runs on real tensors
(`_real_graph_encoder`); the text's `input_ids` enter as a fake constant so the LLM's range
check can read them; boolean-mask selections of fake values (the LM loss's supervised
positions) count every position (`_EveryMaskedElement`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch._subclasses.fake_tensor import unset_fake_temporarily

from astrobio.config import Config
from astrobio.parallel.dcp import model_state
from astrobio.plan.memory import Breakdown, PlanSpec, text_tokens, with_seq
from astrobio.plan.traffic import CollectiveCounter, Traffic

PHASES = ("load", "forward", "backward", "optimizer", "eval", "save", "restore")


@dataclass
class Measurement:
    phases: dict[str, Breakdown] = field(default_factory=dict)  # each phase's peak
    traffic: Traffic = field(default_factory=Traffic)  # one training step's collectives
    staged_bytes: float = 0.0  # host memory of an asynchronous checkpoint save
    seconds: float = 0.0

    @property
    def peak(self) -> Breakdown:
        return max(self.phases.values(), key=lambda b: b.total)


class _InertHandle:
    def remove(self) -> None:
        pass


def _tracker():
    from torch.distributed._tools.mem_tracker import _TOTAL_KEY, MemTracker

    class _Tracker(MemTracker):
        """MemTracker that leaves frozen parameters (which refuse gradient hooks) alone, keeps
        only the device-wide peak, and restarts that peak per phase."""

        def _track_module_params_and_buffers(self, module, install_grad_hooks=True):
            for param in module.parameters():
                if not param.requires_grad and param not in self._param_to_grad_hook_handles:
                    self._param_to_grad_hook_handles[param] = (_InertHandle(), _InertHandle())
            return super()._track_module_params_and_buffers(module, install_grad_hooks)

        def _update_peak_stats(self, peak_state) -> None:
            # MemTracker's per-module walk on every op costs O(modules) and makes a 40-layer
            # model take hours on fake tensors; only the device-wide peak is read here.
            for device, snap in self._curr_mem_snap.items():
                if self._peak_mem.get(device, 0) < snap[_TOTAL_KEY]:
                    self._peak_mem[device] = snap[_TOTAL_KEY]
                    self._peak_mem_snap[device] = dict(snap)

        def start_phase(self, new_pass: bool) -> None:
            if new_pass:  # MemTracker tracks one forward per module; its statistics are unused
                self.reset_mod_stats()
            self._peak_mem_snap = copy.deepcopy(self._curr_mem_snap)
            self._peak_mem = {dev: snap[_TOTAL_KEY] for dev, snap in self._curr_mem_snap.items()}

        @contextlib.contextmanager
        def without_module_hooks(self):
            """For a no-grad pass: ModTracker hooks the gradients of module inputs, and a fake
            expanded parameter (the fusion queries) claims to need one without a graph."""
            self._mod_tracker.__exit__(None, None, None)
            try:
                yield
            finally:
                self._mod_tracker.__enter__()

        def loaded(self) -> Breakdown:
            """The load phase: tensors allocated before MemTracker knew them as parameters;
            what stays is parameters and buffers, the rest of the peak was temporary."""
            kept = float(sum(snap.get(k, 0) for device, snap in self._curr_mem_snap.items()
                             if device.type != "meta" for k in ("Parameter", "Buffer")))
            return Breakdown(parameters=kept, temporaries=self.phase_peak().total - kept)

        def phase_peak(self) -> Breakdown:
            # The device's: meta tensors made inside (NF4 placeholders) hold no memory.
            snaps = [snap for device, snap in self._peak_mem_snap.items()
                     if device.type != "meta"]
            peak = snaps[0] if snaps else {}
            get = lambda *keys: float(sum(peak.get(k, 0) for k in keys))
            return Breakdown(parameters=get("Parameter", "Buffer"), gradients=get("Gradient"),
                             optimizer=get("Optstate"), activations=get("Activation"),
                             temporaries=get("Temp", "Other"))

    return _Tracker()


class _CudaMeter:
    """Per-phase peaks of a real CUDA run, from the caching allocator's counters (totals: the
    allocator does not know what a tensor is for)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def start_phase(self, new_pass: bool) -> None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def phase_peak(self) -> Breakdown:
        torch.cuda.synchronize()
        return Breakdown(temporaries=float(torch.cuda.max_memory_allocated()))

    def loaded(self) -> Breakdown:
        kept = float(torch.cuda.memory_allocated())
        return Breakdown(parameters=kept, temporaries=self.phase_peak().total - kept)

    def track_external(self, *modules) -> None:
        pass

    def without_module_hooks(self):
        return contextlib.nullcontext()


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
            if not isinstance(mask, FakeTensor) or mask.dtype != torch.bool:
                return None
            return None if mask.constant is not None else mask

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


def _constant(tensor: torch.Tensor, mode) -> torch.Tensor:
    """`tensor` as a fake constant of `mode` (a fake tensor that keeps its values)."""
    return mode.fake_tensor_converter.from_real_tensor(mode, tensor, make_constant=True)


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


def _real_graph_encoder(model, config: Config) -> None:
    """Swap in a real-tensor GraphVAE of the same shape whose forward leaves the fake mode: its
    message passing has sizes that depend on the graph (`repeat_interleave` over the CSR's
    rows), which fake tensors cannot answer. Its output feeds the fake rest; it is not sharded
    (a few MB at most: 1.9 M parameters in the 13b preset)."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    from astrobio.models import GraphVAE

    m = config.model
    with unset_fake_temporarily():
        graph = GraphVAE(m.gnn_hidden, m.gnn_layers, m.gnn_latent, m.d_model,
                         n_heads=m.fusion_heads)
    forward = graph.forward

    def real_forward(*args, **kwargs):
        with unset_fake_temporarily():
            return forward(*args, **kwargs)

    graph.forward = real_forward
    model.graph_encoder = graph


class _LLMFilesStandIn:
    """`load.SafetensorsFiles`' stand-in: each tensor's box of zeros, as the files would hand
    it (nothing is read; values are irrelevant to memory)."""

    def has(self, name: str) -> bool:
        return "rotary_emb." not in name

    def read(self, name, box, shape, dtype) -> torch.Tensor:
        return torch.zeros([s.stop - s.start for s in box], dtype=dtype)


def _has_frozen(model) -> bool:
    return any(not p.requires_grad for p in model.parameters())


def _checkpoint_items(model, optimizer):
    """DCP's save planning of rank 0's state: the planner, its final plan, and the metadata.
    The LLM comes from files (`_LLMFilesStandIn`), so a frozen base is referenced by them, not
    written (`dcp.save(base=...)`), and a resume does not read it."""
    from torch.distributed.checkpoint import DefaultSavePlanner
    from torch.distributed.checkpoint.state_dict import (
        get_optimizer_state_dict,
    )

    state = {"model": model_state(model, without_frozen=_has_frozen(model)),
             "optimizer": get_optimizer_state_dict(model, optimizer)}
    planner = DefaultSavePlanner()
    planner.set_up_planner(state, is_coordinator=True)
    with unset_fake_temporarily():  # DTensor finds shard offsets with (real) tensor ops
        local = planner.create_local_plan()
        global_plans, metadata = planner.create_global_plan([local])
    return state, planner, planner.finish_plan(global_plans[0]), metadata


def _save(model, optimizer) -> float:
    """What a DCP save does on the device: state dicts, every item resolved for writing; the
    bytes a host staging copy would take are returned."""
    from torch.distributed.checkpoint.planner import WriteItemType

    _, planner, plan, _ = _checkpoint_items(model, optimizer)
    staged = 0.0
    for item in plan.items:
        if item.type != WriteItemType.BYTE_IO:
            data = planner.resolve_data(item)
            staged += data.numel() * data.element_size()
    return staged


def _restore(model, optimizer, metadata) -> None:
    """What a DCP load does on the device: a fresh optimizer state, then each item read into a
    buffer of its size and copied into its shard."""
    from torch.distributed.checkpoint import DefaultLoadPlanner
    from torch.distributed.checkpoint.planner import LoadItemType
    from torch.distributed.checkpoint.state_dict import (
        get_optimizer_state_dict,
    )

    optimizer.state.clear()
    state = {"model": model_state(model, without_frozen=_has_frozen(model)),
             "optimizer": get_optimizer_state_dict(model, optimizer)}
    planner = DefaultLoadPlanner()
    planner.set_up_planner(state, metadata, is_coordinator=True)
    with unset_fake_temporarily():
        items = planner.create_local_plan().items
    for item in items:
        if item.type == LoadItemType.BYTE_IO:
            continue
        target = planner.resolve_tensor(item)
        target.copy_(torch.empty(item.lengths, dtype=target.dtype))
        planner.commit_tensor(item, target)


def run(config: Config, spec: PlanSpec, target: str = "cuda", device_type: str = "cpu",
        fake: bool = True) -> Measurement:
    """Rank 0 of `spec` with the precisions of `target` ("cuda": bf16 LLM base and compute,
    "cpu": fp32): the phases of the module docstring. On CPU-hosted fake tensors by default;
    `fake=False` allocates for real on `device_type` (the GPU benchmark: peaks then come from
    the CUDA allocator). Call inside `fake_process_group(spec.world)`."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed.device_mesh import init_device_mesh

    from astrobio.parallel.load import materialize
    from astrobio.parallel.parallelize import (
        adamw,
        clip_grad_norm_,
        parallelize,
        trainable_parameters,
        uses_loss_parallel,
    )
    from astrobio.parallel.precision import build_model
    from astrobio.parallel.tensor_parallel import loss_parallel_context
    from astrobio.train.losses import compute_losses

    started = time.perf_counter()
    # torchao's NF4 all-gather checks that its output is FSDP's buffer by storage pointers,
    # which fake storages answer with a deprecation warning; sizes, not pointers, count here.
    warnings.filterwarnings("ignore", message="Accessing the data pointer of FakeTensor",
                            category=UserWarning)
    config = with_seq(config, spec)
    device = torch.device(device_type)
    real_batch = synthetic_batch(config, spec.micro_batch, text_tokens(config, spec))
    mesh = init_device_mesh(device_type, (spec.dp, spec.tp), mesh_dim_names=("dp", "tp"))
    parallel = spec.parallel_config()
    low = target == "cuda"
    mode = FakeTensorMode(allow_non_fake_inputs=True) if fake else contextlib.nullcontext()
    autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=low)
    loss_context = lambda: loss_parallel_context(uses_loss_parallel(mesh, parallel))
    measurement = Measurement()
    meter = _CudaMeter() if device_type == "cuda" else _tracker()
    with torch.device("meta"):
        model = build_model(config, low)
    masks = _EveryMaskedElement() if fake else contextlib.nullcontext()
    with mode, masks, device, meter:

        def batch():  # a fresh constant each pass: an op that may alias one drops its value
            if not fake:
                return real_batch.to(device)
            return dataclasses.replace(real_batch,
                                       input_ids=_constant(real_batch.input_ids, mode))

        @contextlib.contextmanager
        def phase(name: str):
            meter.start_phase(new_pass=name in ("forward", "eval"))
            yield
            measurement.phases[name] = meter.phase_peak()

        meter.start_phase(new_pass=True)
        parallelize(model, mesh, parallel, low_precision=low,
                    materialize=lambda m: materialize(m, _LLMFilesStandIn(), device))
        if fake:
            _real_graph_encoder(model, config)
        meter.track_external(model)
        measurement.phases["load"] = meter.loaded()
        params = trainable_parameters(model)
        optimizer = adamw(params, lr=1e-4, weight_decay=0.01, foreach=False)
        meter.track_external(optimizer)

        def train_step(record: bool):
            counter = CollectiveCounter() if record else contextlib.nullcontext()
            timed = phase if record else lambda name: contextlib.nullcontext()
            with counter, loss_context():
                with timed("forward"), autocast:
                    inputs = batch()
                    output = model(inputs)
                    total = compute_losses(output, inputs, config.loss, step=1)[0]
                with timed("backward"):
                    total.backward()
                    del output, total
            with counter, timed("optimizer"):
                clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if record:
                measurement.traffic = counter.traffic

        train_step(record=False)  # creates the optimizer state: the next step is steady-state
        train_step(record=True)
        with phase("eval"), meter.without_module_hooks(), torch.no_grad(), loss_context(), \
                autocast:
            model.eval()
            model(batch())
            model.train()
        with phase("save"):
            measurement.staged_bytes = _save(model, optimizer)
        metadata = _checkpoint_items(model, optimizer)[3]
        with phase("restore"):
            _restore(model, optimizer, metadata)
    measurement.seconds = time.perf_counter() - started
    return measurement


def measure(config: Config, spec: PlanSpec, target: str = "cuda") -> Measurement:
    """`run` in a fake process group of `spec.world` ranks."""
    with fake_process_group(spec.world):
        return run(config, spec, target)
