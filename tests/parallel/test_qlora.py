"""QLoRA: the frozen base in NF4 (torchao) under the LoRA adapters. One process against the
dequantized base; the load path (one projection in full precision at a time); FSDP2 over 2
gloo ranks, loaded from safetensors shards, against one process; what is refused."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import weakref

import _workers as W
import pytest
import torch

from astrobio.config import LLMConfig, load_config
from astrobio.errors import ConfigError
from astrobio.models.llm import build_llama
from astrobio.parallel.load import SafetensorsFiles, materialize
from astrobio.parallel.lora import LoRALinear, apply_lora
from astrobio.parallel.parallelize import freeze_llm_base
from astrobio.parallel.precision import build_model
from astrobio.parallel.qlora import check_compatible, is_nf4, nf4_bytes, quantize_base

pytest.importorskip("torchao")
pytestmark = pytest.mark.timeout(300)

BATCH = 4
QLORA = ["parallel.lora_rank=4", "parallel.quantize_base=nf4"]


def one_process(config, seed: int, quantize: bool = True, shards: int = 1):
    """The system as one process builds it (saved LLM read whole), LoRA on it, A and B from
    `seed` (as `W.qlora_rank` sets them), the adapted projections' base quantized in memory
    with the second-level blocks of `shards` FSDP shards."""
    torch.manual_seed(seed)
    model = build_model(config, low_precision=False)
    freeze_llm_base(model, config.parallel)
    W.set_lora_b(model, seed)
    W.set_lora_b(model, seed + 1, matrix="lora_a")
    if quantize:
        quantize_base(model.llm.lm, shards)
    return model


def test_nf4_base_trains_the_adapters_as_its_dequantized_weights_would(test_seed):
    config = W.small_config(*QLORA)
    model = one_process(config, test_seed)
    dequantized = one_process(config, test_seed, quantize=False)
    count = 0
    for module, twin in zip(model.modules(), dequantized.modules(), strict=True):
        if isinstance(module, LoRALinear):
            weight = module.base.weight
            assert is_nf4(weight) and not weight.requires_grad
            # NF4 is lossy: the quantized weight differs from the one it was made from.
            assert not torch.equal(weight.get_original_weight(), twin.base.weight)
            twin.base.weight = torch.nn.Parameter(weight.get_original_weight(),
                                                  requires_grad=False)
            count += 1
    assert count == 7 * config.model.llm.num_layers
    batch = W.make_batch(test_seed, BATCH, config)
    loss, grads = W.loss_and_grads(model, config, batch)
    want_loss, want = W.loss_and_grads(dequantized, config, batch)
    assert loss == pytest.approx(want_loss, rel=1e-6)
    assert set(grads) == set(want)
    lora = [name for name in want if ".lora_" in name]
    assert len(lora) == 2 * count and all(want[n].abs().sum() > 0 for n in lora)
    for name, grad in want.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_nf4_storage_and_what_it_refuses():
    weight = torch.randn(256, 320, dtype=torch.bfloat16)
    holder = torch.nn.Module()
    holder.proj = LoRALinear(torch.nn.Linear(320, 256, bias=False), rank=4, alpha=16.0)
    holder.proj.base.weight = torch.nn.Parameter(weight, requires_grad=False)
    quantize_base(holder)
    nf4 = holder.proj.base.weight
    inner = {n: getattr(nf4, n) for n in nf4.__tensor_flatten__()[0]}
    stored = sum(t.numel() * t.element_size() for t in inner.values())
    # QLoRA's bytes: 4 bits a weight, an int8 scale per 64 weights, a bf16 scale per 256 of
    # those, and per weight one bf16 mean and the 16-entry bf16 code table.
    assert stored == weight.numel() // 2 + weight.numel() // 64 + 2 * weight.numel() // 16384 \
        + 2 + 2 * 16
    assert stored == pytest.approx(nf4_bytes(weight.numel()) + 34)
    # Each block of 64 is its absmax times the nearest of 16 NormalFloat levels in [-1, 1],
    # whose widest gap is 0.3038 (-1 to -0.6962): within half of it, plus the int8 rounding of
    # the block's scale (Dettmers et al. 2023).
    blocks = weight.float().reshape(-1, 64)
    error = (nf4.get_original_weight().float().reshape(-1, 64) - blocks).abs()
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    assert bool((error <= 0.16 * absmax + 0.02 * absmax.max()).all())

    with pytest.raises(ConfigError, match="tp=1"):
        check_compatible(W.small_config(*QLORA, "parallel.tp=2").parallel, tp=2)
    with pytest.raises(ConfigError, match="lora_rank"):
        check_compatible(W.small_config("parallel.quantize_base=nf4").parallel, tp=1)
    with pytest.raises(ConfigError, match="parallel.quantize_base"):
        W.small_config("parallel.quantize_base=int4")
    odd = torch.nn.Module()
    odd.proj = LoRALinear(torch.nn.Linear(64, 3, bias=False), rank=2, alpha=4.0)
    with pytest.raises(ConfigError, match="2 FSDP shards"):
        quantize_base(odd, shards=2)


def save_in_shards(lm, directory) -> int:
    """`save_pretrained` in shards of at most 20 kB with their index, as large LLMs are
    saved; returns how many files."""
    lm.save_pretrained(directory, max_shard_size="20KB")
    return len(list(directory.glob("*.safetensors")))


class WatchedFiles(SafetensorsFiles):
    """The saved LLM's files, counting at each read of a projection how many projections read
    before it are still alive in full precision (weak references: only what is kept counts)."""

    def __init__(self, path):
        super().__init__(path)
        self.projections: list[weakref.ref] = []
        self.most_alive_before_a_read = 0

    def read(self, name, box, shape, dtype):
        tensor = super().read(name, box, shape, dtype)
        if ".layers." in name and name.endswith("_proj.weight"):
            alive = sum(ref() is not None for ref in self.projections)
            self.most_alive_before_a_read = max(self.most_alive_before_a_read, alive)
            self.projections.append(weakref.ref(tensor))
        return tensor


def _peak_cpu_bytes(fn) -> float:
    """The peak of the CPU tensors alive while `fn()` runs, above those alive before it."""
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    with tracker:
        fn()
    return float(tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"])


def test_loading_holds_one_projection_in_full_precision_beside_the_nf4_base(tmp_path,
                                                                           test_seed,
                                                                           monkeypatch):
    # torchao finds the nearest code for 2^20 values at a time (its CHUNK_SIZE), 16 distances
    # each: beside this test's weights of 10^4 values that would dwarf them, beside a 13b
    # projection (7e7) it is small; 256 values a chunk keeps the 13b proportion here.
    from torchao.quantization.quantize_.workflows.nf4 import nf4_tensor

    monkeypatch.setattr(nf4_tensor, "CHUNK_SIZE", 256)
    llm = LLMConfig(hidden_size=64, num_layers=6, num_heads=4, num_kv_heads=2,
                    intermediate_size=160, vocab_size=64, max_position_embeddings=16,
                    path=str(tmp_path))
    torch.manual_seed(test_seed)
    assert save_in_shards(build_llama(dataclasses.replace(llm, path=None)), tmp_path) > 2
    lm = build_llama(llm, weights=False)
    apply_lora(lm, rank=4, alpha=8.0)
    assert quantize_base(lm) == 7 * llm.num_layers
    files = WatchedFiles(tmp_path)
    with files:
        peak = _peak_cpu_bytes(lambda: materialize(lm, files, torch.device("cpu"),
                                                   prefix="llm.lm."))
    assert files.most_alive_before_a_read == 0 and len(files.projections) == 42
    tensors = [*lm.parameters(), *lm.buffers()]
    assert not any(t.is_meta for t in tensors)
    projections = [m.base.weight for m in lm.modules() if isinstance(m, LoRALinear)]
    assert all(is_nf4(w) for w in projections)

    def nbytes(t):
        if is_nf4(t):
            return sum(getattr(t, n).numel() * getattr(t, n).element_size()
                       for n in t.__tensor_flatten__()[0])
        return t.numel() * t.element_size()

    loaded = sum(nbytes(t) for t in tensors)
    # One projection (the largest, an MLP one) read and quantized alone: its full-precision
    # copy and torchao's temporaries, the most that loading may add to what it keeps.
    largest = max(projections, key=lambda w: w.numel())
    one = _peak_cpu_bytes(lambda: quantize_base(_holding(torch.randn(largest.shape))))
    assert loaded <= peak <= loaded + one
    # What the bf16-then-quantize load it replaces needed: the whole base in full precision.
    full_base = sum(w.numel() * 4 for w in projections)
    assert loaded + one < loaded - sum(nbytes(w) for w in projections) + full_base


def _holding(weight: torch.Tensor) -> torch.nn.Module:
    holder = torch.nn.Module()
    holder.proj = LoRALinear(torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False),
                             rank=2, alpha=4.0)
    holder.proj.base.weight = torch.nn.Parameter(weight, requires_grad=False)
    return holder


@pytest.mark.distributed
def test_dp2_fsdp_over_an_nf4_base_loaded_from_shards_equals_one_process(tmp_path, test_seed):
    extra = [*QLORA, "parallel.dp=2", "parallel.activation_checkpointing=full"]
    torch.manual_seed(test_seed)
    assert save_in_shards(build_llama(W.small_config().model.llm), tmp_path / "lm") > 2
    ranks = W.run_ranks(W.qlora_rank, 2, tmp_path / "ranks", extra, str(tmp_path / "lm"),
                        test_seed, BATCH)
    config = W.small_config(*extra, f"model.llm.path={tmp_path / 'lm'}")
    losses, want = [], {}
    for r in range(2):  # each rank's batch in one process, the gradients averaged
        model = one_process(config, test_seed, shards=2)
        loss, grads = W.loss_and_grads(model, config, W.make_batch(test_seed + 1 + r, BATCH,
                                                                   config))
        losses.append(loss)
        for name, grad in grads.items():
            want[name] = want.get(name, 0) + grad / 2
    assert any(".lora_a." in name for name in want)
    for _, grads in ranks:
        assert set(grads) == set(want)
        for name, grad in want.items():
            torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert (ranks[0][0] + ranks[1][0]) / 2 == pytest.approx(sum(losses) / 2, rel=1e-6)


@pytest.mark.distributed
def test_one_gpu_trains_qlora_under_torchrun_with_one_process(tmp_path):
    """`torchrun --nproc_per_node 1` takes the mesh layout, so one GPU trains QLoRA: an NF4
    base read from a saved LLM trains, checkpoints (the base referenced, not written; a
    checkpoint's finiteness check skips the frozen NF4 weights) and is evaluated."""
    small = ["data.n_samples=48", "data.shard_size=16", "data.vocab_size=300",
             "data.max_text_tokens=48", "model.d_model=16", "model.cnn_channels=4,8",
             "model.gnn_hidden=16", "model.gnn_latent=8", "model.spectral_channels=8",
             "model.param_hidden=16", "model.fusion_layers=1", "model.fusion_heads=2",
             "model.llm.hidden_size=64", "model.llm.num_layers=1", "model.llm.num_heads=2",
             "model.llm.num_kv_heads=2", "model.llm.intermediate_size=128",
             "model.llm.vocab_size=300", "model.llm.max_position_embeddings=64",
             "train.batch_size=8", "train.warmup_steps=1", "train.checkpoint_every=3",
             "train.eval_every=3", *QLORA]
    torch.manual_seed(0)
    build_llama(load_config("tiny", overrides=small).model.llm).save_pretrained(tmp_path / "lm")
    env = {**os.environ, "WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(W.free_port())}
    argv = [sys.executable, "-m", "astrobio.train", "--out", str(tmp_path / "run"), "--data",
            str(tmp_path / "data"), "--quiet", "--steps", "3", "--llm-path",
            str(tmp_path / "lm"), *(arg for item in small for arg in ("--set", item))]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "habitable_auroc" in done.stdout
    assert (tmp_path / "run" / "checkpoint-dcp" / "base.json").exists()
    without_base = [a for a in argv if a not in ("--llm-path", str(tmp_path / "lm"))]
    refused = subprocess.run(without_base, env={**env, "MASTER_PORT": str(W.free_port())},
                             capture_output=True, text=True, timeout=280)
    assert refused.returncode == 2 and "model.llm.path" in refused.stderr, refused.stderr[-2000:]
