"""Each encoder alone: shapes, fixed normalisations against hand-computed values, masking,
the graph VAE's losses against independent formulas, empty graphs."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from model_inputs import random_sample

from astrobio.data.batch import multimodal_collate_fn
from astrobio.models import DatacubeCNN, GraphVAE, ParamEncoder, SpectralEncoder
from astrobio.models.normalisation import (
    climate_normaliser,
    denormalise_temperature,
    normalise_temperature,
    param_normaliser,
)
from astrobio.schema import PARAM_NAMES

D = 16


def check_features(f, batch_size, n_tokens=None):
    assert f.pooled.shape == (batch_size, D)
    assert f.tokens.shape[0] == batch_size and f.tokens.shape[2] == D
    if n_tokens is not None:
        assert f.tokens.shape[1] == n_tokens
    assert f.mask.shape == f.tokens.shape[:2] and f.mask.dtype == torch.bool
    assert torch.isfinite(f.pooled).all() and torch.isfinite(f.tokens).all()


def test_climate_normalisation_hand_values():
    cube = torch.empty(1, 4, 1, 1, 2)
    cube[0, :, 0, 0, 0] = torch.tensor([250.0, 10**-3.5, 0.5, 0.5])
    cube[0, :, 0, 0, 1] = torch.tensor([400.0, 10**-2.0, 1.0, 0.0])
    out = climate_normaliser()(cube)
    assert torch.allclose(out[0, :, 0, 0, 0], torch.zeros(4), atol=1e-5)
    assert torch.allclose(out[0, :, 0, 0, 1], torch.tensor([1.0, 1.0, 1.0, -1.0]), atol=1e-5)


def test_param_normalisation_hand_values():
    params = torch.tensor([[10**3.63, 10**-1.0, 10**-0.2, 10**-0.25, 10**0.1, 10**0.1,
                            10**-0.4, 0.05, 1.0]])
    assert torch.allclose(param_normaliser()(params), torch.zeros(1, len(PARAM_NAMES)),
                          atol=1e-5)
    earth_like = torch.tensor([[5772.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0167, 1.0]])
    expected = torch.tensor([(math.log10(5772) - 3.63) / 0.12, 1.0, 0.8, 0.25 / 0.3, -0.4,
                             -0.1 / 0.6, 0.8, (0.0167 - 0.05) / 0.1, 0.0])
    assert torch.allclose(param_normaliser()(earth_like)[0], expected, atol=1e-4)


def test_temperature_round_trip():
    kelvin = torch.tensor([50.0, 280.0, 1500.0])
    z = normalise_temperature(kelvin)
    assert z[1].abs() < 1e-6
    assert torch.allclose(z[2], torch.tensor(math.log(1500 / 280) / 0.5))
    assert torch.allclose(denormalise_temperature(z), kelvin, rtol=1e-5)


def test_datacube_cnn_shapes_and_grid():
    model = DatacubeCNN((4, 5, 9, 13), channels=(6, 8, 10), d_model=D, groups=2)
    assert model.out_grid == (1, 2, 2)  # 5->3->2->1, 9->5->3->2, 13->7->4->2
    climate = torch.rand(3, 4, 5, 9, 13) * 300
    check_features(model(climate), 3, n_tokens=4)
    with pytest.raises(ValueError, match="does not match"):
        model(torch.rand(3, 4, 5, 9, 12))


def test_spectral_normalise_hand_values():
    spectrum = torch.tensor([[100.0, 104.0, 96.0, 1e6, 100.0]])
    err = torch.tensor([[2.0, 2.0, 2.0, 2.0, 2.0]])
    mask = torch.tensor([[True, True, True, False, True]])
    inputs, globals_ = SpectralEncoder.normalise(spectrum, err, mask)
    # observed: 100, 104, 96, 100 -> median 100 (lower middle), residuals 0, 4, -4, 0
    scale = math.sqrt(32 / 4)
    assert torch.allclose(inputs[0, 0], torch.tensor([0, 4 / scale, -4 / scale, 0, 0]))
    assert torch.allclose(inputs[0, 1], torch.tensor([2 / scale] * 3 + [0, 2 / scale]))
    assert torch.equal(inputs[0, 2], torch.tensor([1.0, 1, 1, 0, 1]))
    assert torch.allclose(globals_[0], torch.tensor([2.0, math.log10(scale), 0.8]))


def test_spectral_masked_bins_do_not_matter():
    model = SpectralEncoder(n_bins=61, channels=8, d_model=D, n_tokens=5)
    spectrum = 5000 + 30 * torch.randn(4, 61)
    err = torch.rand(4, 61) + 0.5
    mask = torch.rand(4, 61) > 0.3
    mask[3] = False  # nothing observed
    out = model(spectrum, err, mask)
    check_features(out, 4, n_tokens=5)
    assert not out.mask[3].any() and (out.tokens[3] == 0).all()
    noisy = torch.where(mask, spectrum, 1e5 * torch.randn(4, 61))
    noisy_err = torch.where(mask, err, 1e3 * torch.rand(4, 61))
    again = model(noisy, noisy_err, mask)
    assert torch.equal(out.pooled, again.pooled) and torch.equal(out.tokens, again.tokens)


def test_param_encoder_shapes():
    model = ParamEncoder(hidden=12, d_model=D, n_tokens=3)
    params = torch.tensor(random_sample(np.random.default_rng(0)).params)[None].repeat(2, 1)
    check_features(model(params), 2, n_tokens=3)
    with pytest.raises(ValueError, match="PARAM|st_teff"):
        model(params[:, :5])


def vae_and_graph(rng, n_nodes=None):
    samples = [random_sample(rng, i) for i in range(4)]
    if n_nodes is not None:
        samples = [random_sample(rng, i, n_nodes=n) for i, n in enumerate(n_nodes)]
    batch = multimodal_collate_fn(samples)
    return GraphVAE(hidden=12, n_layers=2, latent=6, d_model=D, n_tokens=3), batch


def test_graph_vae_kl_and_reconstruction_match_formulas(rng):
    model, batch = vae_and_graph(rng)
    present = torch.tensor([True, False, True, True])
    model.eval()
    out = model(batch.graph, present)
    assert torch.equal(out.z, out.mu)  # eval: the mean, no sampling
    node_keep = present[batch.graph.batch]
    posterior = torch.distributions.Normal(out.mu.double(), (0.5 * out.logvar.double()).exp())
    prior = torch.distributions.Normal(0.0, 1.0)
    kl = torch.distributions.kl_divergence(posterior, prior).sum(-1)[node_keep].mean()
    assert torch.allclose(out.kl.double(), kl, rtol=1e-5)

    # reconstruction: observed edges vs the pair (src, node halfway round the graph from dst)
    z = out.z.double()
    terms = []
    for src, dst in batch.graph.edge_index.T.tolist():
        g = int(batch.graph.batch[dst])
        if not present[g]:
            continue
        ptr = batch.graph.ptr
        start, size = int(ptr[g]), int(ptr[g + 1] - ptr[g])
        negative = start + (dst - start + size // 2) % size
        pos, neg = (z[src] * z[dst]).sum(), (z[src] * z[negative]).sum()
        terms.append(0.5 * (-F.logsigmoid(pos) - F.logsigmoid(-neg)))
    expected = torch.stack(terms).mean() if terms else torch.tensor(0.0)
    assert torch.allclose(out.reconstruction.double(), expected, rtol=1e-5)


def test_graph_vae_training_samples_and_eval_is_deterministic(rng):
    model, batch = vae_and_graph(rng)
    g, present = batch.graph, torch.ones(4, dtype=torch.bool)
    model.eval()
    first, second = model(g, present), model(g, present)
    assert torch.equal(first.features.tokens, second.features.tokens)
    assert torch.equal(first.reconstruction, second.reconstruction)
    model.train()
    sampled = model(g, present)
    assert not torch.equal(sampled.z, sampled.mu)


def test_graph_vae_pooling_is_per_graph(rng):
    """Changing one graph's nodes changes only that graph's features."""
    model, batch = vae_and_graph(rng)
    model.eval()
    present = torch.ones(4, dtype=torch.bool)
    out = model(batch.graph, present).features
    changed = batch.graph.node_features.clone()
    lo, hi = int(batch.graph.ptr[1]), int(batch.graph.ptr[2])
    changed[lo:hi] += 1.0
    batch.graph = dataclasses.replace(batch.graph, node_features=changed)
    again = model(batch.graph, present).features
    for i in range(4):
        same = torch.equal(out.pooled[i], again.pooled[i])
        assert same == (i != 1)


def test_graph_vae_empty_graphs(rng):
    model, batch = vae_and_graph(rng, n_nodes=[0, 5, 0, 1])
    out = model(batch.graph, torch.ones(4, dtype=torch.bool))
    check_features(out.features, 4, n_tokens=3)
    for i in (0, 2):
        assert not out.features.mask[i].any()
        assert (out.features.tokens[i] == 0).all() and (out.features.pooled[i] == 0).all()
    assert out.features.mask[1].all() and out.features.mask[3].all()
    assert torch.isfinite(out.kl) and torch.isfinite(out.reconstruction)
    (out.kl + out.reconstruction + out.features.tokens.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_graph_vae_all_graphs_empty():
    samples = [random_sample(np.random.default_rng(i), i, n_nodes=0) for i in range(3)]
    batch = multimodal_collate_fn(samples)
    model = GraphVAE(hidden=12, n_layers=2, latent=6, d_model=D, n_tokens=3)
    out = model(batch.graph, torch.ones(3, dtype=torch.bool))
    assert out.kl == 0 and out.reconstruction == 0
    assert not out.features.mask.any() and (out.features.pooled == 0).all()

