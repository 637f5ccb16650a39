"""Host stars: the population mixture, Stefan-Boltzmann, a magnitude-limited J distribution
and Rackham et al.'s covering fractions."""

import numpy as np
import pytest

from astrobio import physics
from astrobio.data.synthetic import stars


def test_population_and_stefan_boltzmann(rng):
    n = 20000
    s = stars.draw_stars(*rng.random((2, n)), *rng.standard_normal((2, n)))
    np.testing.assert_allclose(s["luminosity"], s["radius"] ** 2 * (s["teff"] / 5772) ** 4)
    assert ((s["teff"] >= 2600) & (s["teff"] <= 7200)).all()
    shares = [(s["mass"] < 0.6).mean(), ((s["mass"] >= 0.6) & (s["mass"] < 0.9)).mean()]
    assert shares == pytest.approx([0.45, 0.30], abs=0.015)


def test_magnitude_limited_distances(rng):
    n = 40000
    teff, lum = np.full(n, 3300.0), np.full(n, 0.01)
    d = stars.draw_distances(teff, lum, rng.random(n))
    assert d["j_mag"].max() <= stars.J_LIMIT + 1e-9
    absolute = physics.absolute_j_magnitude(3300.0, 0.01)
    np.testing.assert_allclose(d["j_mag"], absolute + 5 * np.log10(d["distance_pc"] / 10))
    # uniform in volume: N(<J) grows as 10^(0.6 J) (Euclidean counts)
    faint = (d["j_mag"] > stars.J_LIMIT - 1).mean()
    assert faint == pytest.approx(1 - 10**-0.6, abs=0.01)


def test_covering_fractions_by_class(rng):
    teff = np.array([3000.0] * 500 + [4500.0] * 500 + [5800.0] * 500)
    a = stars.draw_activity(teff, rng.random(1500), rng.random(1500))
    for kind, sl in (("M", slice(0, 500)), ("K", slice(500, 1000)), ("GF", slice(1000, None))):
        (low, high), facula = stars.ACTIVITY[kind]
        assert (a["spot_fraction"][sl] >= low).all() and (a["spot_fraction"][sl] <= high).all()
        assert (a["facula_fraction"][sl] <= facula).all()
    # TRAPPIST-1's 8 % spots lie inside the M-dwarf range (Rackham et al. 2018)
    assert stars.ACTIVITY["M"][0][0] < 0.08 < stars.ACTIVITY["M"][0][1]
    assert stars.spectral_type(5772) == "G" and stars.spectral_type(9000) == "A"
    assert list(stars.host_class([3000, 4500, 6000])) == ["M", "K", "GF"]
