"""`python -m astrobio.plan`: will a parallel plan fit the GPUs, and how fast will it run?

    python -m astrobio.plan --preset 13b --gpus 2 --gpu-memory 24GiB

runs rank 0 of the plan (the preset's `parallel` section unless flags say otherwise) on fake
tensors (`astrobio.plan.measure`) and prints its memory per phase (load, forward, backward,
optimizer, eval, checkpoint save and restore) broken into parameters, gradients, optimizer
state, activations and temporaries, next to the analytic model (`astrobio.plan.memory`); the
headroom it keeps for what no tensor count holds (CUDA context, NCCL buffers, allocator
fragmentation: `memory.Headroom`) and the verdict against the GPU's memory; the collectives of
one step, counted, against their analytic ideal (`astrobio.plan.traffic`); and the step time,
tokens/s and MFU the time model (`astrobio.plan.timing`) estimates from the counted traffic.

`--search` proposes a plan instead: over TP/DP degrees, LoRA ranks (or full fine-tuning),
checkpointing modes and micro-batches, those whose analytic peak fits with the headroom, ranked
by the modelled time per sample (with the ideal traffic, which the counted traffic meets
within 10 %: tests/parallel/test_traffic.py), ties (within 1 %) broken toward more memory to
spare; the pick is then measured like any plan. `--seq` beyond the model's positions is refused.
`--set parallel.quantize_base=nf4` plans QLoRA (the frozen projections in NF4, TP=1 only).
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys

from astrobio.config import add_config_arguments, load_config
from astrobio.errors import ConfigError, cli
from astrobio.parallel.qlora import check_compatible
from astrobio.plan.measure import Measurement, measure
from astrobio.plan.memory import (
    CATEGORIES,
    GiB,
    Headroom,
    PlanSpec,
    analytic,
    llm_positions,
    text_tokens,
    with_seq,
)
from astrobio.plan.timing import Hardware, step_time
from astrobio.plan.traffic import Collective, Traffic, ideal_bytes

UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": GiB, "kb": 1e3, "mb": 1e6,
         "gb": 1e9}
AC_COST = {"none": 0, "selective": 1, "full": 2}
SEARCH_RANKS = (8, 16, 32, 64)
SEARCH_MICRO_BATCHES = (1, 2, 4, 8)
TIE = 0.01  # modelled times within 1 % are a tie


def parse_bytes(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS:
        raise ConfigError(f"cannot read {text!r} as a size; write e.g. 24GiB or 24GB")
    return float(match.group(1)) * UNITS[match.group(2).lower()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m astrobio.plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    default = Headroom()
    hardware = Hardware()
    parser.add_argument("--gpus", type=int, default=2, help="ranks (one GPU each)")
    parser.add_argument("--gpu-memory", default="24GiB", help="memory of one GPU")
    parser.add_argument("--cuda-context", default=f"{default.cuda_context / GiB:g}GiB",
                        help="headroom: the CUDA context and loaded kernels")
    parser.add_argument("--nccl", default=f"{default.nccl_per_communicator / GiB:g}GiB",
                        help="headroom: buffers of one NCCL communicator")
    parser.add_argument("--fragmentation", type=float, default=default.fragmentation,
                        help="headroom: the caching allocator's overhead, a fraction of the peak")
    parser.add_argument("--seq", type=int, help="text tokens per sample (default: the preset's)")
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument("--tp", type=int)
    parser.add_argument("--lora-rank", type=int)
    parser.add_argument("--activation-checkpointing", choices=tuple(AC_COST))
    parser.add_argument("--target", choices=("cuda", "cpu"), default="cuda",
                        help="precisions of the plan: cuda = bf16 base and compute, cpu = fp32")
    parser.add_argument("--search", action="store_true", help="propose the fastest plan that "
                        "fits instead of checking the given one")
    parser.add_argument("--peak-tflops", type=float, default=hardware.peak_flops / 1e12,
                        help="time model: dense bf16 peak of one GPU (RTX A5000: 111)")
    parser.add_argument("--efficiency", type=float, default=hardware.efficiency,
                        help="time model: the fraction of the peak the step's compute reaches")
    parser.add_argument("--link-gbs", type=float, default=hardware.link_bytes_s / 1e9,
                        help="time model: GB/s between two GPUs (PCIe 4.0 x16: about 25)")
    parser.add_argument("--no-measure", action="store_true",
                        help="analytic model only (no fake-tensor run)")
    return parser.parse_args(argv)


def headroom_of(args) -> Headroom:
    return Headroom(cuda_context=parse_bytes(args.cuda_context),
                    nccl_per_communicator=parse_bytes(args.nccl),
                    fragmentation=args.fragmentation)


def hardware_of(args) -> Hardware:
    return Hardware(peak_flops=args.peak_tflops * 1e12, link_bytes_s=args.link_gbs * 1e9,
                    efficiency=args.efficiency)


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
        micro_batch=args.micro_batch, seq=args.seq, freeze_llm=parallel.freeze_llm,
        quantize_base=parallel.quantize_base)


def _tp_degrees(config, gpus: int, nf4: bool) -> list[int]:
    llm = config.model.llm
    return [t for t in range(1, gpus + 1) if gpus % t == 0 and llm.num_heads % t == 0
            and llm.num_kv_heads % t == 0 and llm.vocab_size % t == 0
            and llm.intermediate_size % t == 0 and not (nf4 and t > 1)]


def _ideal_traffic(config, spec: PlanSpec, target: str) -> Traffic:
    """The ideal traffic as a `Traffic` (TP and FSDP parts), for the time model."""
    ideal = ideal_bytes(config, spec, target)
    return Traffic([Collective("all", "tp", spec.tp, ideal.tp),
                    Collective("all", "fsdp", spec.world, ideal.fsdp)])


def search(config, args) -> PlanSpec | None:
    """The candidate whose analytic peak fits with the headroom and whose modelled time per
    sample is least; among ties (within `TIE`) the one with the most memory to spare."""
    gpu, headroom, hardware = parse_bytes(args.gpu_memory), headroom_of(args), hardware_of(args)
    nf4 = config.parallel.quantize_base == "nf4"
    candidates = []
    for tp, mode, micro, rank in itertools.product(
            _tp_degrees(config, args.gpus, nf4), AC_COST, SEARCH_MICRO_BATCHES,
            SEARCH_RANKS if nf4 else (0, *SEARCH_RANKS)):
        spec = PlanSpec(tp=tp, dp=args.gpus // tp, lora_rank=rank, activation_checkpointing=mode,
                        micro_batch=micro, seq=args.seq,
                        quantize_base=config.parallel.quantize_base)
        peak = analytic(config, spec, args.target).total
        if not headroom.fits(spec, peak, gpu):
            continue
        seconds = step_time(config, spec, _ideal_traffic(config, spec, args.target),
                            hardware).seconds_per_sample
        spare = gpu - peak - headroom.reserved(spec, peak)
        candidates.append((seconds, spare, spec))
    if not candidates:
        return None
    fastest = min(seconds for seconds, _, _ in candidates)
    ties = [c for c in candidates if c[0] <= fastest * (1 + TIE)]
    return max(ties, key=lambda c: (c[1], c[2].lora_rank or 10**6))[2]


def _row(name: str, values: list[float | None], width: int = 10) -> str:
    cells = "".join(f"{'' if v is None else f'{v / GiB:.2f}':>{width}}" for v in values)
    return f"{name:<14}{cells}"


def print_report(config, spec: PlanSpec, args, measured: Measurement | None) -> bool:
    gpu, headroom, hardware = parse_bytes(args.gpu_memory), headroom_of(args), hardware_of(args)
    predicted = analytic(config, spec, args.target)
    seq = text_tokens(config, spec)
    print(f"plan: {config.preset} on {args.gpus} GPUs x {gpu / GiB:.2f} GiB; {seq} text + "
          f"{llm_positions(config, spec) - seq} prefix tokens per sample")
    print(f"      {spec.describe()}")
    phases = list(measured.phases) if measured is not None else []
    print(f"{'rank 0 (GiB)':<14}" + "".join(f"{p:>10}" for p in phases) + f"{'analytic':>10}")
    for name in (*CATEGORIES, "total"):
        get = (lambda b, n=name: b.total if n == "total" else getattr(b, n))
        print(_row(name, [get(measured.phases[p]) for p in phases] + [get(predicted)]))
    peak = predicted.total
    how = f"analytic {predicted.total / GiB:.2f} GiB"
    if measured is not None:
        phase, worst = max(measured.phases.items(), key=lambda item: item[1].total)
        peak = max(peak, worst.total)
        how = (f"measured on fake tensors {worst.total / GiB:.2f} GiB ({phase}) in "
               f"{measured.seconds:.0f} s, {how}")
    reserved = headroom.reserved(spec, peak)
    needed = peak + reserved
    print(f"peak: {peak / GiB:.2f} GiB ({how})")
    print(f"headroom kept: CUDA context {headroom.cuda_context / GiB:.2f} + NCCL "
          f"{headroom.communicators(spec)} x {headroom.nccl_per_communicator / GiB:.2f} + "
          f"allocator fragmentation {headroom.fragmentation:.0%} of the peak "
          f"{headroom.fragmentation * peak / GiB:.2f} = {reserved / GiB:.2f} GiB")
    fits = needed <= gpu
    print(f"needs {needed / GiB:.2f} of {gpu / GiB:.2f} GiB: "
          + (f"fits, {(gpu - needed) / GiB:.2f} GiB to spare" if fits
             else f"does not fit, {(needed - gpu) / GiB:.2f} GiB short"))
    if measured is not None:
        print(f"checkpoint: an asynchronous save stages {measured.staged_bytes / GiB:.2f} GiB "
              "of rank 0's shards in host memory")
        traffic = measured.traffic
        ideal = ideal_bytes(config, spec, args.target)
        print(f"collectives of one step (rank 0 sends): TP {traffic.bytes('tp') / 1e9:.3f} GB "
              f"in {traffic.count('tp')}, FSDP {traffic.bytes('fsdp') / 1e9:.3f} GB in "
              f"{traffic.count('fsdp')}; ideal {ideal.total / 1e9:.3f} GB (counted / ideal "
              f"{traffic.bytes() / ideal.total if ideal.total else 1:.3f})")
        time = step_time(config, spec, traffic, hardware)
        print(f"time model (estimate; {hardware.peak_flops / 1e12:.0f} TFLOP/s per GPU at "
              f"{hardware.efficiency:.0%}, {hardware.link_bytes_s / 1e9:.0f} GB/s link): step "
              f"{time.seconds:.2f} s = compute {time.compute:.2f} + TP communication "
              f"{time.tp_comm:.2f} + unhidden FSDP communication {time.fsdp_exposed:.2f}; "
              f"{time.seconds_per_sample:.2f} s per sample, {time.tokens_per_s:,.0f} text "
              f"tokens/s, MFU {time.mfu:.2f}")
    print(f"verdict: {'fits' if fits else 'does not fit'}")
    return fits


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    config = load_config(args.preset, args.config, args.set)
    if args.search:
        with_seq(config, PlanSpec(seq=args.seq))  # refuses a --seq beyond the positions
        spec = search(config, args)
        if spec is None:
            print(f"no plan fits {args.gpus} x {args.gpu_memory} with the headroom: even "
                  "the smallest LoRA rank, full recomputation and micro-batch 1 do not")
            return 1
        print("fastest plan that fits (analytic memory, ideal traffic):")
    else:
        spec = requested_plan(config, args)
        with_seq(config, spec)
        check_compatible(spec.parallel_config(), spec.tp)
    measured = None if args.no_measure else measure(config, spec, args.target)
    return 0 if print_report(config, spec, args, measured) else 1


if __name__ == "__main__":
    sys.exit(main())
