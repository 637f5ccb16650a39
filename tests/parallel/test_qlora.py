"""QLoRA: the frozen base in NF4 (torchao) under the LoRA adapters; one process against the
dequantized base, and FSDP2 over 2 gloo ranks against one process."""

from __future__ import annotations

import _workers as W
import pytest
import torch

from astrobio.errors import ConfigError
from astrobio.models import UnifiedMultiModalSystem
from astrobio.parallel.lora import LoRALinear
from astrobio.parallel.parallelize import freeze_llm_base
from astrobio.parallel.qlora import NF4_BYTES_PER_PARAM, check_compatible, quantize_base

pytest.importorskip("torchao")
pytestmark = pytest.mark.timeout(300)

BATCH = 4
QLORA = ["parallel.lora_rank=4", "parallel.quantize_base=nf4"]


def qlora_model(config, seed: int, shards: int = 1, quantize: bool = True):
    torch.manual_seed(0)
    model = UnifiedMultiModalSystem(config)
    freeze_llm_base(model, config.parallel)
    W.set_lora_b(model, seed)
    if quantize:
        quantize_base(model.llm.lm, shards)
    return model


def test_nf4_base_trains_the_adapters_as_its_dequantized_weights_would(test_seed):
    config = W.small_config(*QLORA)
    model = qlora_model(config, test_seed)
    dequantized = qlora_model(config, test_seed, quantize=False)
    count = 0
    for module, twin in zip(model.modules(), dequantized.modules(), strict=True):
        if isinstance(module, LoRALinear):
            weight = module.base.weight
            assert type(weight).__name__ == "NF4Tensor" and not weight.requires_grad
            twin.base.weight = torch.nn.Parameter(weight.get_original_weight().float(),
                                                  requires_grad=False)
            count += 1
    assert count == 7 * config.model.llm.num_layers
    batch = W.make_batch(test_seed, BATCH, config)
    loss, grads = W.loss_and_grads(model, config, batch)
    want_loss, want = W.loss_and_grads(dequantized, config, batch)
    assert loss == want_loss
    assert set(grads) == set(want) and any(".lora_a." in name for name in grads)
    for name, grad in want.items():
        torch.testing.assert_close(grads[name], grad, rtol=0, atol=0, msg=name)


def test_nf4_storage_and_what_it_refuses():
    # QLoRA's bytes per weight: 4 bits, an int8 scale per 64 and an fp32 scale per 64 x 256.
    assert pytest.approx(0.5 + 1 / 64 + 4 / 16384) == NF4_BYTES_PER_PARAM
    weight = torch.randn(256, 256, dtype=torch.bfloat16)
    linear = LoRALinear(torch.nn.Linear(256, 256, bias=False), rank=4, alpha=16.0)
    linear.base.weight = torch.nn.Parameter(weight, requires_grad=False)
    holder = torch.nn.Module()
    holder.proj = linear
    quantize_base(holder)
    nf4 = linear.base.weight
    stored = sum(getattr(nf4, n).numel() * getattr(nf4, n).element_size()
                 for n in nf4.__tensor_flatten__()[0])
    assert stored / weight.numel() == pytest.approx(NF4_BYTES_PER_PARAM, abs=2e-3)
    # 4-bit NormalFloat of a normal weight: within half the widest code gap of its block's
    # absmax (Dettmers et al. 2023's 16 levels span [-1, 1]).
    error = (nf4.get_original_weight().float() - weight.float()).abs()
    assert float(error.max()) <= 0.2 * float(weight.float().abs().max())

    parallel = W.small_config(*QLORA, "parallel.tp=2").parallel
    with pytest.raises(ConfigError, match="tp=1"):
        check_compatible(parallel, tp=2)
    with pytest.raises(ConfigError, match="lora_rank"):
        check_compatible(W.small_config("parallel.quantize_base=nf4").parallel, tp=1)


@pytest.mark.distributed
def test_dp2_fsdp_over_an_nf4_base_averages_gradients_like_one_process(tmp_path, test_seed):
    extra = [*QLORA, "parallel.dp=2", "parallel.activation_checkpointing=full"]
    ranks = W.run_ranks(W.equivalence_rank, 2, tmp_path / "ranks", [extra], test_seed, BATCH,
                        str(tmp_path / "ckpt"))
    config = W.small_config(*extra)
    losses, want = [], {}
    for r in range(2):
        model = qlora_model(config, test_seed, shards=2)
        loss, grads = W.loss_and_grads(model, config, W.make_batch(test_seed + 1 + r, BATCH,
                                                                   config))
        losses.append(loss)
        for name, grad in grads.items():
            want[name] = want.get(name, 0) + grad / 2
    for rank in ranks:
        got = rank[0][1]
        assert set(got) == set(want)
        for name, grad in want.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert (ranks[0][0][0] + ranks[1][0][0]) / 2 == pytest.approx(sum(losses) / 2, rel=1e-6)
