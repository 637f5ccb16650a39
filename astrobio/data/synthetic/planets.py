"""Orbits, planets and their atmospheres (every function is vectorised over planets).

Orbits: a is log-uniform across the conservative habitable zone of Kopparapu et al. (2014)
(runaway greenhouse to maximum greenhouse, 1 Earth mass) for 65 % of planets and across a
wider span (half the recent-Venus distance to 1.5 times the early-Mars distance) for the rest,
so most planets lie in or near the zone and both edges are well sampled; e is Rayleigh with
sigma 0.05 (small multi-planet systems, Van Eylen et al. 2019), capped at 0.6; insolation is
orbit-averaged. A planet is tidally locked inside 0.4 AU (M*/Msun)^(1/3) (the 4.5 Gyr locking
distance of Kasting et al. 1993, scaled).

Planets: mass log-uniform over 0.1–12 Earth masses; radius from Chen & Kipping (2017) with
their fractional scatter (4.03 % Terran, 14.6 % Neptunian); a planet is gaseous (an H2/He
envelope) above a transition radius drawn uniformly across the radius valley, 1.5–2.0 Earth
radii (Fulton et al. 2017): whether a planet there kept its envelope depends on a history
(photoevaporation, core-powered mass loss) that its mass and radius do not settle.

Atmospheres of rocky planets: kept when the planet lies inside the "cosmic shoreline" of Zahnle
& Catling (2017), S < 25 (v_esc / v_esc,Earth)^4 (a third of that around M dwarfs, whose XUV
history strips more), with 0.35 dex of scatter in the comparison; surface pressure
log10(P / bar) = 0.6 log10(M / Me) + N(0, 0.45). Below 0.01 bar the planet is airless.
Hidden per planet: CO2 (set by the carbonate-silicate thermostat where volcanism and water run
it, `climate.weathering_co2`, else log-uniform 10^-4.5–0.95 of the air), water inventory in Earth
oceans (log-uniform 0.01–3; w = 1.1 h / (h + 0.1) of it reaches the atmosphere, ocean
fraction 0.71 h^0.4), Bond albedo, surface relative humidity, cloud deck height.
"""

from __future__ import annotations

import numpy as np

from astrobio import physics
from astrobio.data.synthetic.rows import row_matmul

GASES = ("N2", "CO2", "H2O", "CH4", "O2", "O3", "NH3", "CO", "N2O")
MOLAR_MASS = np.array([28.014, 44.01, 18.015, 16.043, 31.999, 47.998, 17.031, 28.010, 44.013])
H2_HE_MOLAR_MASS = 2.3
MASS_RANGE_EARTH = (0.1, 12.0)
WIDE_FRACTION = 0.35
WIDE_INNER, WIDE_OUTER = 0.5, 1.5
ECCENTRICITY_SIGMA = 0.05
ECCENTRICITY_MAX = 0.6
LOCKING_AU = 0.4
AIRLESS_BAR = 0.01
MAX_PRESSURE_BAR = 300.0
M_DWARF_TEFF_K = 3900.0


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
        "insolation": physics.insolation(star["luminosity"], a, e),
        "locked": a < LOCKING_AU * np.cbrt(star["mass"]),
    }


def draw_bodies(u_mass, z_radius, u_transition) -> dict[str, np.ndarray]:
    low, high = MASS_RANGE_EARTH
    mass = low * (high / low) ** u_mass
    scatter_dex = np.where(mass < 2.04, np.log10(1.0403), np.log10(1.146))
    radius = physics.planet_radius_from_mass(mass) * 10.0 ** (scatter_dex * z_radius)
    return {"mass": mass, "radius": radius, "gaseous": radius > 1.5 + 0.5 * u_transition}


def surface_pressure(gaseous, body: dict, orbit: dict, star: dict, z_escape,
                     z_pressure) -> np.ndarray:
    """Surface pressure in bar; 0 for airless rocks, 1 (the reference level) for the planets
    `gaseous` marks."""
    v_escape = np.sqrt(body["mass"] / body["radius"])
    shoreline = 25.0 * v_escape**4 * np.where(star["teff"] < M_DWARF_TEFF_K, 1.0 / 3.0, 1.0)
    kept = np.log10(orbit["insolation"] / shoreline) + 0.35 * z_escape < 0.0
    pressure = np.minimum(10.0 ** (0.6 * np.log10(body["mass"]) + 0.45 * z_pressure),
                          MAX_PRESSURE_BAR)
    pressure = np.where(kept & (pressure >= AIRLESS_BAR), pressure, 0.0)
    return np.where(gaseous, 1.0, pressure)


