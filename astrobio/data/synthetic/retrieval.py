"""What the observer infers from a planet's spectrum and catalogue entry: a Bayesian retrieval,
linear in its parameters, over three hypotheses, and one draw from its posterior.

Hypotheses, each a linear model of the recorded depth d(l) with Gaussian priors:
- flat: an airless (or opaque) planet, d = D0 + f_spot D0_cat (1 - S_spot / S_phot)(l);
- secondary: a heavy (mu = 29) atmosphere, d adds A_29 (sum_g a_g p_g(l) + r R(l));
- envelope: an H2/He envelope (mu = 2.3), the same with A_2.3 = 12.6 A_29;
with p_g and R the forward model's band and Rayleigh profiles (`spectrum`), a_g = log10(x_g /
1 ppb) for the eight trace gases, A_mu = 1e6 2 Rp H_mu / R*^2 the ppm per scale height from the
catalogue (Rp, R*, the mass's gravity, Teq at albedo 0.3) and the spot term the observer's
model of stellar contamination (`contamination.spot_contrast` at the catalogue's Teff). The
clipping by the atmosphere's extent and the cloud deck are not modelled, nor are faculae: the
retrieval is wrong where a real one would be too.

Priors: D0 ~ N(D0_cat, (0.1 D0_cat)^2) with D0_cat = 1e6 (Rp / R*)^2; f_spot ~ N(0, s^2), s =
0.1 (M), 0.02 (K), 0.005 (G, F); r ~ N(0.7, 0.4) (secondary) or N(1, 0.2) (envelope); a_g as
`PRIORS`, the secondary CO2 centred on the carbonate-silicate thermostat's level at the
catalogue's flux (`climate.weathering_co2` for a 283 K surface under 1 bar, albedo 0.3).
Hypothesis priors from the catalogue, as the population was made: P(envelope) =
Phi(log10(Rp / R_valley(S)) / 0.05) (`planets.valley_radius`); of the rest, airless with the
probability that the cosmic shoreline stripped the planet or its air is below 0.01 bar
(`planets`' laws with their scatter).

Exact for a linear-Gaussian model: the posterior of each hypothesis is Gaussian and its
evidence closed-form (in standardised parameters z = (theta - m) / s with J' = J diag(s):
Lambda = I + J'^T W J', b = J'^T W (d - J m), log Z = -(r^T W r - b^T Lambda^-1 b) / 2 - log|Lambda|
/ 2 + const). Without a spectrum the posterior is the prior. The observer draws a hypothesis
from its posterior probability, then theta from its posterior, and a surface pressure from
the population's law for the catalogue's mass: the transmission spectrum barely constrains it.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import ndtr

from astrobio import physics
from astrobio.data.synthetic import climate, planets
from astrobio.data.synthetic.atmosphere import COLUMN
from astrobio.data.synthetic.spectrum import (
    ABUNDANCE_FLOOR,
    ATOMIC_MASS,
    BOLTZMANN,
    EARTH_RADIUS_M,
    GRAVITY_EARTH,
    SOLAR_RADIUS_M,
    band_profiles,
    rayleigh_profile,
)
from astrobio.data.synthetic.stars import host_class

HYPOTHESES = ("flat", "secondary", "envelope")
FLAT, SECONDARY, ENVELOPE = range(3)
RETRIEVED = ("H2O", "CO2", "CH4", "O2", "O3", "CO", "NH3", "N2O")
MOLECULAR_MASS = {SECONDARY: 29.0, ENVELOPE: 2.3}
PRIORS = {  # log10(x / 1 ppb): (mean, sd); None = the thermostat's CO2
    SECONDARY: {"H2O": (5.5, 1.5), "CO2": (None, 1.5), "CH4": (1.0, 2.0), "O2": (2.0, 3.0),
                "O3": (0.5, 2.0), "CO": (3.0, 1.5), "NH3": (0.5, 1.0), "N2O": (0.5, 1.2)},
    ENVELOPE: {"H2O": (6.0, 1.0), "CO2": (3.5, 1.0), "CH4": (5.5, 1.0), "O2": (0.0, 0.5),
               "O3": (0.0, 0.5), "CO": (4.5, 1.0), "NH3": (3.5, 1.0), "N2O": (0.0, 0.5)},
}
RAYLEIGH_PRIOR = {SECONDARY: (0.7, 0.4), ENVELOPE: (1.0, 0.2)}
DEPTH_PRIOR = 0.1
SPOT_PRIOR = {"M": 0.1, "K": 0.02, "GF": 0.005}
VALLEY_PRIOR_DEX = 0.05
ASSUMED_ALBEDO = 0.3
THERMOSTAT_K = 283.0
N_PARAMETERS = 3 + len(RETRIEVED)  # D0, the gases, Rayleigh, spots
N_DRAWS = 2 + N_PARAMETERS  # hypothesis, theta, pressure


def hypothesis_prior(cat: dict[str, np.ndarray]) -> np.ndarray:
    """[B, 3] prior probabilities of `HYPOTHESES` from the catalogue (module docstring)."""
    envelope = ndtr(np.log10(cat["pl_rade"] / planets.valley_radius(cat["pl_insol"]))
                    / VALLEY_PRIOR_DEX)
    shoreline = planets.shoreline_flux(cat["pl_bmasse"], cat["pl_rade"], cat["st_teff"])
    stripped = ndtr(np.log10(cat["pl_insol"] / shoreline) / planets.SHORELINE_DEX)
    thin = ndtr((np.log10(planets.AIRLESS_BAR) - 0.6 * np.log10(cat["pl_bmasse"]))
                / planets.PRESSURE_DEX)
    airless = 1.0 - (1.0 - stripped) * (1.0 - thin)
    return np.stack([(1.0 - envelope) * airless, (1.0 - envelope) * (1.0 - airless), envelope],
                    axis=1)


def thermostat_co2(cat: dict[str, np.ndarray]) -> np.ndarray:
    """The secondary prior's CO2 centre, log10(x / 1 ppb) [B]."""
    teq = physics.equilibrium_temperature_from_insolation(cat["pl_insol"], ASSUMED_ALBEDO)
    pco2 = climate.weathering_co2(teq, THERMOSTAT_K, 1.0, 1.0)
    return np.log10(pco2 / (1.0 + pco2) / ABUNDANCE_FLOOR)


