"""The unified system: shapes, missing modalities (one present, none present, empty graphs),
gradient flow from the habitability loss to every encoder, modality isolation of the fusion
inputs, absent inputs that cannot matter, and overfitting one fixed batch."""

import dataclasses

import numpy as np
import pytest
import torch
from model_inputs import SMALL_DATA, random_batch, random_sample, small_config

from astrobio.data.batch import multimodal_collate_fn
from astrobio.errors import ConfigError
from astrobio.models import UnifiedMultiModalSystem
from astrobio.schema import HABITABILITY_CLASSES, MODALITIES
from astrobio.train.losses import compute_losses, supervised_terms

B = 5


@pytest.fixture
def model(config):
    return UnifiedMultiModalSystem(config).eval()


def head_outputs(out):
    return [out.habitable_logit, out.habitability_class_logits, out.surface_temperature,
            out.biosignature_logit, out.fused, out.lm_loss, out.vae_reconstruction, out.vae_kl]


def assert_finite(out):
    for value in head_outputs(out):
        assert torch.isfinite(value).all()


def test_output_shapes(model, batch):
    out = model(batch)
    assert out.habitable_logit.shape == (B,) and out.biosignature_logit.shape == (B,)
    assert out.habitability_class_logits.shape == (B, len(HABITABILITY_CLASSES))
    assert out.surface_temperature.shape == (B,) and (out.surface_temperature > 0).all()
    assert out.gates.shape == (len(MODALITIES),) and out.present.shape == (B, len(MODALITIES))
    assert list(out.features) == list(MODALITIES)
    for f in out.features.values():
        assert f.pooled.shape == (B, 32) and f.tokens.shape[::2] == (B, 32)
    assert out.lm.logits.shape[:2] == (B, 5 + batch.input_ids.shape[1])
    assert_finite(out)


def test_modality_modules_are_the_encoders(model):
    modules = model.modality_modules()
    assert list(modules) == list(MODALITIES)
    assert modules["text"] is model.llm and modules["graph"] is model.graph_encoder


@pytest.mark.parametrize("only", [*MODALITIES, None])
def test_one_or_no_modality_present(model, rng, only):
    present = tuple(name == only for name in MODALITIES)
    batch = random_batch(rng, size=3, present=present)
    model.train()
    out = model(batch)
    assert_finite(out)
    total, terms = compute_losses(out, batch, small_config().loss, step=5)
    assert torch.isfinite(total)
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    if only is None:
        for f in out.features.values():
            assert not f.mask.any() and (f.pooled == 0).all()


def test_empty_graphs_with_graph_present(model, rng):
    samples = [random_sample(rng, i, n_nodes=n) for i, n in enumerate([0, 4, 0])]
    out = model(multimodal_collate_fn(samples))
    assert_finite(out)
    assert not out.features["graph"].mask[0].any() and out.features["graph"].mask[1].all()


def test_habitability_loss_reaches_every_encoder(config, batch):
    model = UnifiedMultiModalSystem(config).train()
    supervised_terms(model(batch), batch)["habitable"].backward()
    for name, module in model.modality_modules().items():
        norm = sum(p.grad.norm() ** 2 for p in module.parameters() if p.grad is not None)
        assert norm > 0, f"no gradient reaches the {name} encoder"


def perturbed(batch, modality):
    """A copy of `batch` with modality `modality`'s values changed for every sample."""
    changes = {
        "climate": {"climate": batch.climate * 1.05 + 3.0},
        "graph": {"graph": dataclasses.replace(
            batch.graph, node_features=batch.graph.node_features + 0.7,
            edge_attr=batch.graph.edge_attr - 0.4)},
        "spectrum": {"spectrum": batch.spectrum + 40.0 * torch.randn_like(batch.spectrum)},
        "params": {"params": batch.params * 1.3},
        "text": {"input_ids": (batch.input_ids * 7 + 3) % 96 + 1},
    }[modality]
    return dataclasses.replace(batch, **changes)


# The LLM reads climate, params (numerical prefix) and spectrum (spectral prefix), so its text
# features depend on them by design; nothing else crosses modalities before fusion.
READS = {"climate": {"climate", "text"}, "graph": {"graph"}, "spectrum": {"spectrum", "text"},
         "params": {"params", "text"}, "text": {"text"}}


@pytest.mark.parametrize("modality", MODALITIES)
def test_changing_one_modality_changes_only_its_fusion_input(model, batch, modality):
    base = model(batch).features
    changed = model(perturbed(batch, modality)).features
    for name in MODALITIES:
        same = (torch.equal(base[name].pooled, changed[name].pooled)
                and torch.equal(base[name].tokens, changed[name].tokens))
        assert same == (name not in READS[modality]), (modality, name)


@pytest.mark.parametrize("modality", MODALITIES)
def test_absent_modality_values_do_not_matter(model, batch, modality):
    index = MODALITIES.index(modality)
    batch.present[:, index] = False
    batch.present[0, :] = True  # one sample keeps everything, the others lack `modality`
    batch.present[0, index] = False
    base = model(batch)
    other = model(perturbed(batch, modality))
    for a, b in zip(head_outputs(base), head_outputs(other), strict=True):
        assert torch.equal(a, b)


def test_config_errors():
    config = small_config()
    with pytest.raises(ConfigError, match="vocab_size"):
        UnifiedMultiModalSystem(config.model, dataclasses.replace(SMALL_DATA, vocab_size=1000))
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        UnifiedMultiModalSystem(config.model, dataclasses.replace(SMALL_DATA,
                                                                  max_text_tokens=30))
    built = UnifiedMultiModalSystem(config.model, SMALL_DATA)
    assert built.climate_encoder.climate_shape == SMALL_DATA.climate_shape


def test_overfits_one_fixed_batch(config, rng):
    torch.manual_seed(int(rng.integers(1 << 31)))
    batch = random_batch(rng, size=6)
    model = UnifiedMultiModalSystem(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def supervised():
        model.eval()
        with torch.no_grad():
            out = model(batch)
        return sum(supervised_terms(out, batch).values()).item()

    before = supervised()
    model.train()
    for step in range(40):
        total, _ = compute_losses(model(batch), batch, config.loss, step)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    after = supervised()
    assert after < 0.5 * before, (before, after)
    assert np.isfinite(after)


def test_triton_backend_matches_reference(config, rng):
    """The whole system through the Triton kernels (the interpreter on a CPU) agrees with the
    plain-PyTorch references, forward and backward."""
    from astrobio.ops import use_backend

    batch = random_batch(rng, size=2)
    model = UnifiedMultiModalSystem(config).eval()
    results = {}
    for backend in ("reference", "triton"):
        model.zero_grad()
        with use_backend(backend):
            out = model(batch)
            total, _ = compute_losses(out, batch, config.loss, step=10)
        total.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[backend] = (out.fused.detach(), total.detach(), grads)
    for ref, tri in zip(results["reference"], results["triton"], strict=True):
        assert ((tri - ref).norm() / ref.norm()).item() <= 1e-5
