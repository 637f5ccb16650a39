"""Tensor / data parallelism, LoRA, activation checkpointing and DCP on 2 gloo ranks (CPU),
against the single-process model as the truth; and the memory planner."""

from __future__ import annotations

import json

import _workers as W  # tests/parallel is on sys.path (rootdir-less test dirs)
import pytest
import torch

from astrobio.models import UnifiedMultiModalSystem
from astrobio.parallel import dcp
from astrobio.parallel.parallelize import freeze_llm_base
from astrobio.train.trainer import train

pytestmark = pytest.mark.timeout(300)

BATCH = 4
BF16 = 2e-2  # relative error tolerated in bf16 (tests/README: per-dtype tolerances)
CASES = [
    ["parallel.tp=2"],
    ["parallel.tp=2", "parallel.sequence_parallel=false", "parallel.loss_parallel=false",
     "parallel.activation_checkpointing=full"],
    ["parallel.tp=2", "parallel.lora_rank=4", "parallel.activation_checkpointing=selective"],
]


def reference(extra: list[str], batches, lora_b_seed: int | None = None):
    """The single-process model: loss and gradients averaged over `batches`."""
    config = W.small_config(*extra)
    losses, grads = [], {}
    for batch in batches:
        torch.manual_seed(0)
        model = UnifiedMultiModalSystem(config)
        freeze_llm_base(model, config.parallel)
        if lora_b_seed is not None:
            W.set_lora_b(model, lora_b_seed)
        loss, g = W.loss_and_grads(model, config, batch)
        losses.append(loss)
        for name, value in g.items():
            grads[name] = grads.get(name, 0) + value / len(batches)
    return sum(losses) / len(losses), grads


def assert_same_gradients(got: dict, want: dict):
    """fp32 against fp32 summed in another order: 1e-5 over all gradients together, 1e-4 for
    each tensor (a small bias gradient sums a few terms that nearly cancel)."""
    assert set(got) == set(want), set(got) ^ set(want)
    difference = sum(float((got[n] - w).square().sum()) for n, w in want.items()) ** 0.5
    norm = sum(float(w.square().sum()) for w in want.values()) ** 0.5
    assert norm > 0 and difference / norm <= 1e-5, difference / norm
    for name, value in want.items():
        error = float((got[name] - value).norm()) / max(float(value.norm()), 1e-6)
        assert error <= 1e-4, (name, error)


