"""Planetary physics: habitable zone, insolation, equilibrium temperature, ESI, scaling laws,
interiors (rocky radius, envelope thickness), transits and J-band photometry.

Every function takes numpy arrays, Python scalars or torch tensors (broadcasting like numpy) and
returns the same kind: float64 numpy for numpy/scalar input, tensors of the inputs' floating
dtype and device for tensor input, differentiable. Invalid values (non-positive radii,
eccentricity outside [0, 1), Teff outside a fit's range, ...) raise `astrobio.errors.DataError`
naming the argument and quoting the offending values; validation is skipped while
`torch.compile` traces, so compiled losses see no host synchronisation.

Units: Teff K, luminosity Lsun (linear), stellar radius Rsun, stellar mass Msun, planet radius
and mass Earth units, distances AU (to stars pc), periods days (transit durations hours), flux
Earth units, magnitudes Vega (2MASS J).
"""

from astrobio.physics.esi import earth_similarity_index, earth_similarity_index_from_mass
from astrobio.physics.habitable_zone import habitable_zone, habitable_zone_flux
from astrobio.physics.orbits import (
    equilibrium_temperature,
    equilibrium_temperature_from_insolation,
    insolation,
    orbital_period,
    semi_major_axis_from_period,
    transit_duration,
)
from astrobio.physics.photometry import (
    absolute_j_magnitude,
    apparent_magnitude,
    j_band_fraction,
    planck_ratio,
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
from astrobio.physics.structure import envelope_thickness, rocky_radius

__all__ = [
    "absolute_j_magnitude",
    "apparent_magnitude",
    "earth_similarity_index",
    "earth_similarity_index_from_mass",
    "envelope_thickness",
    "equilibrium_temperature",
    "equilibrium_temperature_from_insolation",
    "habitable_zone",
    "habitable_zone_flux",
    "insolation",
    "j_band_fraction",
    "main_sequence_luminosity",
    "main_sequence_radius",
    "main_sequence_teff",
    "orbital_period",
    "planet_mass_from_radius",
    "planck_ratio",
    "planet_radius_from_mass",
    "rocky_radius",
    "semi_major_axis_from_period",
    "stellar_luminosity",
    "stellar_radius",
    "stellar_teff",
    "transit_duration",
]
