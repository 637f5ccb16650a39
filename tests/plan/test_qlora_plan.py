"""The planner with an NF4 base (QLoRA): the analytic model's NF4 bytes, the fake-tensor
measurement of a scaled-down plan against it, the NF4 tensors fake mode builds against real
ones, and the CLI (the full 13b measurement is in the README, not a test: it takes 15 min)."""

from __future__ import annotations

import pytest
import torch

from astrobio.config import load_config
from astrobio.parallel.qlora import nf4_bytes
from astrobio.plan.__main__ import main as plan_main
from astrobio.plan.measure import PHASES, measure
from astrobio.plan.memory import PlanSpec, analytic, parameter_counts

pytest.importorskip("torchao")
pytestmark = pytest.mark.timeout(600)

PROJECTIONS_13B = 40 * (4 * 5120 * 5120 + 3 * 5120 * 13824)


def test_13b_nf4_base_is_about_a_quarter_of_bf16():
    config = load_config("13b")
    bf16, nf4 = (analytic(config, PlanSpec(tp=1, dp=1, lora_rank=16, seq=2048,
                                           activation_checkpointing="full",
                                           quantize_base=q)).parameters
                 for q in ("none", "nf4"))
    # 12.7 G projection weights at 4 bits + an int8 scale per 64 + a bf16 scale per 64 x 256;
    # the embedding and head (2 x 164 M) and the norms stay bf16.
    assert bf16 - nf4 == pytest.approx(PROJECTIONS_13B * (2 - 0.5 - 1 / 64 - 2 / 16384),
                                       rel=1e-9)
    counts = parameter_counts(config, PlanSpec(tp=1, dp=2, lora_rank=16, quantize_base="nf4"))
    assert counts["frozen_nf4"] == PROJECTIONS_13B / 2 and counts["largest_nf4"] == 5120 * 13824


def test_fake_nf4_tensors_have_the_real_ones_sizes():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torchao.quantization.quantize_.workflows.nf4.nf4_tensor import to_nf4

    def inner(nf4):
        return [(n, tuple(getattr(nf4, n).shape), getattr(nf4, n).dtype)
                for n in nf4.__tensor_flatten__()[0]]

    real = to_nf4(torch.randn(96, 320, dtype=torch.bfloat16), 64, 32)
    with FakeTensorMode():
        fake = to_nf4(torch.zeros(96, 320, dtype=torch.bfloat16), 64, 32)
    assert inner(fake) == inner(real)
    assert all(type(getattr(fake, n)).__name__ == "FakeTensor" for n, *_ in inner(fake))


# `tiny` scaled down further (as tests/parallel does), the LLM's projections a large share.
SMALL = ["data.climate_levels=4", "data.lat=8", "data.lon=12", "data.spectrum_bins=61",
         "data.max_text_tokens=12", "data.vocab_size=96", "model.d_model=32",
         "model.cnn_channels=8,16", "model.gnn_hidden=24", "model.gnn_latent=12",
         "model.spectral_channels=16", "model.param_hidden=24", "model.fusion_layers=1",
         "model.fusion_heads=4", "model.llm.hidden_size=64", "model.llm.num_layers=2",
         "model.llm.num_heads=4", "model.llm.num_kv_heads=2", "model.llm.intermediate_size=128",
         "model.llm.vocab_size=96", "model.llm.max_position_embeddings=32"]


def test_nf4_plan_measured_on_fake_tensors_matches_its_analytic_model():
    config = load_config("tiny", overrides=SMALL)
    specs = {q: PlanSpec(tp=1, dp=2, lora_rank=4, activation_checkpointing="full",
                         quantize_base=q) for q in ("none", "nf4")}
    got = {q: measure(config, spec, target="cuda") for q, spec in specs.items()}
    want = {q: analytic(config, spec, "cuda") for q, spec in specs.items()}
    assert list(got["nf4"].phases) == list(PHASES)
    steady = {q: m.phases["optimizer"] for q, m in got.items()}
    saved = steady["none"].parameters - steady["nf4"].parameters
    # Per projection the mean and the 16-entry code table are whole on every rank (34 bytes).
    projections = 7 * config.model.llm.num_layers
    assert saved == pytest.approx(want["none"].parameters - want["nf4"].parameters
                                  - 34 * projections, rel=1e-3)
    # The load quantizes the whole base before FSDP keeps this rank's half: its peak is above
    # what stays by at least the other half of the NF4 base.
    load = got["nf4"].phases["load"]
    assert load.parameters == steady["nf4"].parameters
    assert load.temporaries >= nf4_bytes(parameter_counts(config, specs["nf4"])["frozen_nf4"])
    assert want["nf4"].total <= got["nf4"].peak.total <= 1.3 * want["nf4"].total


def test_plan_cli_qlora_fits_cards_the_bf16_base_does_not(capsys):
    nf4 = ["--set", "parallel.quantize_base=nf4"]
    for gpus, memory in (("1", "24GiB"), ("2", "16GiB")):
        plan = ["--preset", "13b", "--gpus", gpus, "--gpu-memory", memory, "--no-measure"]
        assert plan_main(plan) == 1
        assert "verdict: does not fit" in capsys.readouterr().out
        assert plan_main(plan + nf4) == 0
        out = capsys.readouterr().out
        assert "NF4 base (QLoRA)" in out and "verdict: fits" in out
    assert plan_main(["--preset", "13b", "--gpus", "2", "--gpu-memory", "16GiB", "--search",
                      "--no-measure", *nf4]) == 0
    assert "TP=1 DP=2, LoRA r=" in capsys.readouterr().out
    # NF4 with tensor parallelism is refused in one line (exit 2), not planned.
    assert plan_main(["--preset", "13b", "--gpus", "2", "--tp", "2", "--no-measure", *nf4]) == 2
    assert "needs parallel.tp=1" in capsys.readouterr().err
