"""`python -m astrobio.plan`: will a parallel plan fit the GPUs? Per-rank memory, two ways.

    python -m astrobio.plan --preset 13b --gpus 2 --gpu-memory 24GiB --seq 2048 --micro-batch 1

prints rank 0's peak broken into parameters, gradients, optimizer state, activations and
temporaries, from the analytic model and measured by running the real plan on fake tensors
(`astrobio.plan.memory`), and a verdict against the GPU memory less `--reserve` (CUDA
context, NCCL buffers and allocator fragmentation, which neither figure holds). The plan is
the preset's `parallel` section unless flags say otherwise; `--search` proposes the cheapest
plan that fits instead: over TP/DP degrees, LoRA ranks (or full fine-tuning), checkpointing
modes and micro-batches, the one whose analytic peak fits with the least modelled time per
sample (`seconds_per_sample`: FLOPs with recomputation, TP and FSDP traffic over one link).
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys

from astrobio.config import add_config_arguments, load_config
from astrobio.errors import ConfigError, cli
from astrobio.plan.memory import GiB, PlanSpec, analytic, measure

UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": GiB, "kb": 1e3, "mb": 1e6,
         "gb": 1e9}
AC_COST = {"none": 0, "selective": 1, "full": 2}
SEARCH_RANKS = (8, 16, 32, 64)
SEARCH_MICRO_BATCHES = (1, 2, 4, 8)


def parse_bytes(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS:
        raise ConfigError(f"cannot read {text!r} as a size; write e.g. 24GiB or 24GB")
    return float(match.group(1)) * UNITS[match.group(2).lower()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m astrobio.plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--gpus", type=int, default=2, help="ranks (one GPU each)")
    parser.add_argument("--gpu-memory", default="24GiB", help="memory of one GPU")
    parser.add_argument("--reserve", default="2GiB",
                        help="memory outside the model's tensors (context, NCCL, fragments)")
    parser.add_argument("--seq", type=int, help="text tokens per sample (default: the preset's)")
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument("--tp", type=int)
    parser.add_argument("--lora-rank", type=int)
    parser.add_argument("--activation-checkpointing", choices=tuple(AC_COST))
    parser.add_argument("--target", choices=("cuda", "cpu"), default="cuda",
                        help="precisions of the plan: cuda = bf16 base and compute, cpu = fp32")
    parser.add_argument("--search", action="store_true", help="propose the cheapest plan that "
                        "fits instead of checking the given one")
    parser.add_argument("--peak-tflops", type=float, default=111.0,
                        help="--search: dense bf16 peak of one GPU (RTX A5000: 111)")
    parser.add_argument("--link-gbs", type=float, default=25.0,
                        help="--search: GB/s between two GPUs (PCIe 4.0 x16: about 25)")
    parser.add_argument("--no-measure", action="store_true",
                        help="analytic model only (no fake-tensor run)")
    return parser.parse_args(argv)


def requested_plan(config, args) -> PlanSpec:
    parallel = config.parallel
    tp = args.tp or parallel.tp
    if args.gpus % tp:
        raise ConfigError(f"--tp {tp} does not divide --gpus {args.gpus}")
    return PlanSpec(
        tp=tp, dp=args.gpus // tp,
        lora_rank=parallel.lora_rank if args.lora_rank is None else args.lora_rank,
        activation_checkpointing=(args.activation_checkpointing
                                  or parallel.activation_checkpointing),
        micro_batch=args.micro_batch, seq=args.seq, freeze_llm=parallel.freeze_llm)


def _tp_degrees(config, gpus: int) -> list[int]:
    llm = config.model.llm
    return [t for t in range(1, gpus + 1) if gpus % t == 0 and llm.num_heads % t == 0
            and llm.num_kv_heads % t == 0 and llm.vocab_size % t == 0
            and llm.intermediate_size % t == 0]


def seconds_per_sample(config, spec: PlanSpec, peak_flops: float, link_bytes_s: float,
                       mfu: float = 0.4) -> float:
    """A rough step-time model to rank plans: the LLM's training FLOPs (2N forward, 2N input
    gradients, 2N weight gradients of what trains, another 2N forward under full
    recomputation) over every GPU at `mfu` of `peak_flops`, plus the communication per rank
    over one link: TP moves [s, h] activations in 4 collectives per layer and pass (forward,
    backward, recompute), FSDP (dp > 1) gathers the LLM's bf16 weights twice per micro-batch
    (forward, backward). The LoRA adapters' share is negligible and left out, so plans that
    differ only in rank cost the same."""
    from astrobio.plan.memory import llm_positions

    llm = config.model.llm
    s, h, L, t, d = (llm_positions(config, spec), llm.hidden_size, llm.num_layers, spec.tp,
                     spec.dp)
    n_llm = L * (4 * h * h + 3 * h * llm.intermediate_size) + 2 * llm.vocab_size * h
    trains_llm = spec.lora_rank == 0 and not spec.freeze_llm
    passes = {"none": 3, "selective": 3, "full": 4}[spec.activation_checkpointing]
    flops = 2 * n_llm * s * (passes - (0 if trains_llm else 1))
    compute = flops / (spec.world * peak_flops * mfu)
    tp_bytes = L * 4 * (passes - 1) * s * h * 2 * (t - 1) / t
    fsdp_bytes = 2 * n_llm * 2 / t * (d - 1) / d / spec.micro_batch
    return compute + (tp_bytes + fsdp_bytes) / link_bytes_s


def search(config, args, budget: float) -> PlanSpec | None:
    """The candidate with the least modelled time per sample whose analytic peak fits
    `budget`; among equals the largest LoRA rank (full fine-tuning counts as the largest)."""
    best = None
    for tp, mode, micro, rank in itertools.product(
            _tp_degrees(config, args.gpus), AC_COST, SEARCH_MICRO_BATCHES,
            (0, *SEARCH_RANKS)):
        spec = PlanSpec(tp=tp, dp=args.gpus // tp, lora_rank=rank,
                        activation_checkpointing=mode, micro_batch=micro, seq=args.seq)
        if analytic(config, spec, args.target).total > budget:
            continue
        cost = seconds_per_sample(config, spec, args.peak_tflops * 1e12, args.link_gbs * 1e9)
        key = (round(cost, 6), AC_COST[mode], rank != 0, -rank, -micro)
        if best is None or key < best[0]:
            best = (key, spec)
    return None if best is None else best[1]


def print_report(config, spec: PlanSpec, args, budget: float, measured=None, seconds=None):
    from astrobio.plan.memory import llm_positions, text_tokens

    gpu = parse_bytes(args.gpu_memory)
    predicted = analytic(config, spec, args.target)
    seq = text_tokens(config, spec)
    print(f"plan: {config.preset} on {args.gpus} GPUs x {gpu / GiB:.2f} GiB "
          f"(budget {budget / GiB:.2f} GiB after a {(gpu - budget) / GiB:.2f} GiB reserve); "
          f"{seq} text + {llm_positions(config, spec) - seq} prefix tokens")
    print(f"      {spec.describe()}")
    header = f"{'per rank (GiB)':<16}{'analytic':>10}"
    if measured is not None:
        header += f"{'measured':>10}"
    print(header)
    a = predicted.gib()
    m = measured.gib() if measured is not None else None
    for name in (*a.keys(),):
        row = f"{name:<16}{a[name]:>10.2f}"
        if m is not None:
            row += f"{m[name]:>10.2f}"
        print(row)
    peak = max(predicted.total, measured.total if measured is not None else 0.0)
    verdict = "fits" if peak <= budget else "does not fit"
    how = f"analytic {predicted.total / GiB:.2f} GiB"
    if measured is not None:
        how += f", measured on fake tensors {measured.total / GiB:.2f} GiB in {seconds:.0f} s"
    print(f"verdict: {verdict} ({how}; budget {budget / GiB:.2f} GiB)")
    return verdict == "fits"


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    config = load_config(args.preset, args.config, args.set)
    budget = parse_bytes(args.gpu_memory) - parse_bytes(args.reserve)
    if args.search:
        spec = search(config, args, budget)
        if spec is None:
            print(f"no plan fits {args.gpus} x {args.gpu_memory}: even TP={args.gpus} with "
                  "LoRA r=8, full recomputation and micro-batch 1 does not")
            return 1
        print("cheapest plan that fits (analytic model):")
    else:
        spec = requested_plan(config, args)
    measured = seconds = None
    if not args.no_measure:
        measured, seconds = measure(config, spec, args.target)
    fits = print_report(config, spec, args, budget, measured, seconds)
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
