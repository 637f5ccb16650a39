"""Composition: abiotic false positives where the literature puts them, and a biosphere that
touches only its own gases."""

import numpy as np

from astrobio.data.synthetic import atmosphere

C = atmosphere.COLUMN


def variates(rng, n):
    names = ("ch4", "o2", "co", "nh3", "n2o", "h2o_gas", "co2", "serpentinization", "reduced",
             "bio_o2", "bio_ch4", "bio_n2o")
    return {name: rng.random(n) for name in names}


def abiotic(rng, n, **flags):
    base = dict(gaseous=np.zeros(n, bool), airless=np.zeros(n, bool),
                x_co2=np.full(n, 1e-3), vapour=np.full(n, 1e-2), liquid=np.ones(n, bool),
                volcanic=np.ones(n, bool), water_lost=np.zeros(n, bool), dry=np.zeros(n, bool),
                m_dwarf=np.zeros(n, bool), teq=np.full(n, 250.0))
    base |= {k: (np.full(n, v) if np.ndim(v) == 0 else v) for k, v in flags.items()}
    v = variates(rng, n)
    return atmosphere.abiotic(v, **base), v, base


def test_rocky_air_sums_to_one_and_airless_is_empty(rng):
    x, _, _ = abiotic(rng, 500)
    np.testing.assert_allclose(x.sum(axis=1), 1.0)
    assert (x[:, C["N2"]] > 0.9).all()
    empty, _, _ = abiotic(rng, 10, airless=True)
    assert not empty.any()


def test_abiotic_false_positives(rng):
    n = 4000
    x, _, _ = abiotic(rng, n)
    # serpentinization or reduced volcanism: CH4 up to 1e-4, never with life's levels of O2
    assert x[:, C["CH4"]].max() <= 1e-4 and x[:, C["O2"]].max() <= 1e-6
    reduced = x[:, C["CH4"]] > 1e-5  # only reduced volcanism gets there, and it brings CO
    assert reduced.any() and (x[reduced, C["CO"]] >= 1e-4).all()
    lost, _, _ = abiotic(rng, n, water_lost=True, m_dwarf=True, liquid=False)
    assert (lost[:, C["O2"]] >= 1e-3).all() and (lost[:, C["CH4"]] <= 1e-7).all()
    photolysis, _, _ = abiotic(rng, n, dry=True, m_dwarf=True, x_co2=0.5, liquid=False)
    assert (photolysis[:, C["O2"]] >= 1e-4).all() and (photolysis[:, C["CO"]] >= 1e-3).all()
    # ozone follows oxygen as sqrt(O2) (Segura et al. 2003): Earth's 0.21 gives 10^-6.3
    np.testing.assert_allclose(lost[:, C["O3"]], 10**-6.3 * np.sqrt(lost[:, C["O2"]] / 0.21),
                               rtol=1e-12)


def test_biosphere_changes_only_its_gases(rng):
    n = 3000
    x, v, base = abiotic(rng, n)
    expressed = rng.random(n) < 0.7
    oxygenic = rng.random(n) < 0.5
    life = atmosphere.with_biosphere(x, expressed, oxygenic, v, base["gaseous"],
                                     base["airless"])
    for gas in ("CO2", "H2O", "NH3"):
        np.testing.assert_array_equal(life[:, C[gas]], x[:, C[gas]], err_msg=gas)
    np.testing.assert_array_equal(life[~expressed], x[~expressed])  # unexpressed: no trace
    oxic, anoxic = expressed & oxygenic, expressed & ~oxygenic
    assert (life[oxic, C["O2"]] >= 10**-2.7).all() and (life[oxic, C["CH4"]] >= 1e-6).all()
    assert (life[anoxic, C["CH4"]] >= 1e-4).all()  # CH4 with CO2 ...
    np.testing.assert_allclose(life[anoxic, C["CO"]], 0.01 * x[anoxic, C["CO"]])  # ... no CO
    mu = atmosphere.mean_molecular_mass(life, base["gaseous"])
    assert ((mu > 27.5) & (mu < 30)).all()
