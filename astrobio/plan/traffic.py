"""Collective traffic of a parallel plan: counted on a real (or fake) step, and its analytic ideal.

Bytes are what one rank sends over its links in a ring implementation, the usual cost measure
(Korthikanti et al. 2022, Patarasuk & Yuan 2009): for a collective over `g` ranks whose full
message is `M` bytes, an all-gather (M = its output) or a reduce-scatter (M = its input) sends
`(g - 1) / g * M`, an all-reduce (a reduce-scatter and an all-gather) `2 (g - 1) / g * M`, a
broadcast or scatter `(g - 1) / g * M` from the source's side.

`CollectiveCounter` is a dispatch mode that records every collective: DTensor's (functional
collectives, `_c10d_functional.*`: the tensor-parallel plan, loss parallelism, DTensor
gradient reductions; kind "tp") and those issued through `torch.distributed` itself (`c10d.*`:
FSDP2's all-gathers and reduce-scatters; kind "fsdp"). It works with gloo on the CPU and with
the fake process group on fake tensors (the planner), since it reads only the shapes.

`ideal_bytes` is the least traffic the plan needs, term by term (`t` = TP degree, `s` LLM
positions, `T` text tokens, `b` micro-batch, `h` hidden, `r` LoRA rank, `L` layers, `F` =
forward passes per decoder layer: 2 under full recomputation, else 1; `e` = bytes of an
activation element, `rho(g) = (g - 1) / g`):

    layers       L (4F + 4) rho(t) s b h e. Korthikanti et al. 2022 (TP + sequence
                 parallelism, their section 4.2.2): each decoder layer's forward has two
                 all-gathers (the sequence-sharded norm output, before attention and before
                 the MLP) and two reduce-scatters (after o_proj and down_proj) of [s, b, h];
                 the backward has the same four, conjugated. A recomputed forward repeats its
                 four.
    lora         rowwise adapters (o_proj, down_proj): A's r-wide output is reduce-scattered
                 over the sequence in each forward and all-gathered in the backward:
                 L 2 (F + 1) rho(t) s b r e; each replicated adapter matrix's gradient is
                 all-reduced once: 2 rho(t) 4 r (5 h + 2 h) per layer (fp32, A of q k v gate
                 up, B of o down).
    boundary     the LLM's replicated ends: the vocabulary-parallel embedding's all-reduce of
                 [b, T, h], the gradient of the first layer's input all-gathered, the final
                 norm's output all-gathered, the lm_head's input gradient all-reduced (its
                 consumers read the hidden states whole): rho(t) e h (2 b T + b s + b s + 2 N),
                 `N` = the LM loss's supervised positions in the micro-batch (<= b T).
    loss         the vocabulary-parallel cross-entropy: three all-reduces of fp32 [N] (the max,
                 the sum of exponentials, the target logit): 3 * 2 rho(t) 4 N.
    fsdp         per unit over `g` ranks: the all-gather of its parameters in the compute dtype
                 (again in the backward, unless it is the root, which keeps them), and the
                 reduce-scatter of its fp32 gradients: rho(g) (n_gathered e_p (2 or 1) +
                 4 n_trained), each padded to a multiple of g. A frozen base is gathered but,
                 having no gradient, never reduced.
    clip         gradient clipping: one all-reduce of one fp32 scalar per mesh the gradients
                 live on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_funcol = torch.ops._c10d_functional
_c10d = torch.ops.c10d


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _rho(g: int) -> float:
    return (g - 1) / g


# Per op: (name, kind, sent bytes per rank from its args); `g` = ranks in the group.
def _funcol_bytes(func, args) -> tuple[str, int, float] | None:
    packet = func._overloadpacket
    if packet in (_funcol.all_gather_into_tensor, _funcol.all_gather_into_tensor_coalesced):
        inputs = args[0] if isinstance(args[0], (list, tuple)) else [args[0]]
        g = int(args[1])
        return "all_gather", g, _rho(g) * g * sum(map(_nbytes, inputs))
    if packet in (_funcol.reduce_scatter_tensor, _funcol.reduce_scatter_tensor_coalesced):
        inputs = args[0] if isinstance(args[0], (list, tuple)) else [args[0]]
        g = int(args[2])
        return "reduce_scatter", g, _rho(g) * sum(map(_nbytes, inputs))
    if packet in (_funcol.all_reduce, _funcol.all_reduce_coalesced):
        inputs = args[0] if isinstance(args[0], (list, tuple)) else [args[0]]
        g = _group_size(args[2])
        return "all_reduce", g, 2 * _rho(g) * sum(map(_nbytes, inputs))
    if packet is _funcol.broadcast:
        g = _group_size(args[2])
        return "broadcast", g, _rho(g) * _nbytes(args[0])
    if packet is _funcol.all_to_all_single:
        g = _group_size(args[3])
        return "all_to_all", g, _rho(g) * _nbytes(args[0])
    return None


def _ranks(group) -> int:
    """Ranks of a c10d op's process-group argument (a TorchScript object)."""
    import torch.distributed as dist

    return dist.ProcessGroup.unbox(group).size()