@pytest.mark.distributed
def test_tp2_loss_gradients_and_checkpoint_match_single_process(tmp_path, test_seed):
    ckpt = tmp_path / "ckpt"
    ranks = W.run_ranks(W.equivalence_rank, 2, tmp_path / "ranks", CASES, test_seed, BATCH,
                        str(ckpt))
    for index, extra in enumerate(CASES):
        config = W.small_config(*extra)
        lora = config.parallel.lora_rank > 0
        want_loss, want_grads = reference(extra, [W.make_batch(test_seed, BATCH, config)],
                                          lora_b_seed=test_seed if lora else None)
        if lora:  # B != 0, so A has gradients to compare
            a_grads = [g for name, g in want_grads.items() if ".lora_a." in name]
            assert a_grads and all(float(g.norm()) > 0 for g in a_grads)
        for rank in ranks:
            loss, grads, _ = rank[index]
            assert loss == pytest.approx(want_loss, rel=1e-6)
            assert_same_gradients(grads, want_grads)

    # Saved by 2 TP ranks (LoRA, selective recomputation), loaded by 1 plain process.
    extra = CASES[-1]
    config = W.small_config(*extra)
    torch.manual_seed(0)
    model = UnifiedMultiModalSystem(config)
    freeze_llm_base(model, config.parallel)
    model.eval()
    batch = W.make_batch(test_seed + 100, BATCH, config)
    saved = ranks[0][-1][2]
    with torch.no_grad():
        before = model(batch).habitable_logit
        assert not torch.allclose(before, saved["habitable_logit"], atol=1e-4)
        dcp.load(ckpt, model)
        out = model(batch)
    torch.testing.assert_close(out.habitable_logit, saved["habitable_logit"], rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(out.surface_temperature, saved["surface_temperature"],
                               rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.lm_loss, saved["lm_loss"], rtol=1e-5, atol=1e-6)


@pytest.mark.distributed
def test_fsdp_dp2_averages_gradients_like_one_process(tmp_path, test_seed):
    """gloo has no AVG: FSDP2 sums unless told the divide factor (pytorch#162338)."""
    extra = ["parallel.dp=2", "parallel.activation_checkpointing=full"]
    ranks = W.run_ranks(W.equivalence_rank, 2, tmp_path / "ranks", [extra], test_seed, BATCH,
                        str(tmp_path / "ckpt"))
    config = W.small_config(*extra)
    halves = [W.make_batch(test_seed + 1 + r, BATCH, config) for r in range(2)]
    want_loss, want_grads = reference(extra, halves)
    for rank in ranks:
        assert_same_gradients(rank[0][1], want_grads)
    assert (ranks[0][0][0] + ranks[1][0][0]) / 2 == pytest.approx(want_loss, rel=1e-6)


TRAIN = [
    "data.n_samples=40", "data.shard_size=20", "data.climate_levels=4", "data.lat=8",
    "data.lon=12", "data.spectrum_bins=61", "data.vocab_size=300", "data.max_text_tokens=20",
    *[o for o in W.OVERRIDES if o.startswith("model.")], "model.llm.vocab_size=300",
    "train.batch_size=4", "train.steps=5", "train.warmup_steps=1", "train.checkpoint_every=5",
    "train.eval_every=1000", "train.gradient_flow_every=1000", "train.lr=3e-3",
]


@pytest.mark.distributed
def test_tp2_training_tracks_single_process_and_its_checkpoint_loads_in_one(tmp_path):
    from astrobio.config import load_config
    from astrobio.data.cache import ensure_default_dataset

    config = load_config("tiny", overrides=TRAIN)
    data = ensure_default_dataset(config.data, tmp_path / "data", progress=False)
    single = train(config, tmp_path / "single", data, progress=False)
    W.run_ranks(W.train_rank, 2, tmp_path / "ranks", TRAIN + ["parallel.tp=2"], str(data),
                str(tmp_path / "tp2"))

    def curve(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss/total"] for line in lines if "loss/total" in line]

    want, got = curve("single"), curve("tp2")
    assert len(want) == len(got) == 5
    assert want[-1] < want[0]  # it trains
    assert got == pytest.approx(want, rel=1e-4)
    tp_results = json.loads((tmp_path / "tp2" / "test_metrics.json").read_text())
    assert tp_results["n"] == single["n"]

    # The 2-rank checkpoint in one process gives the 2-rank run's test metrics.
    from astrobio.data.loader import make_loader
    from astrobio.data.reader import AstroBioDataset
    from astrobio.eval.evaluate import flat_metrics, predict, score

    model = UnifiedMultiModalSystem(config)
    dcp.load(tmp_path / "tp2" / dcp.DIRECTORY_NAME, model)
    loader = make_loader(AstroBioDataset(data, "test"), 4, shuffle=False)
    with torch.no_grad():
        loaded = flat_metrics(score(predict(model, loader, torch.device("cpu"))))
    for key, value in flat_metrics(tp_results).items():
        assert loaded[key] == pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True), key


@pytest.mark.distributed
@pytest.mark.parametrize("lora", [[], ["parallel.lora_rank=4"]], ids=["full", "lora"])
def test_tp2_llm_read_shard_by_shard_equals_from_pretrained(tmp_path, test_seed, lora):
    """The meta-device build filled shard by shard trains exactly like the LLM loaded whole:
    same loss, same gradients (LoRA's A drawn whole on every rank, as one process draws it)."""
    from astrobio.models.llm import build_llama

    torch.manual_seed(test_seed)
    build_llama(W.small_config().model.llm).save_pretrained(tmp_path / "lm")
    ranks = W.run_ranks(W.sharded_llm_rank, 2, tmp_path / "ranks", ["parallel.tp=2", *lora],
                        str(tmp_path / "lm"), test_seed, 3)
    for (whole_loss, whole_grads), (loss, grads) in ranks:
        assert loss == pytest.approx(whole_loss, rel=1e-6)
        assert grads.keys() == whole_grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, whole_grads[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.distributed
def test_tp2_resume_after_a_crash_equals_the_uninterrupted_run(tmp_path):
    """Both ranks fail after step 3 (checkpoint at 2); resuming redoes steps 3-5 exactly."""
    from astrobio.config import load_config
    from astrobio.data.cache import ensure_default_dataset

    overrides = TRAIN + ["parallel.tp=2", "train.checkpoint_every=2"]
    config = load_config("tiny", overrides=overrides)
    data = str(ensure_default_dataset(config.data, tmp_path / "data", progress=False))
    whole = W.run_ranks(W.train_rank, 2, tmp_path / "ranks-whole", overrides, data,
                        str(tmp_path / "whole"))
    resumed = W.run_ranks(W.crash_then_resume_rank, 2, tmp_path / "ranks-resumed", overrides,
                          data, str(tmp_path / "resumed"), 3)

    def curve(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["loss/total"]) for r in map(json.loads, lines)
                if "loss/total" in r]

    assert [step for step, _ in curve("whole")] == [1, 2, 3, 4, 5]
    assert [logged for logged, _ in resumed] == [3, 3]  # the crash came after step 3
    assert curve("resumed") == curve("whole")
    assert resumed[0][1]["habitable"] == whole[0]["habitable"]


@pytest.mark.distributed
@pytest.mark.slow
def test_2d_tp_by_fsdp_with_lora_matches_one_process(tmp_path, test_seed):
    """4 ranks as [dp=2, tp=2]: TP peers share a batch, the two DP groups average."""
    extra = ["parallel.tp=2", "parallel.dp=2", "parallel.lora_rank=4",
             "parallel.activation_checkpointing=full"]
    ranks = W.run_ranks(W.equivalence_rank, 4, tmp_path / "ranks", [extra], test_seed, BATCH,
                        str(tmp_path / "ckpt"))
    config = W.small_config(*extra)
    halves = [W.make_batch(test_seed + 1 + r, BATCH, config) for r in range(2)]
    want_loss, want_grads = reference(extra, halves, lora_b_seed=test_seed)
    for rank in ranks:
        assert_same_gradients(rank[0][1], want_grads)
    assert sum(rank[0][0] for rank in ranks) / 4 == pytest.approx(want_loss, rel=1e-6)


@pytest.mark.distributed
def test_tp2_bf16_loss_and_gradients_within_bf16_tolerance_of_one_process(tmp_path, test_seed):
    """The GPU's mixed precision (bf16 LLM and compute, fp32 trained weights and gradient
    reductions) on 2 gloo ranks against one process in the same precision, LoRA B != 0."""
    from astrobio.parallel.precision import build_model

    extra = ["parallel.tp=2", "parallel.lora_rank=4", "parallel.activation_checkpointing=full"]
    ranks = W.run_ranks(W.bf16_rank, 2, tmp_path / "ranks", extra, test_seed, BATCH)
    config = W.small_config(*extra)
    torch.manual_seed(0)
    model = build_model(config, low_precision=True)
    freeze_llm_base(model, config.parallel)
    W.set_lora_b(model, test_seed)
    batch = W.make_batch(test_seed, BATCH, config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want_loss, want = W.loss_and_grads(model, config, batch)
    # the same weights computed in fp32: what bf16 itself costs on this seed
    exact_model = build_model(config, low_precision=False)
    freeze_llm_base(exact_model, config.parallel)
    exact_model.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    _, exact = W.loss_and_grads(exact_model, config, batch)
    groups = {"lora_a": [n for n in want if ".lora_a." in n],
              "lora_b": [n for n in want if ".lora_b." in n],
              "rest": [n for n in want if ".lora_" not in n]}

    def relative_error(got: dict, reference: dict, names: list[str]) -> float:
        """‖got − reference‖ / ‖reference‖ over the group as one vector."""
        difference = sum(float((got[n].float() - reference[n].float()).square().sum())
                         for n in names) ** 0.5
        norm = sum(float(reference[n].float().square().sum()) for n in names) ** 0.5
        assert norm > 0, names
        return difference / norm

    for loss, got in ranks:
        assert loss == pytest.approx(want_loss, rel=BF16)
        assert set(got) == set(want)
        for group, names in groups.items():
            # Both sides are bf16 computations of the same exact value, so they may differ by
            # about twice bf16's own error: the nominal tolerance, or three times what bf16
            # costs one process against fp32 where that is larger (LoRA A's gradient, a
            # product through B and the bf16 base, loses the most).
            limit = max(2 * BF16, 3 * relative_error(want, exact, names))
            error = relative_error(got, want, names)
            assert error <= limit, (group, error, limit)


@pytest.mark.distributed
def test_checkpoint_of_one_process_loads_on_two_ranks(tmp_path, test_seed):
    """Saved by one plain process (adapters and trainables only: the base is referenced by its
    files' digests), loaded by a TP=2 plan built shard by shard from the same base files."""
    from torch.distributed.checkpoint import FileSystemReader

    from astrobio.errors import ConfigError
    from astrobio.models.llm import build_llama
    from astrobio.parallel.parallelize import adamw, trainable_parameters

    extra = ["parallel.lora_rank=4"]
    torch.manual_seed(test_seed)
    build_llama(W.small_config().model.llm).save_pretrained(tmp_path / "lm")
    config = W.small_config(*extra, f"model.llm.path={tmp_path / 'lm'}")
    torch.manual_seed(test_seed + 1)
    model = UnifiedMultiModalSystem(config)
    freeze_llm_base(model, config.parallel)
    W.set_lora_b(model, test_seed)
    optimizer = adamw(trainable_parameters(model), lr=1e-2, weight_decay=0.0)
    W.loss_and_grads(model, config, W.make_batch(test_seed, BATCH, config))
    optimizer.step()
    base = dcp.BaseReference.of(tmp_path / "lm")
    dcp.save(tmp_path / "ckpt", model, optimizer, base=base)
    saved = FileSystemReader(tmp_path / "ckpt").read_metadata().state_dict_metadata
    assert not any(".base." in key or "embed_tokens" in key for key in saved)
    assert any(".lora_a." in key for key in saved)
    model.eval()
    with torch.no_grad():
        want = model(W.make_batch(test_seed + 100, BATCH, config))
    moments = {W.clean(n): optimizer.state[p]["exp_avg"] for n, p in model.named_parameters()
               if p.requires_grad}

    ranks = W.run_ranks(W.load_checkpoint_rank, 2, tmp_path / "ranks",
                        [*extra, "parallel.tp=2"], str(tmp_path / "lm"), str(tmp_path / "ckpt"),
                        test_seed, BATCH)
    for rank in ranks:
        torch.testing.assert_close(rank["habitable_logit"], want.habitable_logit, rtol=1e-5,
                                   atol=1e-6)
        torch.testing.assert_close(rank["lm_loss"], want.lm_loss, rtol=1e-5, atol=1e-6)
        assert rank["moments"]
        for name, value in rank["moments"].items():
            torch.testing.assert_close(value, moments[name], rtol=1e-6, atol=0, msg=name)

    torch.manual_seed(test_seed + 2)
    build_llama(W.small_config().model.llm).save_pretrained(tmp_path / "other")
    with pytest.raises(ConfigError, match="frozen base"):
        dcp.load(tmp_path / "ckpt", model, base=dcp.BaseReference.of(tmp_path / "other"))
    with pytest.raises(ConfigError, match="frozen base"):
        dcp.load(tmp_path / "ckpt", model)
