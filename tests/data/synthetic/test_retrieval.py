"""The retrieval is exact Bayesian linear regression: posteriors and evidences against a
brute-force computation with scipy, recovery of injected atmospheres, and the prior alone
without a spectrum."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from astrobio.data.synthetic import atmosphere, contamination, retrieval, spectrum

N_BINS = 96
TEFF = 3000.0


def setting(rng):
    scales = np.array([20.0, 20.0 * 29 / 2.3])
    depth = 5000.0
    spots = contamination.spot_contrast(N_BINS, [TEFF])[0]
    return scales, depth, spots, 0.1


def test_against_brute_force(rng):
    scales, depth, spots, spot_sd = setting(rng)
    error = rng.uniform(20, 60, N_BINS)
    mask = rng.random(N_BINS) < 0.8
    recorded = depth + rng.normal(0, 40, N_BINS)
    prior = np.array([0.2, 0.5, 0.3])
    out = retrieval.retrieve(recorded, error, mask, scales, depth, spots, spot_sd, prior, 5.0,
                             np.random.default_rng(1))
    evidence = []
    for h in range(3):
        columns, centre, sd = retrieval._columns(h, N_BINS, scales, depth, spots, spot_sd, 5.0)
        j = columns[mask]
        covariance = np.diag(error[mask] ** 2) + j @ np.diag(sd**2) @ j.T
        evidence.append(multivariate_normal(j @ centre, covariance).logpdf(recorded[mask]))
        if h != retrieval.FLAT:  # posterior by the textbook formula
            precision = np.diag(sd**-2) + j.T @ np.diag(error[mask] ** -2) @ j
            cov = np.linalg.inv(precision)
            mean = cov @ (np.diag(sd**-2) @ centre + j.T @ (recorded[mask] / error[mask] ** 2))
            gases = slice(1, 1 + len(retrieval.RETRIEVED))
            np.testing.assert_allclose(out["mean"][h - 1], mean[gases], rtol=1e-7, atol=1e-7)
            np.testing.assert_allclose(out["sd"][h - 1], np.sqrt(np.diag(cov))[gases],
                                       rtol=1e-7)
    evidence = np.array(evidence)
    np.testing.assert_allclose(out["log_evidence"], evidence - evidence.max(), atol=1e-6)
    posterior = prior * np.exp(evidence - evidence.max())
    np.testing.assert_allclose(out["probability"], posterior / posterior.sum(), rtol=1e-6)


def test_without_a_spectrum_the_posterior_is_the_prior(rng):
    scales, depth, spots, spot_sd = setting(rng)
    prior = np.array([0.1, 0.6, 0.3])
    none = np.zeros(N_BINS, bool)
    out = retrieval.retrieve(np.zeros(N_BINS), np.zeros(N_BINS), none, scales, depth, spots,
                             spot_sd, prior, 6.0, rng)
    np.testing.assert_allclose(out["probability"], prior)
    np.testing.assert_allclose(out["sd"], out["prior_sd"])
    assert out["mean"][0, retrieval.RETRIEVED.index("CO2")] == pytest.approx(6.0)


def inject(rng, gases: dict, scale: float, noise: float):
    x = np.zeros((1, len(atmosphere.GASES)))
    for gas, value in gases.items():
        x[0, atmosphere.COLUMN[gas]] = value
    # depth = 1e6 (Rp^2 + 2 Rp H n) / R*^2 with 2e6 Rp H / R*^2 = scale, (Rp / R*)^2 = 5000 ppm
    rp, rs = 1.0, 1.0 / np.sqrt(5000e-6) * spectrum.EARTH_RADIUS_M / spectrum.SOLAR_RADIUS_M
    height = scale * (rs * spectrum.SOLAR_RADIUS_M) ** 2 / (2e6 * rp * spectrum.EARTH_RADIUS_M)
    depth = spectrum.model_depth(x, np.array([height]), np.array([rp]), np.array([rs]),
                                 np.array([1e3]), np.zeros(1), np.ones(1), N_BINS)[0]
    return depth + noise * rng.standard_normal(N_BINS)


def test_recovers_an_injected_secondary_atmosphere(rng):
    scales, _, spots, spot_sd = setting(rng)
    truth = {"CO2": 1e-2, "H2O": 1e-3, "CH4": 1e-4}
    recorded = inject(rng, truth, scales[0], 3.0)
    out = retrieval.retrieve(recorded, np.full(N_BINS, 3.0), np.ones(N_BINS, bool), scales,
                             5000.0, spots, spot_sd, np.array([1 / 3] * 3), 5.0, rng)
    assert out["probability"][retrieval.SECONDARY] > 0.99
    for gas, value in truth.items():
        k = retrieval.RETRIEVED.index(gas)
        pull = (out["mean"][0, k] - np.log10(value / 1e-9)) / out["sd"][0, k]
        assert abs(pull) < 4 and out["sd"][0, k] < 0.3, gas


def test_envelope_features_favour_the_envelope(rng):
    scales, _, spots, spot_sd = setting(rng)
    recorded = inject(rng, {"H2O": 1e-3, "CH4": 1e-3, "NH3": 1e-5}, scales[1], 20.0)
    out = retrieval.retrieve(recorded, np.full(N_BINS, 20.0), np.ones(N_BINS, bool), scales,
                             5000.0, spots, spot_sd, np.array([0.3, 0.6, 0.1]), 5.0, rng)
    assert out["probability"][retrieval.ENVELOPE] > 0.99
    assert out["hypothesis"] == retrieval.ENVELOPE


def test_hypothesis_prior_from_the_catalogue():
    cat = {"pl_rade": np.array([3.0, 1.0, 0.4]), "pl_bmasse": np.array([8.0, 1.0, 0.05]),
           "pl_insol": np.array([1.0, 1.0, 20.0]), "st_teff": np.array([3500.0, 3500.0, 3500.0]),
           "st_rad": np.array([0.4, 0.4, 0.4])}
    prior = retrieval.hypothesis_prior(cat)
    np.testing.assert_allclose(prior.sum(axis=1), 1.0)
    assert prior[0, retrieval.ENVELOPE] > 0.99  # far above the valley
    assert prior[1, retrieval.SECONDARY] > 0.9  # an Earth twin inside the shoreline
    assert prior[2, retrieval.FLAT] > 0.9  # a hot Mars far beyond it
