"""Main-sequence host stars: mass from a population mixture, then L, R and Teff.

Masses (Msun) come from a mixture weighted like the hosts of known small planets (TESS and
Kepler): 45 % M dwarfs (0.09–0.6), 30 % K (0.6–0.9), 25 % G and F (0.9–1.4), uniform within
each. Luminosity and radius follow the main-sequence power laws of `astrobio.physics`
(Duric 2004), each with a 0.05 dex scatter for age and metallicity; Teff follows from
Stefan–Boltzmann and is kept within the Kopparapu fits' 2600–7200 K, with L recomputed from
the kept Teff so that L = R^2 (Teff / 5772)^4 holds exactly.
"""

from __future__ import annotations

import numpy as np

from astrobio import physics

SPECTRAL_MIXTURE = (  # (weight, lowest mass, highest mass) in Msun
    (0.45, 0.09, 0.6),
    (0.30, 0.6, 0.9),
    (0.25, 0.9, 1.4),
)
SCATTER_DEX = 0.05
TEFF_LIMITS_K = (2620.0, 7180.0)


def draw_stars(u_class: np.ndarray, u_mass: np.ndarray, z_luminosity: np.ndarray,
               z_radius: np.ndarray) -> dict[str, np.ndarray]:
    """Stars from uniform (`u_*`) and standard-normal (`z_*`) variates, one per element."""
    weights = np.array([w for w, _, _ in SPECTRAL_MIXTURE])
    low = np.array([lo for _, lo, _ in SPECTRAL_MIXTURE])
    high = np.array([hi for _, _, hi in SPECTRAL_MIXTURE])
    kind = np.searchsorted(np.cumsum(weights) / weights.sum(), u_class, side="right")
    kind = np.minimum(kind, len(SPECTRAL_MIXTURE) - 1)
    mass = low[kind] + u_mass * (high[kind] - low[kind])
    luminosity = physics.main_sequence_luminosity(mass) * 10.0 ** (SCATTER_DEX * z_luminosity)
    radius = physics.main_sequence_radius(mass) * 10.0 ** (SCATTER_DEX * z_radius)
    teff = np.clip(physics.stellar_teff(luminosity, radius), *TEFF_LIMITS_K)
    luminosity = physics.stellar_luminosity(teff, radius)
    return {"mass": mass, "luminosity": luminosity, "radius": radius, "teff": teff}


def spectral_type(teff: float) -> str:
    """The Morgan–Keenan letter of a main-sequence star of `teff` (K)."""
    for letter, lowest in (("F", 6000.0), ("G", 5200.0), ("K", 3900.0)):
        if teff >= lowest:
            return letter
    return "M"
