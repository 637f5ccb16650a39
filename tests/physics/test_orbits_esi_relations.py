import math

import numpy as np
import pytest
import torch

from astrobio.errors import DataError
from astrobio.physics import (
    earth_similarity_index,
    earth_similarity_index_from_mass,
    equilibrium_temperature,
    equilibrium_temperature_from_insolation,
    insolation,
    main_sequence_luminosity,
    main_sequence_radius,
    main_sequence_teff,
    planet_mass_from_radius,
    planet_radius_from_mass,
    semi_major_axis_from_period,
    stellar_luminosity,
    stellar_radius,
    stellar_teff,
)
from astrobio.physics.relations import LOG_MASS_BREAKS, MAX_INVERTIBLE_RADIUS, SLOPES


def _time_averaged_inverse_square(a: float, e: float, n: int = 200001) -> float:
    """<1/r^2> over one orbit by quadrature in the eccentric anomaly E (dM = (1 - e cos E) dE)."""
    ecc_anomaly = np.linspace(0.0, 2 * np.pi, n)
    r = a * (1 - e * np.cos(ecc_anomaly))
    integrand = (1 - e * np.cos(ecc_anomaly)) / r**2
    return float(np.trapezoid(integrand, ecc_anomaly) / (2 * np.pi))


def test_insolation_circular_and_eccentric(rng):
    lum, a = rng.uniform(0.1, 3.0), rng.uniform(0.2, 4.0)
    assert insolation(lum, a) == pytest.approx(lum / a**2, rel=1e-14)
    for e in (0.1, 0.5, rng.uniform(0.0, 0.9)):
        expected = lum * _time_averaged_inverse_square(a, e)
        assert insolation(lum, a, e) == pytest.approx(expected, rel=1e-8)


def test_equilibrium_temperature_of_earth():
    assert round(float(equilibrium_temperature(5772.0, 1.0, 1.0, albedo=0.3))) == 255
    assert round(float(equilibrium_temperature(5780.0, 1.0, 1.0, albedo=0.3))) == 255
    # The flux form agrees for the IAU Sun (1361 W/m^2 at 1 AU).
    assert equilibrium_temperature_from_insolation(1.0, 0.3) == pytest.approx(
        equilibrium_temperature(5772.0, 1.0, 1.0, 0.3), rel=1e-4)


def test_equilibrium_temperature_scalings(rng):
    teff, radius, a = rng.uniform(3000, 7000), rng.uniform(0.2, 2.0), rng.uniform(0.05, 3.0)
    base = equilibrium_temperature(teff, radius, a, albedo=0.0)
    assert equilibrium_temperature(teff, radius, 4 * a, albedo=0.0) == pytest.approx(base / 2)
    assert equilibrium_temperature(teff, radius, a, albedo=0.5) == pytest.approx(
        base * 0.5**0.25)
    e = 0.6
    assert equilibrium_temperature(teff, radius, a, 0.0, eccentricity=e) == pytest.approx(
        base * (1 - e**2) ** -0.125)


def test_kepler_third_law():
    assert semi_major_axis_from_period(365.256, 1.0) == pytest.approx(1.0, abs=1e-4)
    # Jupiter: P = 4332.59 d, a = 5.2038 AU (its own mass adds 3e-4 to a; neglected here).
    assert semi_major_axis_from_period(4332.59, 1.0) == pytest.approx(5.2038, rel=1e-3)


@pytest.mark.parametrize("call,field", [
    (lambda: insolation(1.0, 1.0, 1.0), "eccentricity"),
    (lambda: insolation(1.0, -0.5), "semi_major_axis"),
    (lambda: insolation(np.array([1.0, np.nan]), 1.0), "luminosity"),
    (lambda: equilibrium_temperature(5000.0, 1.0, 1.0, albedo=1.2), "albedo"),
    (lambda: equilibrium_temperature(5000.0, 0.0, 1.0), "stellar_radius"),
    (lambda: earth_similarity_index(1.0, 1.0, -1.0, 288.0), "escape_velocity"),
    (lambda: planet_mass_from_radius(20.0), "planet_radius"),
    (lambda: main_sequence_luminosity(0.0), "stellar_mass"),
])
def test_invalid_values_name_the_field(call, field):
    with pytest.raises(DataError) as info:
        call()
    assert info.value.field == field


def test_esi_published_values():
    # Schulze-Makuch et al. 2011: Earth 1, Mars 0.70, Venus 0.44.
    assert earth_similarity_index(1.0, 1.0, 1.0, 288.0) == 1.0
    assert earth_similarity_index(0.532, 0.713, 0.45, 227.0) == pytest.approx(0.70, abs=0.005)
    assert earth_similarity_index(0.95, 0.95, 0.93, 737.0) == pytest.approx(0.44, abs=0.005)
    # Mars from its mass (0.107 Me) and radius gives the same density and escape velocity.
    assert earth_similarity_index_from_mass(0.532, 0.107, 227.0) == pytest.approx(0.70,
                                                                                   abs=0.005)


