"""Orbits, bodies and their volatile inventories (every function is vectorised over planets).

Orbits: a is log-uniform across the conservative habitable zone of Kopparapu et al. (2014)
(runaway greenhouse to maximum greenhouse, 1 Earth mass) for 65 % of planets and across a
wider span (half the recent-Venus distance to 1.5 times the early-Mars distance) for the rest;
e is Rayleigh with sigma 0.05 (small multi-planet systems, Van Eylen et al. 2019), capped at
0.6; insolation is orbit-averaged. A planet is tidally locked inside 0.4 AU (M*/Msun)^(1/3)
(the 4.5 Gyr locking distance of Kasting et al. 1993, scaled).

Bodies, a rocky core and perhaps an H2/He envelope:
- core mass log-uniform 0.1-12 Me; iron core mass fraction N(0.26, 0.07) within 0-0.4 (Zeng
  et al. 2016's fit to rocky exoplanets); core radius from Zeng's mass-radius relation, so a
  rocky planet's density follows its composition;
- the radius valley as photoevaporation carves it (Owen & Wu 2017): a core keeps its envelope
  only above a threshold mass that grows with insolation, M_thr = 8 Me (S / 100)^0.25 with
  0.15 dex of scatter (age, XUV history). With R_core ~ M^(1/3.7) the largest stripped cores
  grow as S^0.068, i.e. P^-0.09 around one star: the slope Van Eylen et al. (2018) measured
  (-0.09 +0.02/-0.04), and at S ~ 100 the gap sits between 1.75 and 2.4 Re (Fulton et al.
  2017). Surviving envelopes hold 1-10 % of the mass (log-uniform) and add the Lopez &
  Fortney (2014) thickness; no envelope thinner than ~0.4 Re survives, so a gap separates
  bare cores from sub-Neptunes and moves outward with insolation (`valley_radius`).

Atmospheres of rocky planets: kept inside the "cosmic shoreline" of Zahnle & Catling (2017),
S < 25 (v_esc / v_esc,Earth)^4 (a third of that around M dwarfs, whose XUV history strips
more), with 0.35 dex of scatter; surface pressure log10(P / bar) = 0.6 log10(M / Me) +
N(0, 0.45), airless below 0.01 bar. Hidden per planet: water inventory in Earth oceans
(log-uniform 0.01-3; w = 1.1 h / (h + 0.1) of it reaches the atmosphere, ocean fraction
0.71 h^0.4), Bond albedo N(0.3, 0.08), surface relative humidity.
"""

from __future__ import annotations

import numpy as np

from astrobio import physics
from astrobio.data.synthetic.stars import M_DWARF_TEFF_K

CORE_MASS_RANGE_EARTH = (0.1, 12.0)
CORE_MASS_FRACTION = (0.26, 0.07, 0.0, 0.4)  # mean, sd, lowest, highest
VALLEY_MASS_EARTH, VALLEY_FLUX, VALLEY_SLOPE, VALLEY_SCATTER_DEX = 8.0, 100.0, 0.25, 0.15
ENVELOPE_FRACTION = (0.01, 0.1)
WIDE_FRACTION = 0.35
WIDE_INNER, WIDE_OUTER = 0.5, 1.5
ECCENTRICITY_SIGMA = 0.05
ECCENTRICITY_MAX = 0.6
LOCKING_AU = 0.4
AIRLESS_BAR = 0.01
MAX_PRESSURE_BAR = 300.0
SHORELINE_DEX = 0.35
PRESSURE_DEX = 0.45
WATER_OCEANS = (0.01, 3.0)


def log_uniform(u, low, high):
    """low..high, log-uniform, from uniform variates `u`."""
    return low * (high / low) ** np.asarray(u)


def draw_orbits(star: dict, u_orbit, u_span, u_eccentricity) -> dict[str, np.ndarray]:
    zone = physics.habitable_zone(star["teff"], star["luminosity"], out_of_range="clamp")
    wide = u_span < WIDE_FRACTION
    inner = np.where(wide, WIDE_INNER * zone["recent_venus"], zone["runaway_greenhouse"])
    outer = np.where(wide, WIDE_OUTER * zone["early_mars"], zone["maximum_greenhouse"])
    a = inner * (outer / inner) ** u_orbit
    e = np.minimum(ECCENTRICITY_SIGMA * np.sqrt(-2.0 * np.log1p(-u_eccentricity)),
                   ECCENTRICITY_MAX)
    return {
        "semi_major_axis": a,
        "eccentricity": e,
        "period": physics.orbital_period(a, star["mass"]),
        "insolation": physics.insolation(star["luminosity"], a, e),
        "locked": is_locked(a, star["mass"]),
    }


