"""Earth Similarity Index (Schulze-Makuch et al. 2011, Astrobiology 11, 1041).

    ESI = prod_i (1 - |x_i - x_i,E| / (x_i + x_i,E))^(w_i / n),   n = 4,

over radius, bulk density and escape velocity (Earth units, Earth = 1) and mean surface
temperature (K, Earth = 288 K), with weights 0.57, 1.07, 0.70 and 5.58. ESI is 1 for Earth;
the paper gives Mars 0.70 and Venus 0.44.
"""

from __future__ import annotations

from astrobio.physics._arrays import as_arrays, require_positive
from astrobio.physics.constants import EARTH_SURFACE_TEMPERATURE_K

ESI_WEIGHTS = {"radius": 0.57, "density": 1.07, "escape_velocity": 0.70,
               "surface_temperature": 5.58}


def _similarity(lib, x, reference: float, weight: float, n: int):
    return (1.0 - lib.abs(x - reference) / (x + reference)) ** (weight / n)


def earth_similarity_index(radius, density, escape_velocity, surface_temperature):
    """ESI from radius, density and escape velocity (Earth units) and surface temperature (K).

    Works on numpy arrays and torch tensors (same type out, differentiable).
    """
    lib, values = as_arrays(radius, density, escape_velocity, surface_temperature)
    references = (1.0, 1.0, 1.0, EARTH_SURFACE_TEMPERATURE_K)
    esi = 1.0
    for (name, weight), x, reference in zip(ESI_WEIGHTS.items(), values, references,
                                            strict=True):
        require_positive(x, name)
        esi = esi * _similarity(lib, x, reference, weight, len(ESI_WEIGHTS))
    return lib.finish(esi)


def earth_similarity_index_from_mass(radius, mass, surface_temperature):
    """ESI with density M/R^3 and escape velocity sqrt(M/R) from mass and radius (Earth
    units)."""
    lib, (radius, mass, temperature) = as_arrays(radius, mass, surface_temperature)
    require_positive(radius, "radius")
    require_positive(mass, "mass")
    return earth_similarity_index(radius, mass / radius**3, lib.sqrt(mass / radius), temperature)
