"""clero where it applies: its domain, draws from a planet's own seed, and its climates on the
datacube's grid (conservative in area, linear in log pressure, substellar point at 180 deg)."""

import numpy as np
import pytest

from astrobio.data.synthetic import emulator
from astrobio.data.synthetic.water import liquid_area, uniform_latitude_weights

clero = pytest.importorskip("clero")
EARTHLIKE = {"T_star": 3000.0, "F_star": 900.0, "radius": 1.0, "gravity": 9.8, "P_rot": 12.0,
             "P0": 1.0, "CO2": 4e-4, "CH4": 1e-6}


def test_inputs_and_domain():
    x = emulator.inputs([3000.0, 3000.0, 3000.0], [0.66, 0.2, 0.66], [1.0, 1.0, 2.5],
                        [1.0, 1.0, 8.0], [12.0, 12.0, 12.0], [1.0, 1.0, 1.0], [4e-4] * 3,
                        [0.0] * 3)
    assert x["F_star"][0] == pytest.approx(0.66 * 1361.0)
    assert x["gravity"][0] == pytest.approx(9.80665)
    inside = emulator.in_domain(x, np.array([True, True, True]))
    # 272 W/m^2 is below the 500 W/m^2 floor; 2.5 Re above the 1.75 Re ceiling
    assert inside.tolist() == [True, False, False]
    assert not emulator.in_domain(x, np.array([False, True, True]))[0]
    assert clero.CORE_DOMAIN["F_star"] == (500.0, 1500.0)


def test_draws_come_from_the_seed():
    a = emulator.draw(EARTHLIKE, "um", 12345)
    b = emulator.draw(EARTHLIKE, "um", 12345)
    c = emulator.draw(EARTHLIKE, "um", 12346)
    assert set(a) == set(emulator.FIELDS) and a["surface_temperature"].shape == (32, 64)
    for name in emulator.FIELDS:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["surface_temperature"], c["surface_temperature"])
    direct = clero.Emulator().sample({**EARTHLIKE, "GCM": "um"}, n_samples=1, seed=12345)
    np.testing.assert_array_equal(direct["temperature_3"][0], a["temperature_3"])


def _fields(rng, surface, levels=None):
    out = {"surface_temperature": surface}
    for name, top in (("temperature", 300.0), ("specific_humidity", 0.01),
                      ("cloud_fraction", 1.0)):
        for k in range(emulator.N_LEVELS):
            out[f"{name}_{k}"] = (levels[k] if levels is not None
                                  else rng.uniform(0.0, top, (32, 64))).astype(np.float32)
    return out


@pytest.mark.parametrize("lat,lon", [(16, 32), (5, 7), (32, 64)])
def test_regridding_conserves_area_means(rng, lat, lon):
    surface = rng.uniform(200, 320, (32, 64)).astype(np.float32)
    cube = emulator.to_cube(_fields(rng, surface), 1.0, 0.7, (4, 6, lat, lon))
    clero_weights = clero.climate_analysis.latitude_weights(
        clero.climate_analysis.latitude_centers(32))
    expected = float(surface.astype(np.float64).mean(axis=1) @ clero_weights)
    got = float((cube[0, 0].astype(np.float64).mean(axis=1) * uniform_latitude_weights(lat))
                .sum())
    assert got == pytest.approx(expected, rel=1e-5)


def test_substellar_point_moves_to_180_degrees(rng):
    lon = clero.climate_analysis.longitude_centers(64)  # substellar at 0
    lat = clero.climate_analysis.latitude_centers(32)
    surface = (250 + 60 * np.cos(np.deg2rad(lat))[:, None]
               * np.maximum(np.cos(np.deg2rad(lon)), 0)[None, :]).astype(np.float32)
    cube = emulator.to_cube(_fields(rng, surface), 1.0, 0.7, (4, 4, 16, 32))
    row, col = np.unravel_index(np.argmax(cube[0, 0]), (16, 32))
    assert abs((col + 0.5) * 360 / 32 - 180) <= 360 / 32 and row in (7, 8)


def test_levels_are_linear_in_log_pressure(rng):
    pressure = 2.0
    clero_p = clero.climate_analysis.pressure_levels(pressure)
    a, b = 400.0, -12.0
    levels = [np.full((32, 64), a + b * np.log(p)) for p in clero_p]
    cube = emulator.to_cube(_fields(rng, np.full((32, 64), 300.0, np.float32), levels),
                            pressure, 0.7, (4, 8, 4, 8))
    sigma = np.geomspace(1.0, 0.01, 8)
    p = np.clip(sigma * pressure * 1e5, clero_p.min(), clero_p.max())  # constant beyond
    np.testing.assert_allclose(cube[0, 1:, 0, 0], a + b * np.log(p[1:]), rtol=1e-5)
    assert cube[0, 0, 0, 0] == 300.0  # level 0 is the surface temperature


def test_liquid_channel_and_summary(rng):
    surface = np.full((32, 64), 250.0, np.float32)
    surface[:, 24:40] = 290.0  # a dayside band of open water
    fields = _fields(rng, surface)
    cube = emulator.to_cube(fields, 1.0, 0.7, (4, 4, 16, 32))
    assert set(np.unique(cube[3, 0])) <= {0.0, np.float32(0.7)}
    summary = emulator.summary(fields, {**EARTHLIKE, "P0": 1.0})
    weights = clero.climate_analysis.latitude_weights(clero.climate_analysis.latitude_centers(32))
    assert summary["liquid_area"] == pytest.approx(
        float(liquid_area(surface[None], [1.0], weights)[0]))
    assert summary["liquid_area"] == pytest.approx(16 / 64)
    assert not summary["runaway"]  # dry (q <= 0.01) and cool


def test_summary_runaway_agrees_with_clero(rng):
    planet = {**EARTHLIKE, "F_star": 1500.0, "P0": 5.0, "CO2": 0.5, "T_star": 5500.0}
    fields = emulator.draw(planet, "exocam", int(rng.integers(2**31)))
    state = clero.climate_analysis.climate_state(fields, planet)["state"]
    assert emulator.summary(fields, planet)["runaway"] == (state == "runaway_greenhouse")
