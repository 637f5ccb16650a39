"""The tabular baselines: hand features by hand, and both models learning real planets."""

import dataclasses

import numpy as np
import pytest

from astrobio.config import DataConfig
from astrobio.data.synthetic import generate_samples
from astrobio.eval.metrics import auroc
from astrobio.experiments.tabular import SPECTRUM_CHUNKS, TEXT_FEATURES, fit_predict, hand_features
from astrobio.schema import MODALITIES, PARAM_NAMES


@pytest.fixture(scope="module")
def planets():
    config = DataConfig(seed=11, missing_modality_rate=0.1)
    return generate_samples(0, 700, config)


def test_hand_features_by_hand(planets):
    sample = next(s for s in planets if s.present.all())
    bins = sample.spectrum.shape[0]
    spectrum = np.zeros(bins, np.float32)
    first_chunk = -(-bins // SPECTRUM_CHUNKS)  # 256 bins: the first 16 chunks hold 11
    spectrum[:first_chunk] = 30.0  # the first chunk 30 ppm above the rest
    sample = dataclasses.replace(sample, spectrum=spectrum, spectrum_err=np.ones(bins, np.float32),
                                 spectrum_mask=np.ones(bins, bool), text="dry dry world")
    row = hand_features([sample])[0]
    n_params, v, z = len(PARAM_NAMES), *sample.climate.shape[:2]
    assert row[0] == pytest.approx(np.log10(sample.params[0]))
    assert row[PARAM_NAMES.index("pl_orbeccen")] == pytest.approx(sample.params[7])
    climate = row[n_params:n_params + 2 * v * z]
    assert climate[0] == pytest.approx(sample.climate[0, 0].mean(), rel=1e-6)
    spec = row[n_params + 2 * v * z:][:SPECTRUM_CHUNKS + 1]
    assert spec[0] == pytest.approx(30.0) and spec[1] == 0.0 and spec[-1] == 0.0  # median 0
    graph = row[n_params + 2 * v * z + SPECTRUM_CHUNKS + 1:]
    assert graph[0] == sample.node_features.shape[0]
    words = row[-len(MODALITIES) - TEXT_FEATURES:-len(MODALITIES)]
    # "dry" twice, "world", "dry dry", "dry world": counts (2, 1, 1, 1), l2-normalised
    assert sorted(words[words > 0] * np.sqrt(7)) == pytest.approx([1, 1, 1, 2])
    thermal = row[-len(MODALITIES) - TEXT_FEATURES - 2:-len(MODALITIES) - TEXT_FEATURES]
    assert thermal[0] == 0.0 and np.isnan(thermal[1])  # "dry dry world" states none
    for sentence in ("Thermal emission puts the surface near 287 K, between the freezing and "
                     "boiling points of water at one bar.", "The surface temperature retrieved "
                     "from its thermal emission is about 287 K, above nothing."):
        row = hand_features([dataclasses.replace(sample, text="A b orbits a 3,300 K M star. "
                                                 + sentence)])[0]
        thermal = row[-len(MODALITIES) - TEXT_FEATURES - 2:-len(MODALITIES) - TEXT_FEATURES]
        assert list(thermal) == [1.0, 287.0]
    absent = dataclasses.replace(sample, present=np.array([m != "graph" for m in MODALITIES]))
    row = hand_features([absent])[0]
    assert np.isnan(row[n_params + 2 * v * z + SPECTRUM_CHUNKS + 1:][:2]).all()


@pytest.mark.parametrize("model", ["gbt", "logistic"])
def test_both_models_learn_habitability(planets, model):
    train, val, test = planets[:450], planets[450:520], planets[520:]
    predictions = fit_predict(model, train, val, test)
    labelled = predictions["has_targets"].astype(bool)
    score = auroc(predictions["habitable"][labelled], predictions["p_habitable"][labelled])
    assert score > 0.8, score
    assert predictions["predicted_class"].shape == (len(test),)
    assert np.isfinite(predictions["predicted_temperature"]).all()
