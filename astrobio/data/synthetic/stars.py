"""Host stars: mass from a population mixture, then L, R, Teff; distance and J magnitude;
spots and faculae.

Masses (Msun) come from a mixture weighted like the hosts of known small planets (TESS and
Kepler): 45 % M dwarfs (0.09-0.6), 30 % K (0.6-0.9), 25 % G and F (0.9-1.4), uniform within
each. Luminosity and radius follow the main-sequence power laws of `astrobio.physics`
(Duric 2004), each with a 0.05 dex scatter for age and metallicity; Teff follows from
Stefan-Boltzmann and is kept within the Kopparapu fits' 2600-7200 K, with L recomputed from
the kept Teff so that L = R^2 (Teff / 5772)^4 holds exactly.

Distance: the hosts are a magnitude-limited sample, as a transit survey's follow-up targets
are: uniform in volume between 2 pc and the distance at which the star's J magnitude
(`physics.absolute_j_magnitude`) reaches J_LIMIT = 11.5 (TRAPPIST-1, J = 11.35, is among
JWST's faintest rocky-planet hosts). Most hosts are therefore faint for their type: the
Euclidean counts N(<J) ~ 10^(0.6 J).

Surface heterogeneity, the covering fractions of unocculted spots and faculae (Rackham et al.
2018, 2019): M dwarfs f_spot log-uniform 0.5-25 % (TRAPPIST-1: 8 +18/-7 %), f_fac uniform
0-50 % (TRAPPIST-1: 54 +16/-46 %); K dwarfs f_spot 0.3-4 %, f_fac 0-20 %; G and F 0.05-0.5 %,
f_fac 0-10 % (Rackham et al. 2019: 0.1 % for F to 2-4 % for late K).
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
M_DWARF_TEFF_K = 3900.0
K_DWARF_TEFF_K = 5200.0
J_LIMIT = 11.5
NEAREST_PC = 2.0
# spectral class -> (f_spot log-uniform range, f_fac uniform upper bound)
ACTIVITY = {"M": ((0.005, 0.25), 0.5), "K": ((0.003, 0.04), 0.2), "GF": ((0.0005, 0.005), 0.1)}


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


def draw_distances(teff, luminosity, u_distance) -> dict[str, np.ndarray]:
    """Distance (pc) and apparent J magnitude of each host (module docstring)."""
    absolute = physics.absolute_j_magnitude(teff, luminosity)
    farthest = 10.0 ** ((J_LIMIT - absolute) / 5.0 + 1.0)
    nearest = np.minimum(NEAREST_PC, farthest)
    distance = np.cbrt(nearest**3 + u_distance * (farthest**3 - nearest**3))
    return {"distance_pc": distance, "j_mag": physics.apparent_magnitude(absolute, distance)}


def host_class(teff) -> np.ndarray:
    """'M', 'K' or 'GF' per star: the activity classes of the module docstring, and the host
    classes an out-of-distribution split can hold out."""
    return np.where(np.asarray(teff) < M_DWARF_TEFF_K, "M",
                    np.where(np.asarray(teff) < K_DWARF_TEFF_K, "K", "GF"))


def draw_activity(teff, u_spot, u_facula) -> dict[str, np.ndarray]:
    """Spot and facula covering fractions (module docstring)."""
    kind = host_class(teff)
    spot = np.zeros(len(kind))
    facula = np.zeros(len(kind))
    for name, ((low, high), facula_max) in ACTIVITY.items():
        here = kind == name
        spot[here] = low * (high / low) ** u_spot[here]
        facula[here] = facula_max * u_facula[here]
    return {"spot_fraction": spot, "facula_fraction": facula}


def spectral_type(teff: float) -> str:
    """The Morgan-Keenan letter of a main-sequence star of `teff` (K)."""
    for letter, lowest in (("O", 30000.0), ("B", 10000.0), ("A", 7500.0), ("F", 6000.0),
                           ("G", K_DWARF_TEFF_K), ("K", M_DWARF_TEFF_K)):
        if teff >= lowest:
            return letter
    return "M"
