"""Transmission spectra on `schema.wavelength_grid(L)`: the planet's depth, and what JWST records.

Depth in ppm, linearised in the atmosphere's height (the design's feature amplitude):

    depth(l) = 1e6 (Rp^2 + 2 Rp H n(l)) / R*^2,    H = k T / (mu m_u g),  T = Teq

n(l) counts scale heights of opacity above the reference radius Rp: every gas adds Gaussian
bands at the DESIGN.md band centres, each with strength s times log10(x / 1e-9) (x = volume
mixing ratio, nothing below 1 ppb), plus a Rayleigh slope 4 ln(0.9 um / l) short of 0.9 um.
n is capped by the atmosphere's extent, ln(P / 1e-6 bar) (0 for an airless body, whose spectrum
is flat), and raised to the cloud deck's ln(P / p_cloud) times the cloud cover, which flattens
the features below it. Bands are the intrinsic width broadened to the grid's resolution,
area-preserving, so a narrow band is never lost between bin centres.

What is recorded (`observe`): the depth times the stellar contamination factor
(`contamination`), plus Gaussian noise of the programme's per-bin uncertainty (`observing`),
on the bins the programme's instruments cover (`observing.coverage`); unobserved bins hold 0
depth and 0 error.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from astrobio.data.synthetic.atmosphere import GASES
from astrobio.data.synthetic.rows import row_matmul
from astrobio.schema import wavelength_grid

# (centre um, strength s, intrinsic 1-sigma width um) per gas, DESIGN.md band centres.
BANDS = {
    "H2O": ((0.94, 0.15, 0.02), (1.14, 0.2, 0.025), (1.38, 0.35, 0.035), (1.87, 0.4, 0.045),
            (2.7, 0.55, 0.08), (6.3, 0.6, 0.3)),
    "CO2": ((1.6, 0.1, 0.02), (2.0, 0.2, 0.03), (2.7, 0.35, 0.05), (4.3, 0.7, 0.08),
            (15.0, 0.7, 1.2)),
    "CH4": ((1.7, 0.2, 0.035), (2.3, 0.3, 0.05), (3.3, 0.6, 0.08), (7.7, 0.5, 0.3)),
    "O2": ((0.69, 0.1, 0.004), (0.76, 0.35, 0.005), (1.27, 0.2, 0.012), (6.4, 0.1, 0.3)),
    "O3": ((0.6, 0.3, 0.06), (4.7, 0.2, 0.08), (9.6, 0.6, 0.25)),
    "CO": ((2.35, 0.2, 0.03), (4.6, 0.5, 0.08)),
    "NH3": ((1.5, 0.15, 0.03), (2.0, 0.15, 0.04), (3.0, 0.3, 0.06), (6.1, 0.35, 0.2),
            (10.5, 0.5, 0.4)),
    "N2O": ((2.9, 0.2, 0.04), (4.5, 0.4, 0.06), (7.8, 0.35, 0.2)),
}
ABUNDANCE_FLOOR = 1e-9
TOP_PRESSURE_BAR = 1e-6
RAYLEIGH_EDGE_UM = 0.9

BOLTZMANN = 1.380649e-23
ATOMIC_MASS = 1.66053907e-27
GRAVITY_EARTH = 9.80665
EARTH_RADIUS_M = 6.3781e6
SOLAR_RADIUS_M = 6.957e8


@functools.cache
def band_profiles(n_bins: int) -> np.ndarray:
    """[len(GASES), L]: sum over each gas's bands of s x (area-preserving Gaussian)."""
    grid = wavelength_grid(n_bins)
    # resolution element: the local bin width (log grid, constant resolving power)
    step = grid * (math.log(grid[-1] / grid[0]) / max(n_bins - 1, 1))
    profiles = np.zeros((len(GASES), n_bins))
    for g, gas in enumerate(GASES):
        for centre, strength, width in BANDS.get(gas, ()):
            sigma = np.sqrt(width**2 + (step / 2.355) ** 2)
            profiles[g] += strength * (width / sigma) * np.exp(
                -0.5 * ((grid - centre) / sigma) ** 2)
    return profiles


@functools.cache
def rayleigh_profile(n_bins: int) -> np.ndarray:
    """[L] scale heights of Rayleigh opacity of a 1-bar atmosphere."""
    return 4.0 * np.maximum(np.log(RAYLEIGH_EDGE_UM / wavelength_grid(n_bins)), 0.0)


def scale_height_m(teq, mu, planet_mass, planet_radius) -> np.ndarray:
    """H = k T / (mu m_u g) in metres (mass and radius in Earth units)."""
    gravity = GRAVITY_EARTH * planet_mass / planet_radius**2
    return BOLTZMANN * teq / (mu * ATOMIC_MASS * gravity)


def model_depth(x, scale_height, planet_radius, star_radius, pressure_bar, cloud_cover,
                cloud_deck, n_bins: int) -> np.ndarray:
    """Noise-free depth [B, L] in ppm (module docstring); `cloud_deck` = p_cloud / P."""
    rayleigh = rayleigh_profile(n_bins)
    abundance = np.log10(np.maximum(x, ABUNDANCE_FLOOR) / ABUNDANCE_FLOOR)
    n = (row_matmul(abundance, band_profiles(n_bins))
         + rayleigh * np.minimum(pressure_bar, 1.0)[:, None])
    extent = np.log(np.maximum(pressure_bar, TOP_PRESSURE_BAR) / TOP_PRESSURE_BAR)
    clouds = cloud_cover * np.log(1.0 / cloud_deck) * (extent > 0)
    n = np.maximum(np.minimum(n, extent[:, None]), clouds[:, None])
    rp = planet_radius * EARTH_RADIUS_M
    rs = star_radius * SOLAR_RADIUS_M
    return 1e6 * (rp[:, None] ** 2 + 2.0 * rp[:, None] * scale_height[:, None] * n) / (
        rs[:, None] ** 2)


def observe(depth: np.ndarray, contamination: np.ndarray, error: np.ndarray,
            mask: np.ndarray, rng: np.random.Generator):
    """One planet's recorded (depth, error, mask), float32/float32/bool [L]: the depth times
    the contamination factor plus noise of `error`, on the bins of `mask` (module
    docstring). Draws L normals whatever the mask."""
    observed = depth * contamination + error * rng.standard_normal(depth.shape[0])
    return (np.where(mask, observed, 0.0).astype(np.float32),
            np.where(mask, error, 0.0).astype(np.float32), mask.copy())
