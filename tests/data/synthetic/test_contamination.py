"""Stellar contamination (Rackham et al. 2018, eq. 3) against hand-computed Planck ratios."""

import math

import numpy as np
import pytest

from astrobio.data.synthetic import contamination
from astrobio.schema import wavelength_grid

H, C, K = 6.62607015e-34, 299792458.0, 1.380649e-23


def planck(wavelength_um, t):
    x = H * C / (wavelength_um * 1e-6 * K * t)
    return 1.0 / math.expm1(x)


def test_spot_only_factor_by_hand():
    n = 256
    grid = wavelength_grid(n)
    k = int(np.argmin(abs(grid - 0.8)))  # far from water bands
    teff, f_spot = 5000.0, 0.03  # a spot at 4300 K: no stellar water
    eps = contamination.factor(n, [teff], [f_spot], [0.0])[0]
    ratio = planck(grid[k], 0.86 * teff) / planck(grid[k], teff)
    assert eps[k] == pytest.approx(1.0 / (1.0 - f_spot * (1.0 - ratio)), rel=1e-10)
    assert (eps > 1).all() and eps[0] > eps[-1]  # spots steepen the blue end


def test_faculae_lower_the_depth_and_no_activity_is_neutral():
    n = 128
    assert np.all(contamination.factor(n, [3000.0], [0.0], [0.0]) == 1.0)
    assert (contamination.factor(n, [3000.0], [0.0], [0.5]) < 1.0).all()


def test_cool_spots_imprint_water_on_m_dwarfs():
    n = 256
    grid = wavelength_grid(n)
    eps = contamination.factor(n, [2600.0], [0.08], [0.0])[0]  # TRAPPIST-1's spots
    band, side = int(np.argmin(abs(grid - 1.38))), int(np.argmin(abs(grid - 1.6)))
    smooth = contamination.factor(n, [6000.0], [0.08], [0.0])[0]  # a 5160 K spot, no water
    # the water band stands out above the continuum trend only for the cool spot
    assert eps[band] / eps[side] > smooth[band] / smooth[side] + 0.005
    # a few per cent of the depth, as Rackham et al. (2018) find for TRAPPIST-1
    assert 1.01 < eps.max() < 1.2
