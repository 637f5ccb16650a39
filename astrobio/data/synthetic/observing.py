"""The observing programme: which planets get a transmission spectrum, over how many transits,
on which bins, and each bin's uncertainty.

Programme: every target is observed over two years of JWST visibility windows (two of 60 days
a year, 240 days in all), every transit that falls in them up to MAX_TRANSITS = 20 (the time
a large programme spends on one rocky planet: JWST's TRAPPIST-1 e programmes total about 15),
n = min(20, floor(240 d / P + u)) with u the transit phase. A planet with a period beyond the
windows may show no transit at all and then has no spectrum.

Uncertainty per bin, photon-limited from a measured reference plus a systematics floor:

    sigma_ph = 55 ppm x shape(l) x 10^(0.2 (J - 9.1)) x sqrt(2.19 h / (n T14)) x sqrt(R_L / 100)
    sigma    = sqrt(sigma_ph^2 + floor^2)

The reference is JWST's commissioning transit of HAT-P-14 b (J = 9.1, T14 = 2.19 h): 50-60
ppm per R = 100 bin in one transit with NIRSpec (Espinoza et al. 2022). T14 is the transit's
duration (`physics.transit_duration`, impact parameter uniform in 0-0.9), R_L the grid's
resolving power (L - 1) / ln(12 / 0.6). shape(l) is 1 at 4 um and follows the NIRSpec PRISM
throughput, (1 + 0.5 (l / 3 um)^2) / 1.89, rising to the red; MIRI LRS bins are 2.5 (1 + (l /
8 um)^2) / 1.25 times the 4 um NIRSpec level. Floors: 10 ppm for NIRSpec (a 14 ppm 3-sigma
limit measured by Schlawin et al. 2021), 30 ppm for MIRI LRS.

Coverage: both instruments, NIRSpec PRISM only or MIRI LRS only (50 / 35 / 15 %); PRISM
saturates at 0.9-1.9 um on hosts brighter than J = 10; a 3.72-3.82 um detector gap in half the
NIRSpec visits; 2 % of bins lost at random.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from astrobio import physics
from astrobio.schema import WAVELENGTH_MAX_UM, WAVELENGTH_MIN_UM, wavelength_grid

PROGRAMME_DAYS = 240.0
MAX_TRANSITS = 20
MAX_IMPACT = 0.9
REFERENCE = {"ppm": 55.0, "j_mag": 9.1, "hours": 2.19, "resolving_power": 100.0}
FLOOR_PPM = {"nirspec": 10.0, "miri": 30.0}
NIRSPEC_UM = (0.6, 5.3)
MIRI_UM = (5.0, 12.0)
SATURATION_UM = (0.9, 1.9)
SATURATION_J = 10.0
GAP_UM = (3.72, 3.82)
BAD_BIN_RATE = 0.02
INSTRUMENT_CHOICES = (0.5, 0.85)  # cumulative: both, NIRSpec only, MIRI only


def transits(period, u_phase) -> np.ndarray:
    """Transits observed by the programme (module docstring), int [B]."""
    count = np.floor(PROGRAMME_DAYS / np.asarray(period) + np.asarray(u_phase))
    return np.minimum(count, MAX_TRANSITS).astype(np.int64)


def durations(period, star_radius, semi_major_axis, radius_ratio, u_impact) -> np.ndarray:
    """Transit durations in hours [B]."""
    return physics.transit_duration(period, star_radius, semi_major_axis, radius_ratio,
                                    MAX_IMPACT * np.asarray(u_impact))


@functools.cache
def _terms(n_bins: int):
    grid = wavelength_grid(n_bins)
    resolving_power = (n_bins - 1) / math.log(WAVELENGTH_MAX_UM / WAVELENGTH_MIN_UM)
    bin_factor = math.sqrt(max(resolving_power, 1.0) / REFERENCE["resolving_power"])
    nirspec = (1.0 + 0.5 * (grid / 3.0) ** 2) / (1.0 + 0.5 * (4.0 / 3.0) ** 2)
    miri = 2.5 * (1.0 + (grid / 8.0) ** 2) / (1.0 + (4.0 / 8.0) ** 2)
    within = lambda band: (grid >= band[0]) & (grid <= band[1])
    return {"nirspec_shape": bin_factor * nirspec, "miri_shape": bin_factor * miri,
            "in_nirspec": within(NIRSPEC_UM), "in_miri": within(MIRI_UM),
            "saturated": within(SATURATION_UM), "gap": within(GAP_UM)}


def coverage(n_bins: int, j_mag: float, u_instrument: float, u_gap: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(observed bins, bins taken by NIRSpec) for one planet, bool [L] each; draws L uniforms
    whatever the outcome."""
    t = _terms(n_bins)
    lost = rng.random(n_bins) < BAD_BIN_RATE
    use_nirspec = u_instrument < INSTRUMENT_CHOICES[1]
    use_miri = (u_instrument < INSTRUMENT_CHOICES[0]) | (u_instrument >= INSTRUMENT_CHOICES[1])
    nirspec = t["in_nirspec"] & use_nirspec
    if j_mag < SATURATION_J:
        nirspec = nirspec & ~t["saturated"]
    if u_gap < 0.5:
        nirspec = nirspec & ~t["gap"]
    mask = (nirspec | (t["in_miri"] & use_miri)) & ~lost
    if not mask.any():
        mask = t["in_nirspec"] if use_nirspec else t["in_miri"]
    return mask, nirspec & mask


def uncertainty(n_bins: int, j_mag: float, n_transits: int, duration_h: float,
                nirspec: np.ndarray) -> np.ndarray:
    """1-sigma per-bin uncertainty (ppm) [L] of the co-added transits (module docstring);
    `nirspec` marks the bins NIRSpec takes, the rest are MIRI's."""
    t = _terms(n_bins)
    photon = (REFERENCE["ppm"] * 10.0 ** (0.2 * (j_mag - REFERENCE["j_mag"]))
              * math.sqrt(REFERENCE["hours"] / (max(n_transits, 1) * duration_h)))
    return np.where(nirspec, np.hypot(photon * t["nirspec_shape"], FLOOR_PPM["nirspec"]),
                    np.hypot(photon * t["miri_shape"], FLOOR_PPM["miri"]))
