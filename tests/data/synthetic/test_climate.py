"""Energy balance and datacube against textbook numbers and independent formulas."""

import numpy as np
import pytest

from astrobio.config import DataConfig
from astrobio.data.synthetic import climate

SHAPE = DataConfig().climate_shape


def magnus_pa(t):
    """Saturation vapour pressure over water (over ice below 273.15 K), the Magnus fits of
    Alduchov & Eskridge (1996)."""
    tc = t - 273.15
    return np.where(tc < 0, 611.21 * np.exp(22.587 * tc / (tc + 273.86)),
                    610.94 * np.exp(17.625 * tc / (tc + 243.04)))


def test_earth_twin_teq_255_and_surface_288():
    ts, teq = climate.surface_temperature(1.0, 0.3, 1.0, 4e-4, 1.0)
    assert teq == pytest.approx(255.0, abs=1.0)  # DESIGN.md: Earth, A = 0.3 -> 255 K
    assert ts == pytest.approx(288.0, abs=0.5)


def test_venus_like_atmosphere_is_near_737_k():
    ts, _ = climate.surface_temperature(1.91, 0.76, 92.0, 92.0 * 0.965, 0.0)
    assert ts == pytest.approx(737.0, rel=0.1)


def test_airless_surface_is_at_equilibrium():
    ts, teq = climate.surface_temperature(np.array([0.5, 3.0]), 0.1, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(ts, teq)


def test_energy_balance_is_monotone_in_insolation(rng):
    flux = np.geomspace(0.05, 20.0, 400)
    for _ in range(20):
        albedo = rng.uniform(0.05, 0.7)
        pressure = 10 ** rng.uniform(-2, 2)
        co2 = pressure * 10 ** rng.uniform(-5, 0)
        water = rng.uniform(0, 1.1)
        runaway = flux >= rng.uniform(0.9, 1.3)
        ts, teq = climate.surface_temperature(flux, albedo, pressure, co2, water, runaway)
        assert (np.diff(ts) > 0).all() and (np.diff(teq) > 0).all()
        assert (ts >= teq).all()


def test_greenhouse_grows_with_pressure_and_co2():
    base, _ = climate.surface_temperature(0.8, 0.3, 1.0, 4e-4, 1.0)
    more_co2, _ = climate.surface_temperature(0.8, 0.3, 1.0, 0.1, 1.0)
    thicker, _ = climate.surface_temperature(0.8, 0.3, 5.0, 4e-4, 1.0)
    assert more_co2 > base + 10 and thicker > base + 5


def test_weathering_thermostat_reaches_its_target(rng):
    teq = rng.uniform(190, 260, 30)
    target = rng.uniform(270, 300, 30)
    pco2 = climate.weathering_co2(teq, target, 1.0, 1.0)
    insolation = (teq / 254.578) ** 4 / (1 - 0.3) * 0.7  # the flux that gives this Teq at A=0.3
    ts, _ = climate.surface_temperature(insolation, 0.3, 1.0 + pco2, pco2, 1.0)
    free = (pco2 > 1e-6) & (pco2 < 8.0)
    assert free.sum() > 10
    # the background-gas approximation errs only upward and only by a little
    assert (ts[free] >= target[free] - 0.5).all() and (ts[free] <= target[free] + 25).all()


def cube(ts=288.0, teq=255.0, pressure=1.0, airless=False, gaseous=False, locked=False,
         rh=0.8, ocean=0.7, weather=None):
    weather = np.zeros((1, climate.N_WEATHER_MODES)) if weather is None else weather
    out, cover = climate.datacube(np.array([ts]), np.array([teq]), np.array([pressure]),
                                  np.array([airless]), np.array([gaseous]), np.array([locked]),
                                  np.array([rh]), np.array([ocean]), weather, SHAPE)
    return out[0], cover[0]


def test_humidity_never_exceeds_saturation(rng):
    for _ in range(10):
        ts = rng.uniform(200, 400)
        pressure = 10 ** rng.uniform(-1.5, 1.5)
        c, _ = cube(ts=ts, teq=ts * 0.85, pressure=pressure, rh=rng.uniform(0.05, 0.95),
                    locked=bool(rng.random() < 0.5),
                    weather=rng.standard_normal((1, climate.N_WEATHER_MODES)))
        temperature, q = c[0].astype(np.float64), c[1].astype(np.float64)
        sigma = np.geomspace(1.0, 0.01, SHAPE[1])[:, None, None]
        p = pressure * 1e5 * sigma
        vapour = q * p / (0.622 + 0.378 * q)  # the partial pressure q implies
        assert (q >= 0).all() and (vapour <= p * (1 + 1e-5)).all()
        fit = temperature < 320.0  # where the Magnus fits hold (CC here is within 6 % there)
        assert (vapour[fit] <= magnus_pa(temperature[fit]) * 1.06 + 1e-6).all()
        assert ((c[2] >= 0) & (c[2] <= 1)).all() and ((c[3] >= 0) & (c[3] <= 1)).all()


def test_temperature_structure_lapse_and_stratosphere():
    c, _ = cube()
    column = c[0, :, 8, 0]
    assert column[0] > column[1] > column[2]  # troposphere cools upward
    skin = 255.0 * 2**-0.25
    assert column[-1] == pytest.approx(skin, rel=1e-4)  # isothermal stratosphere at the top
    np.testing.assert_allclose(c[0, -2:], skin, rtol=1e-4)
    equator, pole = c[0, 0, 8, 0], c[0, 0, 0, 0]
    assert equator - pole > 20  # latitudinal gradient of a 1-bar fast rotator


def test_locked_planet_has_a_substellar_hot_spot_at_180_degrees():
    c, _ = cube(locked=True)
    surface = c[0, 0]
    lat, lon = np.unravel_index(np.argmax(surface), surface.shape)
    assert abs((lon + 0.5) * 360 / SHAPE[3] - 180) <= 360 / SHAPE[3]
    assert lat in (SHAPE[2] // 2 - 1, SHAPE[2] // 2)
    assert surface.max() - surface[:, 0].mean() > 50  # night side far colder
    fast, _ = cube(locked=False)
    assert np.ptp(fast[0, 0], axis=1).max() < 1e-3  # zonally symmetric without weather


def test_liquid_water_only_where_the_surface_is_above_freezing(rng):
    for ts in (250.0, 275.0, 300.0):
        c, _ = cube(ts=ts, weather=rng.standard_normal((1, climate.N_WEATHER_MODES)))
        warm = c[0, 0] > 273.15
        assert (c[3, 0][~warm] == 0).all()
        np.testing.assert_allclose(c[3, 0][warm], 0.7)
    boiling, _ = cube(ts=420.0, teq=350.0)  # above 1 bar's boiling point: no seas
    assert not boiling[3, 0].any()


def test_airless_and_gaseous_cubes():
    c, cover = cube(ts=300.0, pressure=0.0, airless=True)
    assert not c[:, 1:].any() and not c[1:, 0].any() and cover == 0
    assert (c[0, 0] > 0).all()
    g, _ = cube(ts=500.0, gaseous=True)
    assert not g[3, 0].any()  # no surface, no ocean
    assert g[0, 0].mean() > 500.0  # level 0 is the 10-bar level, below the 1-bar reference


def test_clouds_rise_with_humidity():
    _, dry = cube(rh=0.3)
    _, wet = cube(rh=0.9)
    assert wet > dry
