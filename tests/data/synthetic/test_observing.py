"""The programme's transits and each bin's uncertainty against hand-computed cases."""

import math

import numpy as np
import pytest

from astrobio.data.synthetic import observing
from astrobio.schema import wavelength_grid


def test_transits_follow_the_period():
    period = np.array([5.0, 100.0, 100.0, 300.0, 300.0, 1000.0])
    phase = np.array([0.5, 0.1, 0.7, 0.1, 0.9, 0.5])
    # floor(240 / P + u): 48.5 -> capped 20; 2.5 -> 2; 3.1 -> 3; 0.9 -> 0; 1.7 -> 1; 0.74 -> 0
    assert observing.transits(period, phase).tolist() == [20, 2, 3, 0, 1, 0]


def test_reference_star_gets_the_reference_precision():
    """HAT-P-14 (J = 9.1, T14 = 2.19 h), one transit, at 4 um on a grid of resolving power
    100: 55 ppm with the 10 ppm floor added in quadrature (Espinoza et al. 2022)."""
    n_bins = round(100 * math.log(20.0)) + 1  # R = (L - 1) / ln(12 / 0.6) = 100.1
    grid = wavelength_grid(n_bins)
    at4 = int(np.argmin(abs(grid - 4.0)))
    nirspec = np.ones(n_bins, bool)
    sigma = observing.uncertainty(n_bins, 9.1, 1, 2.19, nirspec)
    shape = ((1 + 0.5 * (grid[at4] / 3) ** 2) / (1 + 0.5 * (4 / 3) ** 2)
             * math.sqrt((n_bins - 1) / math.log(20.0) / 100))
    assert sigma[at4] == pytest.approx(math.hypot(55.0 * shape, 10.0), rel=1e-6)
    # photon noise: 4 transits halve it, 5 mag fainter multiplies it by 10
    faint = observing.uncertainty(n_bins, 14.1, 4, 2.19, nirspec)[at4]
    assert faint == pytest.approx(math.hypot(55.0 * shape * 10 / 2, 10.0), rel=1e-6)
    bright = observing.uncertainty(n_bins, 3.0, 20, 10.0, nirspec)
    assert bright.min() >= observing.FLOOR_PPM["nirspec"]  # the systematics floor
    miri = observing.uncertainty(n_bins, 9.1, 1, 2.19, np.zeros(n_bins, bool))
    assert (miri > sigma).all()


def test_coverage_by_instrument(rng):
    grid = wavelength_grid(256)
    both, _ = observing.coverage(256, 11.0, 0.1, 0.9, rng)
    assert both[(grid > 1) & (grid < 12)].mean() > 0.9
    nirspec_only, taken = observing.coverage(256, 11.0, 0.6, 0.9, rng)
    assert not nirspec_only[grid > 5.3].any() and (taken == nirspec_only).all()
    miri_only, taken = observing.coverage(256, 11.0, 0.9, 0.9, rng)
    assert not miri_only[grid < 5.0].any() and not taken.any()
    bright, _ = observing.coverage(256, 8.0, 0.1, 0.9, rng)
    assert not bright[(grid > 0.95) & (grid < 1.85)].any()  # PRISM saturates


def test_transit_durations():
    # TRAPPIST-1 e (Agol et al. 2021): P 6.101 d, R* 0.1192 Rsun, a 0.02925 AU, central: 53 min
    hours = observing.durations(np.array([6.101]), np.array([0.1192]), np.array([0.02925]),
                                np.array([0.0]), np.array([0.0]))
    assert hours[0] * 60 == pytest.approx(6.101 * 24 * 60 / math.pi * 0.1192 * 6.957e8
                                          / (0.02925 * 1.495978707e11), rel=1e-3)
