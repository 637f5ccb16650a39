"""The latent observables are the generator's own planets, and each modality's features."""

import numpy as np

from astrobio.config import DataConfig
from astrobio.data.synthetic import generate_samples
from astrobio.data.synthetic.latent import latent
from astrobio.schema import MODALITIES, PARAM_NAMES


def test_latent_matches_the_generator(test_seed):
    config = DataConfig(seed=test_seed % 10_000, missing_modality_rate=0.0)
    samples = generate_samples(3, 100, config)
    out = latent(3, 100, config)
    labels = out["labels"]
    for k, s in enumerate(samples):
        assert labels["habitable"][k] == s.habitable
        assert labels["biosignature"][k] == s.biosignature
        assert labels["habitability_class"][k] == s.habitability_class
        assert labels["surface_temperature"][k] == s.surface_temperature
        assert out["metadata"]["host_class"][k] == s.provenance["host_class"]
        assert out["metadata"]["transits"][k] == s.provenance["transits"]
        assert out["metadata"]["observer_clero"][k] == (s.provenance["observer_climate"]
                                                        == "clero")
    params = np.stack([s.params for s in samples]).astype(np.float64)
    logged = np.where(np.array(PARAM_NAMES) == "pl_orbeccen", params,
                      np.log10(np.maximum(params, 1e-30)))
    np.testing.assert_allclose(out["features"]["params"], logged, rtol=1e-6, atol=1e-7)
    assert set(out["features"]) == set(MODALITIES)
    no_spectrum = out["metadata"]["transits"] == 0
    assert np.isnan(out["features"]["spectrum"][no_spectrum]).all()
    assert np.isfinite(out["features"]["spectrum"][~no_spectrum]).all()
    assert np.isfinite(out["features"]["graph"]).all()
    clero = out["metadata"]["observer_clero"]
    climate = out["features"]["climate"]
    assert np.isfinite(climate[clero]).all() and np.isnan(climate[~clero]).any(axis=1).all()
