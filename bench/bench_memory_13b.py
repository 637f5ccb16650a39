"""The memory planner against a real GPU: rank 0 of the 13b plan, real allocations, one step.

    python bench/bench_memory_13b.py                      # on a CUDA machine (>= 40 GB: the
                                                          # bf16 LLM is built whole, 26 GB,
                                                          # before TP keeps rank 0's half)
    python bench/bench_memory_13b.py --dry-run            # CPU: the same path, tiny preset

The other ranks are simulated by the fake process group (collectives return at once but
allocate their outputs), so one GPU holds exactly what rank 0 of the 2-GPU plan would. A
warm-up step creates the optimizer state; the peak is `torch.cuda.max_memory_allocated` over
the second (steady-state) step: forward, backward, AdamW. Printed next to the planner's
analytic figure (and, with `--fake`, its fake-tensor measurement) as a markdown row for
bench/RESULTS.md. On the CPU (`--dry-run`) the peak comes from MemTracker over real tensors.
"""

from __future__ import annotations

import argparse
import datetime
import sys

import torch

from astrobio.config import load_config
from astrobio.plan.memory import (
    GiB,
    PlanSpec,
    analytic,
    fake_process_group,
    measure,
    measured,
    run_step,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", help="default: 13b on a GPU, tiny with --dry-run")
    parser.add_argument("--seq", type=int, help="text tokens (default 2048 for 13b)")
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument("--tp", type=int, default=2)
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
    spec = PlanSpec(tp=args.tp, dp=1, lora_rank=args.lora_rank,
                    activation_checkpointing=args.activation_checkpointing,
                    micro_batch=args.micro_batch, seq=seq)
    target = "cuda" if cuda else "cpu"
    with fake_process_group(spec.world):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        tracker, seconds = run_step(config, spec, target, fake=False, target=target)
        peak = (torch.cuda.max_memory_allocated() if cuda else measured(tracker).total)
    predicted = analytic(config, spec, target).total
    fake = measure(config, spec, target)[0].total if args.fake else None
    device = torch.cuda.get_device_name() if cuda else "CPU (dry run)"
    print("| date | device | torch | plan | seq | measured peak GiB | analytic GiB | "
          "fake GiB | analytic / measured |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {datetime.date.today()} | {device} | {torch.__version__} | {preset}: "
          f"{spec.describe()} | {seq or config.data.max_text_tokens} | {peak / GiB:.3f} | "
          f"{predicted / GiB:.3f} | {'' if fake is None else f'{fake / GiB:.3f}'} | "
          f"{predicted / peak:.3f} |")
    print(f"(two steps in {seconds:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
