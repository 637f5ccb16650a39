"""Stellar flux on an orbit and the planet's equilibrium temperature.

Units: luminosity in Lsun (linear), stellar radius in Rsun, Teff in K, semi-major axis in AU,
period in days, stellar mass in Msun, insolation in Earth units (1 = 1361 W/m^2).

Eccentric orbits use the time-averaged flux, <S> = L / (a^2 sqrt(1 - e^2)). The equilibrium
temperature assumes full heat redistribution over the sphere (the factor 1/4 of a fast rotator
with an atmosphere; a tidally locked bare rock's dayside is 2^(1/4) hotter) and an orbit-averaged
flux, so it carries the same (1 - e^2)^(-1/8) factor.
"""

from __future__ import annotations

import math

from astrobio.physics._arrays import as_arrays, require, require_positive
from astrobio.physics.constants import (
    AU_M,
    SECONDS_PER_DAY,
    SIGMA_SB,
    SOLAR_CONSTANT_W_M2,
    SOLAR_GM_M3_S2,
    SOLAR_RADIUS_M,
)


def _require_eccentricity(e) -> None:
    require((e >= 0) & (e < 1), e, "eccentricity", "in [0, 1)")


def _require_albedo(albedo) -> None:
    require((albedo >= 0) & (albedo < 1), albedo, "albedo", "in [0, 1)")


def insolation(luminosity, semi_major_axis, eccentricity=0.0):
    """Orbit-averaged stellar flux in Earth units: S = L / (a^2 sqrt(1 - e^2))."""
    lib, (lum, a, e) = as_arrays(luminosity, semi_major_axis, eccentricity)
    require_positive(lum, "luminosity")
    require_positive(a, "semi_major_axis")
    _require_eccentricity(e)
    return lib.finish(lum / (a * a * lib.sqrt(1.0 - e * e)))


def equilibrium_temperature(teff, stellar_radius, semi_major_axis, albedo=0.3,
                            eccentricity=0.0, check: bool = True):
    """Teq = Teff sqrt(R* / 2a) (1 - A)^(1/4) (1 - e^2)^(-1/8), in K (Earth: 255 K).

    Full redistribution, orbit-averaged flux (module docstring). R* in Rsun, a in AU.
    `check=False` skips the range checks, which read the values (a device sync for GPU
    tensors), for callers that have masked invalid inputs themselves.
    """
    lib, (teff, radius, a, albedo, e) = as_arrays(teff, stellar_radius, semi_major_axis,
                                                  albedo, eccentricity)
    if check:
        require_positive(teff, "teff")
        require_positive(radius, "stellar_radius")
        require_positive(a, "semi_major_axis")
        _require_albedo(albedo)
        _require_eccentricity(e)
    ratio = radius * (SOLAR_RADIUS_M / AU_M) / (2.0 * a)
    return lib.finish(teff * lib.sqrt(ratio) * (1.0 - albedo) ** 0.25
                      * (1.0 - e * e) ** -0.125)


def equilibrium_temperature_from_insolation(insolation, albedo=0.3):
    """Teq = (S S_earth (1 - A) / 4 sigma)^(1/4) for S in Earth units, in K (full
    redistribution; S already orbit-averaged). Agrees with `equilibrium_temperature` for the
    IAU Sun (5772 K, 1 Rsun, 1 AU) to 0.01 K."""
    lib, (flux, albedo) = as_arrays(insolation, albedo)
    require_positive(flux, "insolation")
    _require_albedo(albedo)
    return lib.finish((flux * SOLAR_CONSTANT_W_M2 * (1.0 - albedo) / (4.0 * SIGMA_SB)) ** 0.25)


def semi_major_axis_from_period(period_days, stellar_mass):
    """Kepler's third law, planet mass neglected: a^3 = G M* P^2 / 4 pi^2, a in AU for P in
    days and M* in Msun (Earth: 365.256 d, 1 Msun -> 1.0000 AU)."""
    lib, (period, mass) = as_arrays(period_days, stellar_mass)
    require_positive(period, "period")
    require_positive(mass, "stellar_mass")
    return lib.finish((_KEPLER * mass * period * period) ** (1.0 / 3.0))


def orbital_period(semi_major_axis, stellar_mass):
    """Kepler's third law solved for the period in days (a in AU, M* in Msun; the inverse of
    `semi_major_axis_from_period`)."""
    lib, (a, mass) = as_arrays(semi_major_axis, stellar_mass)
    require_positive(a, "semi_major_axis")
    require_positive(mass, "stellar_mass")
    return lib.finish(lib.sqrt(a * a * a / (_KEPLER * mass)))


def transit_duration(period_days, stellar_radius, semi_major_axis, radius_ratio=0.0,
                     impact_parameter=0.0):
    """First-to-fourth-contact duration in hours of a circular orbit seen edge-on enough to
    transit (Winn 2010, "Transits and Occultations", eq. 14 with sin i = 1):
    T = (P / pi) arcsin((R* / a) sqrt((1 + k)^2 - b^2)), k = Rp / R*, b the impact parameter
    (Earth across the Sun, b = 0: 13.0 h). R* in Rsun, a in AU."""
    lib, (period, radius, a, k, b) = as_arrays(period_days, stellar_radius, semi_major_axis,
                                               radius_ratio, impact_parameter)
    require_positive(period, "period")
    require_positive(radius, "stellar_radius")
    require_positive(a, "semi_major_axis")
    require((b >= 0) & (b < 1 + k), b, "impact_parameter", "in [0, 1 + Rp/R*)")
    chord = radius * (SOLAR_RADIUS_M / AU_M) / a * lib.sqrt((1.0 + k) ** 2 - b * b)
    return lib.finish(24.0 * period / math.pi * lib.arcsin(lib.clip(chord, 0.0, 1.0)))


# AU^3 per (Msun day^2), so float32 tensors stay far from overflow.
_KEPLER = SOLAR_GM_M3_S2 * SECONDS_PER_DAY**2 / (4.0 * math.pi**2 * AU_M**3)

