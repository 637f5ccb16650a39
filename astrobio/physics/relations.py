"""Stellar and planetary scaling relations (numpy arrays or torch tensors in, same type out).

Stars: Stefan–Boltzmann, L = R^2 (Teff / 5772 K)^4 in solar units (IAU 2015 nominal Sun), and
main-sequence power laws in mass: luminosity from the piecewise fit quoted by Duric (2004,
Advanced Astrophysics, sec. 4.3) -- 0.23 M^2.3 below 0.43 Msun, M^4 to 2 Msun, 1.4 M^3.5 to
55 Msun, 32000 M above (jumps of under 4 % at the joins) -- and radius from the textbook
power laws R = M^0.8 (M < 1 Msun), M^0.57 (M >= 1 Msun). These are zero-age-ish averages for
drawing plausible synthetic stars, not stellar models.

Planets: the mean relation of Chen & Kipping (2017, ApJ 834, 17, "Forecaster"), a continuous
broken power law R = C M^S in Earth units with C = 10^0.00346 and S = 0.279 (Terran, below
2.04 Me), 0.589 (Neptunian, to 0.414 Mjup), -0.044 (Jovian, to 0.080 Msun), 0.881 (stellar);
each segment's constant follows from continuity. The inverse is single-valued only below the
Neptunian/Jovian transition (about 14.3 Re); larger radii raise `DataError`.
"""

from __future__ import annotations

import math

from astrobio.physics._arrays import as_arrays, require, require_positive
from astrobio.physics.constants import (
    EARTH_MASSES_PER_JUPITER_MASS,
    EARTH_MASSES_PER_SOLAR_MASS,
    SOLAR_TEFF_K,
)


def stellar_luminosity(teff, radius):
    """L = R^2 (Teff / 5772)^4, in Lsun for R in Rsun."""
    lib, (teff, radius) = as_arrays(teff, radius)
    require_positive(teff, "teff")
    require_positive(radius, "stellar_radius")
    return lib.finish(radius * radius * (teff / SOLAR_TEFF_K) ** 4)


def stellar_radius(teff, luminosity):
    """R = sqrt(L) (5772 / Teff)^2, in Rsun for L in Lsun."""
    lib, (teff, luminosity) = as_arrays(teff, luminosity)
    require_positive(teff, "teff")
    require_positive(luminosity, "luminosity")
    return lib.finish(lib.sqrt(luminosity) * (SOLAR_TEFF_K / teff) ** 2)


def stellar_teff(luminosity, radius):
    """Teff = 5772 (L / R^2)^(1/4), in K."""
    lib, (luminosity, radius) = as_arrays(luminosity, radius)
    require_positive(luminosity, "luminosity")
    require_positive(radius, "stellar_radius")
    return lib.finish(SOLAR_TEFF_K * (luminosity / (radius * radius)) ** 0.25)


def main_sequence_luminosity(mass):
    """Main-sequence luminosity (Lsun) of a star of `mass` (Msun); Duric (2004) power laws."""
    lib, (mass,) = as_arrays(mass)
    require_positive(mass, "stellar_mass")
    luminosity = lib.where(mass < 0.43, 0.23 * mass**2.3, mass**4)
    luminosity = lib.where(mass < 2.0, luminosity, 1.4 * mass**3.5)
    luminosity = lib.where(mass < 55.0, luminosity, 32000.0 * mass)
    return lib.finish(luminosity)


def main_sequence_radius(mass):
    """Main-sequence radius (Rsun) of a star of `mass` (Msun): M^0.8 below 1 Msun, M^0.57
    above."""
    lib, (mass,) = as_arrays(mass)
    require_positive(mass, "stellar_mass")
    return lib.finish(lib.where(mass < 1.0, mass**0.8, mass**0.57))


def main_sequence_teff(mass):
    """Main-sequence Teff (K) from the luminosity and radius relations via Stefan–Boltzmann."""
    return stellar_teff(main_sequence_luminosity(mass), main_sequence_radius(mass))


# Chen & Kipping (2017) in log10 space: segment k starts at LOG_MASS_BREAKS[k - 1].
LOG_C = 0.00346
SLOPES = (0.279, 0.589, -0.044, 0.881)
LOG_MASS_BREAKS = (
    math.log10(2.04),
    math.log10(0.414 * EARTH_MASSES_PER_JUPITER_MASS),
    math.log10(0.080 * EARTH_MASSES_PER_SOLAR_MASS),
)


def _log_radius_at_breaks() -> tuple[float, ...]:
    log_radius = [LOG_C + SLOPES[0] * LOG_MASS_BREAKS[0]]
    for k in (1, 2):
        span = LOG_MASS_BREAKS[k] - LOG_MASS_BREAKS[k - 1]
        log_radius.append(log_radius[-1] + SLOPES[k] * span)
    return tuple(log_radius)


LOG_RADIUS_BREAKS = _log_radius_at_breaks()
MAX_INVERTIBLE_RADIUS = 10.0 ** LOG_RADIUS_BREAKS[1]  # Earth radii, at 0.414 Mjup


def planet_radius_from_mass(mass):
    """Mean planet radius (Earth radii) for `mass` (Earth masses), Chen & Kipping (2017)."""
    lib, (mass,) = as_arrays(mass)
    require_positive(mass, "planet_mass")
    x = lib.log10(mass)
    log_radius = LOG_C + SLOPES[0] * x
    for k in (1, 2, 3):
        segment = LOG_RADIUS_BREAKS[k - 1] + SLOPES[k] * (x - LOG_MASS_BREAKS[k - 1])
        log_radius = lib.where(x < LOG_MASS_BREAKS[k - 1], log_radius, segment)
    return lib.finish(10.0**log_radius)


def planet_mass_from_radius(radius):
    """Mean planet mass (Earth masses) for `radius` (Earth radii), inverting Chen & Kipping's
    Terran and Neptunian segments; radii above `MAX_INVERTIBLE_RADIUS` raise `DataError`
    (the Jovian segment is flat, so radius does not determine mass there)."""
    lib, (radius,) = as_arrays(radius)
    require_positive(radius, "planet_radius")
    require(radius <= MAX_INVERTIBLE_RADIUS, radius, "planet_radius",
            f"at most {MAX_INVERTIBLE_RADIUS:.2f} Earth radii (giant planets' radii do not "
            f"determine their mass)")
    y = lib.log10(radius)
    terran = (y - LOG_C) / SLOPES[0]
    neptunian = LOG_MASS_BREAKS[0] + (y - LOG_RADIUS_BREAKS[0]) / SLOPES[1]
    return lib.finish(10.0 ** lib.where(y < LOG_RADIUS_BREAKS[0], terran, neptunian))
