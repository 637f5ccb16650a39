"""Planetary physics: habitable zone, insolation, equilibrium temperature, ESI, scaling laws.

Every function takes numpy arrays, Python scalars or torch tensors (broadcasting like numpy) and
returns the same kind: float64 numpy for numpy/scalar input, tensors of the inputs' floating
dtype and device for tensor input, differentiable. Invalid values (non-positive radii,
eccentricity outside [0, 1), Teff outside a fit's range, ...) raise `astrobio.errors.DataError`
naming the argument and quoting the offending values; validation is skipped while
`torch.compile` traces, so compiled losses see no host synchronisation.

Units: Teff K, luminosity Lsun (linear), stellar radius Rsun, stellar mass Msun, planet radius
and mass Earth units, distances AU, periods days, flux Earth units.
"""

from astrobio.physics.esi import earth_similarity_index, earth_similarity_index_from_mass
from astrobio.physics.habitable_zone import habitable_zone, habitable_zone_flux
from astrobio.physics.orbits import (
    equilibrium_temperature,
    equilibrium_temperature_from_insolation,
    insolation,
    semi_major_axis_from_period,
)
from astrobio.physics.relations import (
    main_sequence_luminosity,
    main_sequence_radius,
    main_sequence_teff,
    planet_mass_from_radius,
    planet_radius_from_mass,
    stellar_luminosity,
    stellar_radius,
    stellar_teff,
)

__all__ = [
    "earth_similarity_index",
    "earth_similarity_index_from_mass",
    "equilibrium_temperature",
    "equilibrium_temperature_from_insolation",
    "habitable_zone",
    "habitable_zone_flux",
    "insolation",
    "main_sequence_luminosity",
    "main_sequence_radius",
    "main_sequence_teff",
    "planet_mass_from_radius",
    "planet_radius_from_mass",
    "semi_major_axis_from_period",
    "stellar_luminosity",
    "stellar_radius",
    "stellar_teff",
]