def test_esi_single_factor_hand_computed():
    # Only temperature differs: (1 - 50/626)^(5.58/4).
    assert earth_similarity_index(1.0, 1.0, 1.0, 338.0) == pytest.approx(
        (1 - 50 / 626) ** (5.58 / 4), rel=1e-14)


def test_stefan_boltzmann_round_trip(rng):
    teff, radius = rng.uniform(2500, 9000, 6), rng.uniform(0.1, 3.0, 6)
    lum = stellar_luminosity(teff, radius)
    np.testing.assert_allclose(lum, radius**2 * (teff / 5772.0) ** 4, rtol=1e-14)
    np.testing.assert_allclose(stellar_radius(teff, lum), radius, rtol=1e-12)
    np.testing.assert_allclose(stellar_teff(lum, radius), teff, rtol=1e-12)


def test_main_sequence_sun_and_trend():
    assert main_sequence_luminosity(1.0) == pytest.approx(1.0)
    assert main_sequence_radius(1.0) == pytest.approx(1.0)
    assert main_sequence_teff(1.0) == pytest.approx(5772.0)
    masses = np.geomspace(0.1, 20.0, 50)
    for relation in (main_sequence_luminosity, main_sequence_radius, main_sequence_teff):
        assert np.all(np.diff(relation(masses)) > 0), relation.__name__
    # 0.5 Msun: L = 0.5^4, R = 0.5^0.8, Teff from Stefan-Boltzmann.
    assert main_sequence_teff(0.5) == pytest.approx(5772 * (0.0625 / 0.5**1.6) ** 0.25)


def test_forecaster_slopes_continuity_and_inverse(rng):
    assert planet_radius_from_mass(1.0) == pytest.approx(10**0.00346, rel=1e-12)
    # Local log-slope inside each segment is the published exponent.
    centres = [0.0, *((lo + hi) / 2 for lo, hi in zip(LOG_MASS_BREAKS, LOG_MASS_BREAKS[1:])),
               LOG_MASS_BREAKS[-1] + 1.0]
    for x, slope in zip(centres, SLOPES):
        h = 1e-4
        r_lo, r_hi = planet_radius_from_mass(10 ** (x - h)), planet_radius_from_mass(10 ** (x + h))
        assert math.log10(r_hi / r_lo) / (2 * h) == pytest.approx(slope, rel=1e-6)
    for x in LOG_MASS_BREAKS:  # continuous at the transitions
        below, above = planet_radius_from_mass(10 ** (x - 1e-9)), planet_radius_from_mass(10**x)
        assert below == pytest.approx(above, rel=1e-7)
    radii = rng.uniform(0.3, MAX_INVERTIBLE_RADIUS * 0.999, 9)
    np.testing.assert_allclose(planet_radius_from_mass(planet_mass_from_radius(radii)), radii,
                               rtol=1e-12)


def test_torch_matches_numpy_with_gradients(rng):
    cases = [
        (insolation, (rng.uniform(0.1, 2, 4), rng.uniform(0.1, 3, 4), rng.uniform(0, 0.8, 4))),
        (equilibrium_temperature, (rng.uniform(3000, 7000, 4), rng.uniform(0.2, 2, 4),
                                   rng.uniform(0.1, 3, 4), rng.uniform(0, 0.8, 4))),
        (equilibrium_temperature_from_insolation, (rng.uniform(0.1, 5, 4),)),
        (earth_similarity_index, (rng.uniform(0.3, 3, 4), rng.uniform(0.3, 2, 4),
                                  rng.uniform(0.3, 3, 4), rng.uniform(150, 500, 4))),
        (planet_radius_from_mass, (np.geomspace(0.05, 1e5, 4) * rng.uniform(0.9, 1.1, 4),)),
        (planet_mass_from_radius, (rng.uniform(0.3, 14, 4),)),
        (main_sequence_teff, (rng.uniform(0.1, 60, 4),)),
        (semi_major_axis_from_period, (rng.uniform(1, 500, 4), rng.uniform(0.1, 2, 4))),
    ]
    for function, args in cases:
        ref = function(*args)
        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        out = function(*tensors)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
        np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12,
                                   err_msg=function.__name__)
        assert torch.autograd.gradcheck(function, tuple(tensors)), function.__name__
        out32 = function(*(torch.tensor(a, dtype=torch.float32) for a in args))
        assert out32.dtype == torch.float32


def test_scalar_in_scalar_out():
    assert isinstance(insolation(1.0, 2.0), np.floating)
    assert isinstance(insolation(np.array([1.0]), 2.0), np.ndarray)
