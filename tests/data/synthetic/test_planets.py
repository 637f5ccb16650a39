"""Orbits and bodies: the radius valley is a gap that moves with insolation as Van Eylen et al.
(2018) measured, and rocky densities follow Zeng et al. (2016)."""

import numpy as np
import pytest

from astrobio import physics
from astrobio.data.synthetic import planets, stars


def bodies(rng, n, insolation):
    return planets.draw_bodies(rng.random(n), rng.standard_normal(n), rng.random(n),
                               rng.standard_normal(n), insolation)


def test_radius_valley_is_a_gap(rng):
    n = 60000
    flux = 10 ** rng.uniform(-1, 0.5, n)
    b = bodies(rng, n, flux)
    offset = np.log10(b["radius"] / planets.valley_radius(flux))
    counts, _ = np.histogram(offset, bins=np.linspace(-0.3, 0.3, 13))
    centre = counts[5:7].mean()  # the two bins around the valley's centre
    assert centre < 0.1 * min(counts[:3].mean(), counts[-3:].mean()), counts
    # no surviving envelope is thinner than ~0.4 Re (1 %, 12 Me, 0.1 S_earth)
    assert (b["radius"][b["gaseous"]] > b["core_radius"][b["gaseous"]] + 0.4).all()


def test_valley_moves_with_insolation_like_van_eylen(rng):
    # around one star S ~ P^(-4/3), so R_valley ~ P^gamma with gamma = -4/3 dlogR/dlogS
    flux = np.array([1.0, 10.0, 100.0])
    radius = planets.valley_radius(flux)
    slope = np.polyfit(np.log10(flux), np.log10(radius), 1)[0]
    assert -4 / 3 * slope == pytest.approx(-0.09, abs=0.02)  # Van Eylen: -0.09 +0.02/-0.04
    assert 1.75 <= radius[2] <= 2.2  # the Kepler valley near 100 S_earth (Fulton et al. 2017)
    n = 40000
    for low, high in ((0.3, 1.0), (30.0, 100.0)):
        s = np.full(n, np.sqrt(low * high))
        b = bodies(rng, n, s)
        rocky_top = np.quantile(b["radius"][~b["gaseous"]], 0.99)
        assert rocky_top < planets.valley_radius(s[0]) < b["radius"][b["gaseous"]].min()


def test_rocky_density_follows_composition(rng):
    n = 20000
    b = bodies(rng, n, np.ones(n))
    rocky = ~b["gaseous"]
    cmf = b["core_mass_fraction"][rocky]
    assert ((cmf >= 0) & (cmf <= 0.4)).all() and np.mean(cmf) == pytest.approx(0.26, abs=0.01)
    np.testing.assert_allclose(b["radius"][rocky],
                               physics.rocky_radius(b["mass"][rocky], cmf))
    big = rocky & (b["radius"] > 1.2)
    density = b["mass"][big] / b["radius"][big] ** 3  # Earth units
    assert np.median(density) > 1.0  # compressed rock is denser than Earth, never 0.74


def test_orbits_and_pressure(rng):
    n = 5000
    star = stars.draw_stars(*rng.random((2, n)), *rng.standard_normal((2, n)))
    orbit = planets.draw_orbits(star, *rng.random((3, n)))
    np.testing.assert_allclose(orbit["period"],
                               physics.orbital_period(orbit["semi_major_axis"], star["mass"]))
    np.testing.assert_array_equal(orbit["locked"], orbit["semi_major_axis"]
                                  < 0.4 * np.cbrt(star["mass"]))
    b = bodies(rng, n, orbit["insolation"])
    p = planets.surface_pressure(b["gaseous"], b, orbit, star, rng.standard_normal(n),
                                 rng.standard_normal(n))
    assert (p[b["gaseous"]] == 1.0).all()
    rocky = p[~b["gaseous"]]
    assert ((rocky == 0) | ((rocky >= 0.01) & (rocky <= 300))).all()
