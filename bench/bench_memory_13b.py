"""The memory planner against a real GPU: rank 0 of the 13b plan, real allocations, per phase.

    python bench/bench_memory_13b.py                      # on a CUDA machine (>= 24 GB)
    python bench/bench_memory_13b.py --tp 1 --dp 2        # the FSDP-only layout's rank 0
    python bench/bench_memory_13b.py --dry-run            # CPU: the same path, tiny preset

The other ranks are simulated by the fake process group (collectives return at once but
allocate their outputs), so one GPU holds exactly what rank 0 of the plan would: the model is
built on the meta device and materialized shard by shard as under torchrun
(`astrobio.plan.measure.run` with real tensors), then runs a warm-up step, a steady-state step,
an evaluation forward, a checkpoint save and a restore. Each phase's peak is
`torch.cuda.max_memory_allocated` within it; on the CPU (`--dry-run`) MemTracker over real
tensors. Printed next to the planner's analytic figure (and, with `--fake`, its fake-tensor
peak) as a markdown row for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys

import torch

from astrobio.config import load_config
from astrobio.plan.measure import fake_process_group, measure, run
from astrobio.plan.memory import GiB, PlanSpec, analytic


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", help="default: 13b on a GPU, tiny with --dry-run")
    parser.add_argument("--seq", type=int, help="text tokens (default 2048 for 13b)")
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument("--tp", type=int, default=2)
    parser.add_argument("--dp", type=int, default=1)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--activation-checkpointing", default="full")
    parser.add_argument("--dry-run", action="store_true", help="run on the CPU")
    parser.add_argument("--fake", action="store_true",
                        help="also the planner's fake-tensor measurement (slow for 13b)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        print("no CUDA device: run on a GPU machine, or pass --dry-run", file=sys.stderr)
        return 2
    preset = args.preset or ("13b" if cuda else "tiny")
    config = load_config(preset)
    seq = args.seq or (2048 if preset == "13b" else None)
    spec = PlanSpec(tp=args.tp, dp=args.dp, lora_rank=args.lora_rank,
                    activation_checkpointing=args.activation_checkpointing,
                    micro_batch=args.micro_batch, seq=seq)
    target = "cuda" if cuda else "cpu"
    with fake_process_group(spec.world):
        measured = run(config, spec, target, device_type=target, fake=False)
    peak = measured.peak.total
    predicted = analytic(config, spec, target).total
    fake = measure(config, spec, target).peak.total if args.fake else None
    device = torch.cuda.get_device_name() if cuda else "CPU (dry run)"
    phases = ", ".join(f"{name} {b.total / GiB:.2f}" for name, b in measured.phases.items())
    print("| date | device | torch | plan | seq | measured peak GiB | analytic GiB | "
          "fake GiB | analytic / measured | per phase (GiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {datetime.date.today()} | {device} | {torch.__version__} | {preset}: "
          f"{spec.describe()} | {seq or config.data.max_text_tokens} | {peak / GiB:.3f} | "
          f"{predicted / GiB:.3f} | {'' if fake is None else f'{fake / GiB:.3f}'} | "
          f"{predicted / peak:.3f} | {phases} |")
    print(f"(run in {measured.seconds:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
