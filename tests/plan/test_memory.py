"""The memory planner: hand counts, the analytic model against the fake-tensor measurement,
the 13b plan's verdict, the CLI and the GPU benchmark's CPU dry run."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from astrobio.config import load_config
from astrobio.errors import ConfigError
from astrobio.plan.__main__ import main as plan_main
from astrobio.plan.__main__ import parse_bytes
from astrobio.plan.memory import GiB, PlanSpec, analytic, measure, parameter_counts

pytestmark = pytest.mark.timeout(600)

PLAN_13B = PlanSpec(tp=2, dp=1, lora_rank=16, activation_checkpointing="full", micro_batch=1,
                    seq=2048)


def test_13b_frozen_base_per_rank_is_half_of_llama2_13b():
    # LLaMA-2-13B: 13,015,864,320 parameters, of which 81 RMSNorm weights of 5120 are whole
    # on each rank and everything else is split in two by TP.
    norms = 81 * 5120
    per_rank = (13_015_864_320 - norms) / 2 + norms
    counts = parameter_counts(load_config("13b"), PLAN_13B)
    assert counts["frozen"] == per_rank
    # LoRA r=16 on 7 projections x 40 layers, A [16, in] and B [out, 16], split as in the plan
    h, f, r = 5120, 13824, 16
    colwise = 3 * (r * h + h * r / 2) + 2 * (r * h + f * r / 2)  # q k v, gate up
    rowwise = (r * h / 2 + h * r) + (r * f / 2 + h * r)  # o, down
    assert counts["trained"] > 40 * (colwise + rowwise)


def test_analytic_activations_follow_korthikanti():
    config = load_config("13b")
    s, b, h, L, t = 2048 + 16, 1, 5120, 40, 2
    boundary = 2 * s * b * h * 2  # input embeddings and gathered hidden states, bf16
    for mode, per_layer in (("none", s * b * h * 34 / t), ("selective", s * b * h * 34 / t),
                            ("full", 2 * s * b * h / t)):
        spec = PlanSpec(tp=t, lora_rank=16, activation_checkpointing=mode, seq=2048)
        got = analytic(config, spec, "cuda", scores_materialised=False).activations
        assert got == pytest.approx(L * per_layer + boundary)
    spec = PlanSpec(tp=t, lora_rank=16, seq=2048)
    with_scores = analytic(config, spec, "cuda", scores_materialised=True).activations
    assert with_scores - analytic(config, spec, "cuda").activations == pytest.approx(
        L * s * b * h * 5 * 40 * s / (h * t))


def test_fake_measurement_agrees_with_analytic_on_tiny():
    config = load_config("tiny")
    for spec in (PlanSpec(tp=2, lora_rank=8, micro_batch=1),
                 PlanSpec(tp=2, activation_checkpointing="full", micro_batch=2)):
        got, _ = measure(config, spec, target="cpu")
        want = analytic(config, spec, "cpu")
        assert got.parameters > 0 and got.optimizer > 0
        assert got.total == pytest.approx(want.total, rel=0.10), (spec, got, want)


@pytest.mark.slow
def test_13b_plan_fits_two_24gb_gpus_measured_on_fake_tensors():
    started = time.perf_counter()
    got, _ = measure(load_config("13b"), PLAN_13B, target="cuda")
    print(f"13b fake measurement: {got.total / GiB:.2f} GiB in "
          f"{time.perf_counter() - started:.0f} s")
    assert 12 * GiB < got.parameters  # the frozen bf16 half of the LLM alone is 12.1 GiB
    assert got.total <= 22 * GiB


def test_13b_full_fine_tuning_does_not_fit():
    spec = PlanSpec(tp=2, lora_rank=0, activation_checkpointing="full", seq=2048)
    assert analytic(load_config("13b"), spec, "cuda").total > 13e9 / 2 * 16


def test_plan_cli_verdicts_and_search(capsys):
    assert plan_main(["--preset", "13b", "--gpus", "2", "--gpu-memory", "24GiB", "--seq",
                      "2048", "--no-measure"]) == 0
    assert "verdict: fits" in capsys.readouterr().out
    assert plan_main(["--preset", "13b", "--gpus", "2", "--lora-rank", "0", "--seq", "2048",
                      "--no-measure"]) == 1
    assert "does not fit" in capsys.readouterr().out
    assert plan_main(["--preset", "13b", "--gpus", "2", "--seq", "2048", "--search",
                      "--no-measure"]) == 0
    out = capsys.readouterr().out
    assert "cheapest plan that fits" in out and "verdict: fits" in out
    assert parse_bytes("24GiB") == 24 * GiB and parse_bytes("24 GB") == 24e9
    with pytest.raises(ConfigError):
        parse_bytes("lots")


def test_gpu_benchmark_dry_run(capsys):
    path = Path(__file__).parents[2] / "bench" / "bench_memory_13b.py"
    spec = importlib.util.spec_from_file_location("bench_memory_13b", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--dry-run", "--lora-rank", "4", "--seq", "16"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    measured_gib, analytic_gib = (float(v) for v in row.split("|")[6:8])
    assert measured_gib > 0 and analytic_gib == pytest.approx(measured_gib, rel=0.25)