def feature_scale(cat: dict[str, np.ndarray]) -> np.ndarray:
    """[B, 2] ppm per scale height of a secondary and an envelope atmosphere."""
    teq = physics.equilibrium_temperature_from_insolation(cat["pl_insol"], ASSUMED_ALBEDO)
    gravity = GRAVITY_EARTH * cat["pl_bmasse"] / cat["pl_rade"] ** 2
    rp, rs = cat["pl_rade"] * EARTH_RADIUS_M, cat["st_rad"] * SOLAR_RADIUS_M
    return np.stack([1e6 * 2.0 * rp * BOLTZMANN * teq / (MOLECULAR_MASS[h] * ATOMIC_MASS
                                                         * gravity) / rs**2
                     for h in (SECONDARY, ENVELOPE)], axis=1)


def base_depth(cat: dict[str, np.ndarray]) -> np.ndarray:
    return 1e6 * (cat["pl_rade"] * EARTH_RADIUS_M / (cat["st_rad"] * SOLAR_RADIUS_M)) ** 2


def spot_prior(cat: dict[str, np.ndarray]) -> np.ndarray:
    """[B] prior sd of the spot covering fraction, by the catalogue's host class."""
    return np.array([SPOT_PRIOR[kind] for kind in host_class(cat["st_teff"])])


