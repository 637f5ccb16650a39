"""Water thermodynamics and the one liquid-water definition, against independent fits and
hand-computed fields."""

import numpy as np
import pytest

from astrobio.data.synthetic import water


def magnus_pa(t):
    """Saturation vapour pressure over water (over ice below 273.15 K), the Magnus fits of
    Alduchov & Eskridge (1996); accurate to well under 1 % for -80..50 C."""
    tc = t - 273.15
    liquid = 610.94 * np.exp(17.625 * tc / (tc + 243.04))
    ice = 611.21 * np.exp(22.587 * tc / (tc + 273.86))
    return np.where(tc < 0, ice, liquid)


def test_saturation_vapour_pressure_matches_magnus():
    t = np.linspace(190.0, 320.0, 80)
    np.testing.assert_allclose(water.saturation_vapour_pressure(t), magnus_pa(t), rtol=0.06)
    assert water.saturation_vapour_pressure(273.15) == pytest.approx(611.2)


def test_boiling_point_and_hot_limit():
    assert water.boiling_temperature(1.01325) == pytest.approx(373.15, abs=8.0)
    assert float(water.hot_limit(1.0)) == pytest.approx(367.6, abs=1.0)  # CC at 1 bar
    assert float(water.hot_limit(100.0)) == 395.0  # the limit of known life caps it


def test_liquid_cells_by_hand():
    t = np.array([250.0, 273.15, 300.0, 380.0, 400.0])
    np.testing.assert_array_equal(water.liquid_cells(t, 1.0), [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(water.liquid_cells(t, 50.0), [0, 1, 1, 1, 0])


def test_uniform_latitude_weights_are_band_areas(rng):
    n = int(rng.integers(3, 40))
    w = water.uniform_latitude_weights(n)
    edges = np.deg2rad(np.linspace(-90, 90, n + 1))
    # area of a band = (sin(phi2) - sin(phi1)) / 2 of the sphere
    np.testing.assert_allclose(w, (np.sin(edges[1:]) - np.sin(edges[:-1])) / 2)
    assert w.sum() == pytest.approx(1.0)


def test_liquid_area_of_a_hand_made_field():
    lat = 4
    w = water.uniform_latitude_weights(lat)  # [0.146, 0.354, 0.354, 0.146]
    field = np.full((1, lat, 8), 250.0)
    field[0, 1:3, :4] = 290.0  # half of each equatorial row
    area = water.liquid_area(field, [1.0], w)
    assert area[0] == pytest.approx(0.5 * (w[1] + w[2]))
    assert water.has_liquid_water(area)[0]
    field[0, 1:3, :4] = 380.0  # boiling at 1 bar: no liquid
    assert water.liquid_area(field, [1.0], w)[0] == 0.0
    assert not water.has_liquid_water(0.09) and water.has_liquid_water(0.1)
