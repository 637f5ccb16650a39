"""A step-time model of a plan, fed by the collectives counted on its fake-tensor step.

Compute: the hardware FLOPs of one training step on all ranks, over `ranks x peak x
efficiency`. Per LLM position (PaLM's count, as `astrobio.train.throughput` counts MFU):
forward `2N + 4 L h s`, backward `2N + 8 L h s` (input gradients; the frozen base has no weight
gradients) `+ 2 N_trained`; full recomputation repeats the forward (so this is HFU's count).
`efficiency` is the fraction of the dense bf16 peak the matmuls reach (an assumption: 0.5 by
default, for large bf16 GEMMs at 0.6-0.8 on Ampere and the rest of the step at far less).

Communication (`traffic.Traffic`, bytes one rank sends): tensor-parallel collectives sit on the
critical path (each layer waits for its all-gather and reduce-scatter: eager PyTorch does not
overlap them), at `link` bytes/s plus `latency` per collective; FSDP's all-gathers and
reduce-scatters are prefetched and overlap the compute, so only what exceeds the compute time
shows, plus the first unit's gather, which nothing hides. Data parallelism multiplies the
samples per step (each DP rank its own micro-batch), hence the time per sample is the step time
over `dp x micro_batch`.

Tokens per second count text tokens (the prefix is not text); MFU is model FLOPs (without
recomputation) per second over the job's peak, as the trainer logs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from astrobio.config import Config
from astrobio.plan.memory import PlanSpec, llm_positions, parameter_counts, text_tokens
from astrobio.plan.traffic import Traffic


@dataclass(frozen=True)
class Hardware:
    peak_flops: float = 111e12  # dense bf16 of one GPU (RTX A5000, datasheet)
    link_bytes_s: float = 25e9  # between two GPUs (PCIe 4.0 x16, one direction, achievable)
    latency_s: float = 20e-6  # per collective (NCCL over PCIe, small messages)
    efficiency: float = 0.5  # fraction of the peak the step's compute reaches


@dataclass(frozen=True)
class StepTime:
    compute: float
    tp_comm: float
    fsdp_exposed: float
    seconds: float  # per step
    tokens_per_s: float
    mfu: float
    samples_per_step: int

    @property
    def seconds_per_sample(self) -> float:
        return self.seconds / self.samples_per_step


def _model_counts(config: Config, spec: PlanSpec) -> tuple[float, float]:
    """(all, trained) parameters of the whole model (not per rank)."""
    whole = PlanSpec(lora_rank=spec.lora_rank, freeze_llm=spec.freeze_llm, seq=spec.seq)
    counts = parameter_counts(config, whole)
    return counts["frozen"] + counts["trained"], counts["trained"]


def step_time(config: Config, spec: PlanSpec, traffic: Traffic, hardware: Hardware) -> StepTime:
    """The modelled time of one training step of `spec` (module docstring); `traffic` is one
    rank's step."""
    llm = config.model.llm
    n_all, n_trained = _model_counts(config, spec)
    s, h, L = llm_positions(config, spec), llm.hidden_size, llm.num_layers
    forward = 2 * n_all + 4 * L * h * s
    backward = 2 * n_all + 8 * L * h * s + 2 * n_trained
    model_flops = forward + backward
    hardware_flops = model_flops + (forward if spec.activation_checkpointing == "full" else 0)
    positions = spec.dp * spec.micro_batch * s
    compute = hardware_flops * positions / (spec.world * hardware.peak_flops
                                           * hardware.efficiency)
    tp_comm = (traffic.bytes("tp") / hardware.link_bytes_s
               + traffic.count("tp") * hardware.latency_s)
    fsdp = (traffic.bytes("fsdp") / hardware.link_bytes_s
            + traffic.count("fsdp") * hardware.latency_s)
    first_gather = max((c.bytes for c in traffic.collectives
                        if c.kind == "fsdp" and c.op == "all_gather"), default=0.0)
    fsdp_exposed = max(0.0, fsdp - compute) + first_gather / hardware.link_bytes_s
    seconds = compute + tp_comm + fsdp_exposed
    text = spec.dp * spec.micro_batch * text_tokens(config, spec)
    mfu = model_flops * positions / seconds / (spec.world * hardware.peak_flops)
    return StepTime(compute, tp_comm, fsdp_exposed, seconds, text / seconds, mfu,
                    spec.dp * spec.micro_batch)
