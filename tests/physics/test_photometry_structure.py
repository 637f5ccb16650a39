"""J-band photometry, transits and interiors against measured stars and hand-computed cases."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from astrobio.errors import DataError
from astrobio.physics import (
    absolute_j_magnitude,
    apparent_magnitude,
    envelope_thickness,
    j_band_fraction,
    orbital_period,
    planck_ratio,
    rocky_radius,
    semi_major_axis_from_period,
    transit_duration,
)

H, C, K = 6.62607015e-34, 299792458.0, 1.380649e-23


def planck(wavelength_m, t):
    return 2 * H * C**2 / wavelength_m**5 / math.expm1(H * C / (wavelength_m * K * t))


@pytest.mark.parametrize("teff", [2600.0, 3300.0, 5772.0, 7000.0])
def test_j_band_fraction_is_the_planck_integral(teff):
    expected = quad(planck, 1.11e-6, 1.39e-6, args=(teff,))[0] / (5.670374419e-8 * teff**4
                                                                    / math.pi)
    assert j_band_fraction(teff) == pytest.approx(expected, rel=1e-10)


# (Teff K, L Lsun, distance pc, 2MASS J): TRAPPIST-1 (Agol et al. 2021; Gaia), Proxima
# Centauri (Boyajian et al. 2012), 61 Cyg A (Kervella et al. 2008), Procyon (2MASS).
MEASURED = {"TRAPPIST-1": (2566.0, 5.53e-4, 12.43, 11.354),
            "Proxima Cen": (3042.0, 1.55e-3, 1.3012, 5.357),
            "61 Cyg A": (4526.0, 0.153, 3.497, 3.114),
            "Procyon": (6530.0, 6.93, 3.51, -0.498)}


@pytest.mark.parametrize("star", list(MEASURED))
def test_j_magnitude_of_measured_stars(star):
    teff, luminosity, distance, j_observed = MEASURED[star]
    predicted = apparent_magnitude(absolute_j_magnitude(teff, luminosity), distance)
    # a blackbody: M dwarfs up to 0.3 mag faint (module docstring), FGK within 0.1 mag
    assert -0.1 <= predicted - j_observed <= (0.35 if teff < 3900 else 0.1)


def test_sun_and_distance_modulus():
    assert absolute_j_magnitude(5772.0, 1.0) == pytest.approx(3.67)
    assert apparent_magnitude(3.67, 100.0) == pytest.approx(8.67)
    t = torch.tensor([3000.0, 5772.0], dtype=torch.float64, requires_grad=True)
    out = absolute_j_magnitude(t, torch.ones(2, dtype=torch.float64))
    np.testing.assert_allclose(out.detach().numpy(),
                               absolute_j_magnitude(np.array([3000.0, 5772.0]), 1.0))
    out.sum().backward()
    assert torch.isfinite(t.grad).all()
    with pytest.raises(DataError, match="distance"):
        apparent_magnitude(3.0, -1.0)


def test_planck_ratio_by_hand():
    x = H * C / (1.5e-6 * K)
    assert planck_ratio(1.5, 2500.0, 3000.0) == pytest.approx(
        math.expm1(x / 3000.0) / math.expm1(x / 2500.0), rel=1e-12)
    assert planck_ratio(0.7, 3100.0, 3000.0) > planck_ratio(3.0, 3100.0, 3000.0) > 1.0


def test_transit_duration_of_earth_and_period_inverse(rng):
    # Earth across the Sun: (P / pi) (R*/a) = 365.256 d * 24 h / pi * 0.0046505 = 12.98 h
    assert transit_duration(365.256, 1.0, 1.0) == pytest.approx(12.976, abs=0.005)
    grazing = transit_duration(365.256, 1.0, 1.0, radius_ratio=0.1, impact_parameter=1.0)
    assert grazing == pytest.approx(12.976 * math.sqrt(1.1**2 - 1.0), rel=1e-4)
    a, mass = rng.uniform(0.01, 3.0), rng.uniform(0.1, 1.5)
    assert semi_major_axis_from_period(orbital_period(a, mass), mass) == pytest.approx(a)
    assert orbital_period(1.0, 1.0) == pytest.approx(365.26, abs=0.01)
    with pytest.raises(DataError, match="impact_parameter"):
        transit_duration(10.0, 1.0, 0.1, impact_parameter=1.5)


def test_zeng_rocky_radius():
    assert rocky_radius(1.0, 0.325) == pytest.approx(1.00, abs=0.005)  # Earth
    # (1.07 - 0.21 * 0.26) * 5^(1/3.7) by hand
    assert rocky_radius(5.0, 0.26) == pytest.approx(1.0154 * 5 ** (1 / 3.7), rel=1e-12)
    assert rocky_radius(3.0, 0.0) > rocky_radius(3.0, 0.4)  # iron makes a planet denser
    with pytest.raises(DataError, match="core_mass_fraction"):
        rocky_radius(1.0, 1.5)


def test_lopez_fortney_envelope():
    # the fit's reference point: 1 Me, 5 % envelope, Earth's flux, 5 Gyr -> 2.06 Re
    assert envelope_thickness(1.0, 0.05, 1.0) == pytest.approx(2.06)
    # 5 Me, 1 %, 100 S_earth, 5 Gyr: 2.06 * 5^-0.21 * 0.2^0.59 * 100^0.044
    expected = 2.06 * 5**-0.21 * 0.2**0.59 * 100**0.044
    assert envelope_thickness(5.0, 0.01, 100.0) == pytest.approx(expected, rel=1e-12)
    assert envelope_thickness(5.0, 0.01, 100.0, age_gyr=1.0) > expected  # young: puffier