def retrieve(recorded: np.ndarray, error: np.ndarray, mask: np.ndarray, scales: np.ndarray,
             depth: float, spots: np.ndarray, spot_sd: float, prior: np.ndarray,
             co2_centre: float, rng: np.random.Generator) -> dict:
    """One planet's posterior and draw (module docstring). `recorded`, `error`, `mask` [L] are
    the spectrum (mask all False without one), `scales` [2] from `feature_scale`, `depth`
    from `base_depth`, `spots` [L] the observer's spot contrast
    (`contamination.spot_contrast`), `spot_sd` from `spot_prior`, `prior` [3] from
    `hypothesis_prior`, `co2_centre` from `thermostat_co2`.

    Returns `probability` [3] (posterior of the hypotheses) and `log_evidence` [3] (relative to
    the best); `mean`, `sd` and `prior_sd` [2, 8]
    (the gases' a_g under secondary and envelope); `hypothesis` (drawn); `theta` [8] (the
    drawn a_g; 0 for flat); `z_pressure` (the pressure draw's normal)."""
    n_bins = recorded.shape[0]
    u, z, z_pressure = rng.random(), rng.standard_normal(N_PARAMETERS), rng.standard_normal()
    weight = 1.0 / np.maximum(error[mask].astype(np.float64), 1e-12) ** 2
    d = recorded[mask].astype(np.float64)
    log_evidence = np.empty(3)
    posterior = {}
    for h in range(3):
        columns, centre, sd = _columns(h, n_bins, scales, depth, spots, spot_sd, co2_centre)
        seen = columns[mask]
        j = seen * sd  # standardised: theta = centre + sd * z
        residual = d - seen @ centre
        weighted = j.T * weight
        cholesky = np.linalg.cholesky(np.eye(len(sd)) + weighted @ j)
        b = weighted @ residual
        inverse = np.linalg.inv(cholesky)  # lower triangular; Lambda^-1 = inverse^T inverse
        mean_z = inverse.T @ (inverse @ b)
        log_evidence[h] = (-0.5 * (residual * weight) @ residual + 0.5 * b @ mean_z
                           - np.log(np.diag(cholesky)).sum())
        posterior[h] = (centre, sd, mean_z, inverse)
    logit = log_evidence + np.log(np.maximum(prior, 1e-300))
    probability = np.exp(logit - logit.max())
    probability /= probability.sum()
    hypothesis = int(min(np.searchsorted(np.cumsum(probability), u, side="right"), 2))
    gases = slice(1, 1 + len(RETRIEVED))
    mean, sd_out, prior_sd = (np.zeros((2, len(RETRIEVED))) for _ in range(3))
    for row, h in enumerate((SECONDARY, ENVELOPE)):
        centre, sd, mean_z, inverse = posterior[h]
        mean[row] = (centre + sd * mean_z)[gases]
        sd_out[row] = sd[gases] * np.sqrt((inverse**2).sum(axis=0))[gases]
        prior_sd[row] = sd[gases]
    theta = np.zeros(len(RETRIEVED))
    if hypothesis != FLAT:
        centre, sd, mean_z, inverse = posterior[hypothesis]
        theta = (centre + sd * (mean_z + inverse.T @ z[:len(sd)]))[gases]
    return {"probability": probability, "log_evidence": log_evidence - log_evidence.max(),
            "mean": mean, "sd": sd_out, "prior_sd": prior_sd,
            "hypothesis": hypothesis, "theta": theta, "z_pressure": z_pressure}


@functools.cache
def _profiles(n_bins: int) -> np.ndarray:
    """[L, 9] the gases' band profiles and the Rayleigh profile, as design columns."""
    return np.concatenate([band_profiles(n_bins)[[COLUMN[g] for g in RETRIEVED]],
                           rayleigh_profile(n_bins)[None]]).T


def _columns(h, n_bins, scales, depth, spots, spot_sd, co2_centre):
    """(design [L, K], prior centre [K], prior sd [K]) of hypothesis `h`, parameters ordered
    D0, the gases, Rayleigh, spots (flat: D0 and spots)."""
    ones, spot = np.ones((n_bins, 1)), depth * (1.0 - spots)[:, None]
    if h == FLAT:
        return (np.hstack([ones, spot]), np.array([depth, 0.0]),
                np.array([DEPTH_PRIOR * depth, spot_sd]))
    columns = np.hstack([ones, scales[h - 1] * _profiles(n_bins), spot])
    gases = [PRIORS[h][g] for g in RETRIEVED]
    centre = np.array([depth, *((co2_centre if m is None else m) for m, _ in gases),
                       RAYLEIGH_PRIOR[h][0], 0.0])
    sd = np.array([DEPTH_PRIOR * depth, *(s for _, s in gases), RAYLEIGH_PRIOR[h][1], spot_sd])
    return columns, centre, sd