def log_uniform(u, low, high):
    return 10.0 ** (low + (high - low) * u)


def composition(u: dict, gaseous, airless, co2, water_lost, water_vapour, life, oxygenic,
                teq) -> np.ndarray:
    """Volume mixing ratios [B, len(GASES)] (background N2 for rocky planets, H2/He for gas
    planets, whose N2 slot is a trace; all zero for airless bodies).

    Life (`life`, with `oxygenic` biospheres) raises O2 (oxygenic photosynthesis), O3 (its
    photochemical product, ~ sqrt(O2), Segura et al. 2003), CH4 (methanogens), N2O
    (denitrification) and lowers CO (consumed). Abiotic O2 builds up where `water_lost`, on
    runaway planets of M dwarfs that lost their water to escape (Luger & Barnes 2015), a
    false positive without CH4."""
    b = len(gaseous)
    x = np.zeros((b, len(GASES)))
    col = {g: i for i, g in enumerate(GASES)}
    x[:, col["CO2"]] = co2
    x[:, col["H2O"]] = water_vapour
    methane = np.where(life, log_uniform(u["ch4"], -5.0, -2.7), log_uniform(u["ch4"], -9.0, -5.5))
    oxygen = log_uniform(u["o2"], -9.0, -6.0)
    oxygen = np.where(water_lost, log_uniform(u["o2"], -3.0, -0.7), oxygen)
    oxygen = np.where(life & oxygenic, log_uniform(u["o2"], -2.0, -0.7), oxygen)
    x[:, col["CH4"]] = np.where(life & oxygenic, methane * 0.1, methane)
    x[:, col["O2"]] = oxygen
    x[:, col["O3"]] = 10.0**-6.3 * np.sqrt(oxygen / 0.21)
    x[:, col["NH3"]] = log_uniform(u["nh3"], -10.0, -7.0)
    x[:, col["CO"]] = log_uniform(u["co"], -7.0, -4.0) * np.where(life, 0.1, 1.0)
    x[:, col["N2O"]] = np.where(life & oxygenic, log_uniform(u["n2o"], -7.0, -6.0),
                                log_uniform(u["n2o"], -10.0, -8.5))
    # gas giants' envelopes: equilibrium chemistry, CH4 below ~800 K, CO above
    cool = teq < 800.0
    giant = np.zeros_like(x)
    giant[:, col["N2"]] = 1e-4
    giant[:, col["H2O"]] = log_uniform(u["h2o_gas"], -4.0, -2.0)
    giant[:, col["CH4"]] = np.where(cool, log_uniform(u["ch4"], -4.0, -2.5),
                                    log_uniform(u["ch4"], -6.0, -4.0))
    giant[:, col["CO"]] = np.where(cool, log_uniform(u["co"], -6.0, -4.0),
                                   log_uniform(u["co"], -4.0, -2.5))
    giant[:, col["NH3"]] = log_uniform(u["nh3"], -6.0, -4.5)
    giant[:, col["CO2"]] = log_uniform(u["co2"], -6.0, -4.0)
    x = np.where(gaseous[:, None], giant, x)
    trace = x.sum(axis=1) - x[:, col["N2"]]
    scale = np.where(gaseous | (trace <= 0.99), 1.0, 0.99 / np.maximum(trace, 1e-30))
    x = x * scale[:, None]
    rocky = ~gaseous
    x[rocky, col["N2"]] = 1.0 - (x[rocky].sum(axis=1) - x[rocky, col["N2"]])
    return np.where(airless[:, None], 0.0, x)


def mean_molecular_mass(x: np.ndarray, gaseous) -> np.ndarray:
    """mu in g/mol: the mixing-ratio weighted mass, with the H2/He background of gas planets."""
    traced = row_matmul(x, MOLAR_MASS)
    background = np.clip(1.0 - x.sum(axis=1), 0.0, 1.0) * H2_HE_MOLAR_MASS
    return np.where(gaseous, traced + background, np.maximum(traced, 1.0))