def _c10d_bytes(func, args) -> tuple[str, int, float] | None:
    packet = func._overloadpacket
    if packet is _c10d._allgather_base_:
        g = _ranks(args[2])
        return "all_gather", g, _rho(g) * _nbytes(args[0])
    if packet is _c10d.allgather_into_tensor_coalesced_:
        g = _ranks(args[2])
        return "all_gather", g, _rho(g) * sum(map(_nbytes, args[0]))
    if packet is _c10d.allgather_:
        g = _ranks(args[2])
        return "all_gather", g, _rho(g) * g * sum(map(_nbytes, args[1]))
    if packet is _c10d._reduce_scatter_base_:
        g = _ranks(args[2])
        return "reduce_scatter", g, _rho(g) * _nbytes(args[1])
    if packet is _c10d.reduce_scatter_tensor_coalesced_:
        g = _ranks(args[2])
        return "reduce_scatter", g, _rho(g) * sum(map(_nbytes, args[1]))
    if packet in (_c10d.allreduce_, _c10d.allreduce_coalesced_):
        g = _ranks(args[1])
        return "all_reduce", g, 2 * _rho(g) * sum(map(_nbytes, args[0]))
    if packet is _c10d.broadcast_:
        g = _ranks(args[1])
        return "broadcast", g, _rho(g) * sum(map(_nbytes, args[0]))
    if packet is _c10d.scatter_:
        g = _ranks(args[2])
        return "scatter", g, _rho(g) * sum(map(_nbytes, args[0]))
    return None


def _group_size(group_name: str) -> int:
    from torch.distributed.distributed_c10d import _resolve_process_group

    return _resolve_process_group(group_name).size()


@dataclass
class Collective:
    op: str  # all_gather, reduce_scatter, all_reduce, broadcast, scatter, all_to_all
    kind: str  # "tp" (DTensor's functional collectives) or "fsdp" (torch.distributed's)
    ranks: int
    bytes: float  # sent by this rank
    shape: tuple = ()


@dataclass
class Traffic:
    collectives: list[Collective] = field(default_factory=list)

    def bytes(self, kind: str | None = None) -> float:
        return sum(c.bytes for c in self.collectives if kind in (None, c.kind))

    def count(self, kind: str | None = None) -> int:
        return sum(1 for c in self.collectives if kind in (None, c.kind) and c.ranks > 1)

    def table(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(kind, op) -> (collectives, bytes)."""
        rows: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0.0])
        for c in self.collectives:
            rows[c.kind, c.op][0] += 1
            rows[c.kind, c.op][1] += c.bytes
        return {key: (n, b) for key, (n, b) in sorted(rows.items())}


class CollectiveCounter(TorchDispatchMode):
    """Records every collective dispatched while active (module docstring) in `.traffic`."""

    def __init__(self):
        super().__init__()
        self.traffic = Traffic()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.distributed.tensor import DTensor

        if any(issubclass(t, DTensor) for t in types):
            return NotImplemented  # let DTensor lower itself into collectives first
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if isinstance(func, torch._ops.OpOverload):
            namespace = func.namespace
            counted = (_funcol_bytes(func, args) if namespace == "_c10d_functional"
                       else _c10d_bytes(func, args) if namespace == "c10d" else None)
            if counted is not None:
                op, ranks, sent = counted
                kind = "tp" if namespace == "_c10d_functional" else "fsdp"
                first = args[0][0] if isinstance(args[0], (list, tuple)) else args[0]
                while isinstance(first, (list, tuple)):
                    first = first[0]
                self.traffic.collectives.append(Collective(op, kind, ranks, sent,
                                                           tuple(first.shape)))
        return out


# ---- the analytic ideal -----------------------------------------------------------------------

@dataclass
class IdealTraffic:
    layers: float = 0.0
    lora: float = 0.0
    boundary: float = 0.0
    loss: float = 0.0
    fsdp: float = 0.0
    clip: float = 0.0

    @property
    def tp(self) -> float:
        return self.layers + self.lora + self.boundary + self.loss

    @property
    def total(self) -> float:
        return self.tp + self.fsdp + self.clip


def ideal_bytes(config, spec, target: str = "cuda", supervised: int | None = None,
                ) -> IdealTraffic:
    """The least traffic one rank sends in one training step of `spec` (module docstring), for
    the sequence- and loss-parallel TP plan; `target` "cuda" moves bf16 activations and
    computes FSDP units in bf16, "cpu" in fp32. `supervised`: the LM loss's positions in the
    micro-batch (default: every text token)."""
    from astrobio.plan.memory import llm_positions, text_tokens, unit_sizes

    parallel = config.parallel
    if spec.tp > 1 and not (parallel.sequence_parallel and parallel.loss_parallel):
        raise ValueError("ideal_bytes models the sequence- and loss-parallel plan only")
    e = 2 if target == "cuda" else 4
    llm = config.model.llm
    t, b, h, r, L = spec.tp, spec.micro_batch, llm.hidden_size, spec.lora_rank, llm.num_layers
    s, text = llm_positions(config, spec), text_tokens(config, spec)
    n_sup = b * text if supervised is None else supervised
    passes = 2 if spec.activation_checkpointing == "full" else 1
    ideal = IdealTraffic()
    if t > 1:
        rho = _rho(t)
        ideal.layers = L * (4 * passes + 4) * rho * s * b * h * e
        if r:
            ideal.lora = L * (2 * (passes + 1) * rho * s * b * r * e + 2 * rho * 4 * r * 7 * h)
        ideal.boundary = rho * e * h * (2 * b * text + 2 * b * s + 2 * n_sup)
        ideal.loss = 3 * 2 * rho * 4 * n_sup
    for gathered, reduced, ranks, root in unit_sizes(config, spec, target):
        if ranks > 1:
            ideal.fsdp += _rho(ranks) * ((1 if root else 2) * gathered + 4 * reduced)
    # Clipping reduces one scalar per mesh holding sharded gradients: TP, FSDP's over all
    # ranks, and with dp > 1 the LLM units' (dp, tp) mesh.
    meshes = [m for m, on in ((t, t > 1), (spec.world, spec.world > 1), (spec.dp, spec.dp > 1))
              if on]
    ideal.clip = sum(2 * _rho(m) * 4 for m in meshes)
    return ideal
