"""The observer's planet: retrieval draws become atmospheres, run through the climate model
the inferred planet calls for, with the population's typical values for what is unmeasured."""

import numpy as np
import pytest

from astrobio.data.synthetic import atmosphere, climate, observer, retrieval
from astrobio.data.synthetic.water import uniform_latitude_weights

C = atmosphere.COLUMN


def catalogue(n, **changes):
    cat = {"st_teff": np.full(n, 5600.0), "st_rad": np.full(n, 1.0), "st_mass": np.full(n, 1.0),
           "pl_rade": np.full(n, 1.0), "pl_bmasse": np.full(n, 1.0), "pl_insol": np.full(n, 1.0),
           "pl_orbsmax": np.full(n, 1.0), "pl_orbper": np.full(n, 365.0)}
    return cat | {k: np.full(n, v) for k, v in changes.items()}


def draw(hypothesis, co2=5.0, z_pressure=0.0):
    theta = np.zeros(len(retrieval.RETRIEVED))
    theta[retrieval.RETRIEVED.index("CO2")] = co2
    return {"hypothesis": hypothesis, "theta": theta, "z_pressure": z_pressure}


def test_inferred_atmospheres():
    cat = catalogue(3, pl_bmasse=2.0)
    inf = observer.inferred(cat, [draw(retrieval.FLAT), draw(retrieval.SECONDARY, 6.0, 1.0),
                                  draw(retrieval.ENVELOPE)])
    assert inf["airless"].tolist() == [True, False, False]
    assert inf["gaseous"].tolist() == [False, False, True]
    assert not inf["x"][0].any() and inf["pressure"][0] == 0.0
    # the population's law: log10 P = 0.6 log10 M + 0.45 z
    assert inf["pressure"][1] == pytest.approx(10 ** (0.6 * np.log10(2.0) + 0.45))
    assert inf["x"][1, C["CO2"]] == pytest.approx(1e-3)
    assert inf["x"][1].sum() == pytest.approx(1.0)
    assert inf["pressure"][2] == 1.0


def test_energy_balance_with_assumed_values(rng):
    n = 3
    cat = catalogue(n)
    inf = observer.inferred(cat, [draw(retrieval.SECONDARY, np.log10(4e-4 / 1e-9))] * n)
    rngs = [np.random.default_rng(k) for k in range(n)]
    shape = (4, 6, 12, 24)
    cubes, made = observer.climates(cat, inf, rngs, shape, use_clero=True)
    assert not made["clero"].any()  # a fast rotator at 1 AU: the energy-balance model
    ts, _ = climate.surface_temperature(1.0, 0.3, 1.0, 4e-4, 1.0)  # Earth's assumptions
    np.testing.assert_allclose(made["ebm_ts"], ts, rtol=1e-6)
    summary = observer.summary(cubes, inf, made["ebm_ts"])
    # the cube's area mean is the energy balance's mean plus weather of ~1.5 K
    assert np.abs(summary["ts"] - ts).max() < 6.0
    assert (summary["liquid_area"] > 0.5).all()
    w = uniform_latitude_weights(12)
    np.testing.assert_allclose(summary["cloud_cover"],
                               (cubes[:, 2].max(axis=1).mean(axis=2) * w).sum(axis=1), rtol=1e-6)


def test_locked_m_dwarf_planet_gets_clero(rng):
    pytest.importorskip("clero")
    cat = catalogue(2, st_teff=3000.0, st_rad=0.2, st_mass=0.2, pl_insol=0.66,
                    pl_orbsmax=0.05, pl_orbper=12.0)
    inf = observer.inferred(cat, [draw(retrieval.SECONDARY, 5.6), draw(retrieval.FLAT)])
    rngs = [np.random.default_rng(k) for k in range(2)]
    cubes, made = observer.climates(cat, inf, rngs, (4, 8, 16, 32), use_clero=True)
    assert made["clero"].tolist() == [True, False]
    assert cubes[0, 0, 0].max() - cubes[0, 0, 0].min() > 30  # day-night contrast
    _, without = observer.climates(cat, inf, rngs, (4, 8, 16, 32), use_clero=False)
    assert not without["clero"].any()
