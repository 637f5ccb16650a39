"""The catalogue entry: what an archive lists for a planet, with realistic errors.

An observer measures the transit (period, exact for this purpose; the radius ratio Rp / R*
to 2 %), the star (Teff to 2 %, radius to 4 %, mass to 5 %: spectroscopy, SED fits and
empirical relations, as for TESS hosts) and the planet's radial-velocity mass (15 %,
log-normal), and derives the rest as the NASA Exoplanet Archive does: L = R*^2 (Teff /
5772)^4, a from Kepler's law with the measured stellar mass, Rp = (Rp / R*) R*, S = L / (a^2
sqrt(1 - e^2)); the eccentricity is measured to 0.03 (never below 0). So the catalogue's
errors are correlated the way real ones are, and its values obey the archive's relations
exactly.
"""

from __future__ import annotations

import numpy as np

from astrobio import physics
from astrobio.schema import PARAM_NAMES

ERRORS = {"teff": 0.02, "star_radius": 0.04, "star_mass": 0.05, "radius_ratio": 0.02,
          "mass_dex": 0.15 / np.log(10.0), "eccentricity": 0.03}
MAX_ECCENTRICITY = 0.9


def observe(t: dict[str, np.ndarray], v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The catalogue's values per planet (module docstring), in `schema.PARAM_NAMES` units,
    keyed by those names, plus `pl_orbper` (days)."""
    e = ERRORS
    teff = t["star_teff"] * (1.0 + e["teff"] * v["teff_error"])
    star_radius = t["star_radius"] * (1.0 + e["star_radius"] * v["star_radius_error"])
    star_mass = t["star_mass"] * (1.0 + e["star_mass"] * v["star_mass_error"])
    # Rp / R* (in Earth radii per solar radius), measured from the transit depth
    ratio = t["planet_radius"] / t["star_radius"] * (1.0 + e["radius_ratio"]
                                                      * v["radius_ratio_error"])
    eccentricity = np.clip(t["eccentricity"] + e["eccentricity"] * v["eccentricity_error"], 0.0,
                           MAX_ECCENTRICITY)
    luminosity = physics.stellar_luminosity(teff, star_radius)
    a = physics.semi_major_axis_from_period(t["period"], star_mass)
    return {
        "st_teff": teff, "st_lum": luminosity, "st_rad": star_radius, "st_mass": star_mass,
        "pl_rade": ratio * star_radius,
        "pl_bmasse": t["planet_mass"] * 10.0 ** (e["mass_dex"] * v["mass_error"]),
        "pl_orbsmax": a, "pl_orbeccen": eccentricity,
        "pl_insol": physics.insolation(luminosity, a, eccentricity), "pl_orbper": t["period"],
    }


def params(catalogue: dict[str, np.ndarray]) -> np.ndarray:
    """The params modality [B, P] float32, as `schema.PARAM_NAMES`."""
    return np.stack([catalogue[name] for name in PARAM_NAMES], axis=1).astype(np.float32)
