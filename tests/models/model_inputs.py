"""Small random-but-valid planets and batches for the model tests (tiny sizes, fast).

A module of its own, not conftest: `from conftest import` picks whichever conftest pytest
imported first, so it breaks when other test folders are collected in the same run."""

from __future__ import annotations

import numpy as np

from astrobio.config import Config, DataConfig, LLMConfig, ModelConfig
from astrobio.data.batch import multimodal_collate_fn
from astrobio.data.sample import PlanetSample
from astrobio.schema import HABITABILITY_CLASSES, MODALITIES, N_EDGE_FEATURES, N_NODE_FEATURES

SMALL_DATA = DataConfig(climate_levels=4, lat=8, lon=12, spectrum_bins=61, max_text_tokens=12,
                        vocab_size=97)


def small_config() -> Config:
    """A model smaller than `tiny`, so each test takes well under a second."""
    return Config(
        preset="test",
        data=SMALL_DATA,
        model=ModelConfig(
            d_model=32, cnn_channels=(8, 16), gnn_hidden=24, gnn_layers=2, gnn_latent=12,
            spectral_channels=16, param_hidden=24, numerical_prefix_tokens=2,
            spectral_prefix_tokens=3, fusion_layers=2, fusion_heads=4,
            llm=LLMConfig(hidden_size=32, num_layers=1, num_heads=4, num_kv_heads=2,
                          intermediate_size=48, vocab_size=97, max_position_embeddings=32),
        ),
    )


def random_sample(rng: np.random.Generator, index: int = 0, data: DataConfig = SMALL_DATA,
                  n_nodes: int | None = None, present: tuple[bool, ...] | None = None,
                  has_targets: bool = True) -> PlanetSample:
    """A valid planet with physically plausible values; every modality present by default."""
    shape = data.climate_shape
    climate = np.stack([
        rng.uniform(150.0, 400.0, shape[1:]),
        10.0 ** rng.uniform(-6.0, -1.7, shape[1:]),
        rng.uniform(0.0, 1.0, shape[1:]),
        rng.uniform(0.0, 1.0, shape[1:]),
    ]).astype(np.float32)
    n_nodes = int(rng.integers(3, 9)) if n_nodes is None else n_nodes
    n_edges = int(rng.integers(0, 3 * n_nodes + 1)) if n_nodes else 0
    bins = data.spectrum_bins
    mask = rng.random(bins) > 0.2
    teff = rng.uniform(2800.0, 6500.0)
    st_rad = rng.uniform(0.2, 1.5)
    lum = st_rad**2 * (teff / 5772.0) ** 4
    a = rng.uniform(0.02, 2.0)
    params = np.array([teff, lum, st_rad, rng.uniform(0.15, 1.3), rng.uniform(0.5, 4.0),
                       rng.uniform(0.3, 30.0), a, rng.uniform(0.0, 0.4), lum / a**2], np.float32)
    n_tokens = int(rng.integers(1, data.max_text_tokens + 1))
    return PlanetSample(
        planet_id=f"planet-{index}",
        climate=climate,
        # within every column's physical range (`schema.NODE_FEATURE_RANGES`, ...)
        node_features=rng.uniform(0.0, 1.0, (n_nodes, N_NODE_FEATURES)).astype(np.float32),
        edge_index=rng.integers(0, max(n_nodes, 1), size=(2, n_edges)).astype(np.int64),
        edge_attr=rng.uniform(0.0, 1.0, (n_edges, N_EDGE_FEATURES)).astype(np.float32),
        spectrum=(5000.0 + rng.normal(0.0, 30.0, bins)).astype(np.float32),
        spectrum_err=rng.uniform(5.0, 40.0, bins).astype(np.float32),
        spectrum_mask=mask,
        params=params,
        text="a planet",
        present=np.array(present if present is not None else [True] * len(MODALITIES)),
        habitable=int(rng.integers(0, 2)),
        habitability_class=int(rng.integers(0, len(HABITABILITY_CLASSES))),
        surface_temperature=float(rng.uniform(150.0, 450.0)),
        biosignature=int(rng.integers(0, 2)),
        has_targets=has_targets,
        input_ids=rng.integers(1, data.vocab_size, n_tokens).astype(np.int64),
    )


def random_batch(rng: np.random.Generator, size: int = 5, **kwargs):
    samples = [random_sample(rng, i, **kwargs) for i in range(size)]
    for s in samples:
        s.validate(SMALL_DATA.climate_shape if "data" not in kwargs else
                   kwargs["data"].climate_shape,
                   (kwargs.get("data") or SMALL_DATA).spectrum_bins)
    return multimodal_collate_fn(samples)
