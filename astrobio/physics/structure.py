"""Planet interiors: the radius of a rocky planet of a given composition, and the radius an
H2/He envelope adds on top of it.

Rocky planets, Zeng, Sasselov & Jacobsen (2016, ApJ 819, 127), a two-layer (iron core,
silicate mantle) fit scaled from Earth's seismic model PREM:

    R / Re = (1.07 - 0.21 CMF) (M / Me)^(1/3.7),

fitted for 1-8 Me and core mass fractions 0-0.4 (Earth, CMF 0.325: 1.00 Re); known rocky
exoplanets give CMF 0.26 +- 0.07. Below 1 Me it extrapolates the same power law.

Envelopes, Lopez & Fortney (2014, ApJ 792, 1, eq. 3), for solar-metallicity H2/He:

    R_env / Re = 2.06 (M / Me)^-0.21 (f_env / 0.05)^0.59 (S / S_earth)^0.044 (age / 5 Gyr)^-0.11,

the envelope's thickness above the rocky core (R = R_core + R_env), f_env the envelope's
share of the planet's mass, M the planet's total mass, fitted for 1-20 Me, f_env 0.1-20 %,
S 0.1-1000 S_earth. Masses in Earth masses, radii in Earth radii, insolation in Earth units.
"""

from __future__ import annotations

from astrobio.physics._arrays import as_arrays, require, require_positive


def rocky_radius(mass, core_mass_fraction):
    """Radius (Re) of a rocky planet of `mass` (Me) and iron core mass fraction (Zeng 2016)."""
    lib, (mass, cmf) = as_arrays(mass, core_mass_fraction)
    require_positive(mass, "planet_mass")
    require((cmf >= 0) & (cmf <= 1), cmf, "core_mass_fraction", "in [0, 1]")
    return lib.finish((1.07 - 0.21 * cmf) * mass ** (1.0 / 3.7))


def envelope_thickness(mass, envelope_fraction, insolation, age_gyr=5.0):
    """Thickness (Re) of an H2/He envelope holding `envelope_fraction` of a planet of `mass`
    (Me) at `insolation` (S_earth) and `age_gyr` (Lopez & Fortney 2014)."""
    lib, (mass, f_env, flux, age) = as_arrays(mass, envelope_fraction, insolation, age_gyr)
    require_positive(mass, "planet_mass")
    require_positive(f_env, "envelope_fraction")
    require_positive(flux, "insolation")
    require_positive(age, "age")
    return lib.finish(2.06 * mass**-0.21 * (f_env / 0.05) ** 0.59 * flux**0.044
                      * (age / 5.0) ** -0.11)