def is_locked(semi_major_axis, stellar_mass):
    return np.asarray(semi_major_axis) < LOCKING_AU * np.cbrt(stellar_mass)


def valley_mass(insolation, z_scatter=0.0):
    """The core mass (Me) above which an envelope survives at `insolation` (module docstring)."""
    return (VALLEY_MASS_EARTH * (np.asarray(insolation) / VALLEY_FLUX) ** VALLEY_SLOPE
            * 10.0 ** (VALLEY_SCATTER_DEX * np.asarray(z_scatter)))


def valley_radius(insolation):
    """The centre of the radius gap (Re) at `insolation`: the geometric mean of the largest
    bare core (the median threshold mass, mean composition) and the smallest sub-Neptune
    (that core under the thinnest surviving envelope)."""
    mass = valley_mass(insolation)
    core = physics.rocky_radius(mass, CORE_MASS_FRACTION[0])
    thinnest = ENVELOPE_FRACTION[0]
    envelope = physics.envelope_thickness(mass / (1.0 - thinnest), thinnest, insolation)
    return np.sqrt(core * (core + envelope))


def draw_bodies(u_core_mass, z_core_fraction, u_envelope, z_valley,
                insolation) -> dict[str, np.ndarray]:
    core_mass = log_uniform(u_core_mass, *CORE_MASS_RANGE_EARTH)
    mean, sd, low, high = CORE_MASS_FRACTION
    core_fraction = np.clip(mean + sd * z_core_fraction, low, high)
    gaseous = core_mass >= valley_mass(insolation, z_valley)
    envelope = np.where(gaseous, log_uniform(u_envelope, *ENVELOPE_FRACTION), 0.0)
    mass = core_mass / (1.0 - envelope)
    core_radius = physics.rocky_radius(core_mass, core_fraction)
    thickness = physics.envelope_thickness(mass, np.maximum(envelope, ENVELOPE_FRACTION[0]),
                                           insolation)
    return {"mass": mass, "radius": core_radius + np.where(gaseous, thickness, 0.0),
            "core_mass": core_mass, "core_radius": core_radius,
            "core_mass_fraction": core_fraction, "envelope_fraction": envelope,
            "gaseous": gaseous}


def shoreline_flux(mass, radius, teff):
    """The cosmic shoreline's insolation (Earth units) for a planet and its star."""
    v_escape = np.sqrt(np.asarray(mass) / np.asarray(radius))
    return 25.0 * v_escape**4 * np.where(np.asarray(teff) < M_DWARF_TEFF_K, 1.0 / 3.0, 1.0)


def surface_pressure(gaseous, body: dict, orbit: dict, star: dict, z_escape,
                     z_pressure) -> np.ndarray:
    """Surface pressure in bar; 0 for airless rocks, 1 (the reference level) for the planets
    `gaseous` marks."""
    shoreline = shoreline_flux(body["mass"], body["radius"], star["teff"])
    kept = np.log10(orbit["insolation"] / shoreline) + SHORELINE_DEX * z_escape < 0.0
    pressure = np.minimum(10.0 ** (0.6 * np.log10(body["mass"]) + PRESSURE_DEX * z_pressure),
                          MAX_PRESSURE_BAR)
    pressure = np.where(kept & (pressure >= AIRLESS_BAR), pressure, 0.0)
    return np.where(gaseous, 1.0, pressure)


def volatiles(rocky_air, gaseous, airless, u_water, z_albedo) -> dict[str, np.ndarray]:
    """Water inventory (oceans), the share reaching the air, ocean fraction and Bond albedo."""
    water = log_uniform(u_water, *WATER_OCEANS)
    return {
        "water": water,
        "available": np.where(rocky_air, 1.1 * water / (water + 0.1), 0.0),
        "ocean": np.where(rocky_air, np.minimum(0.71 * water**0.4, 0.97), 0.0),
        "albedo": np.select([gaseous, airless],
                            [np.clip(0.35 + 0.08 * z_albedo, 0.1, 0.7),
                             np.clip(0.12 + 0.04 * z_albedo, 0.03, 0.3)],
                            np.clip(0.3 + 0.08 * z_albedo, 0.05, 0.7)),
    }

