"""Stellar brightness in the 2MASS J band, the magnitude JWST's transit noise scales with.

The J-band flux is the Planck function's share of the bolometric flux in 1.11-1.39 um (a
top-hat band) at the star's Teff, calibrated to the Sun's absolute magnitude M_J = 3.67
(Willmer 2018, ApJS 236, 47):

    M_J = 3.67 - 2.5 log10(L f_J(Teff) / f_J(5772 K)),   J = M_J + 5 log10(d / 10 pc).

A blackbody lacks the molecular bands of cool stars, which move flux from the optical into the
near-infrared: M dwarfs come out about 0.2-0.3 mag fainter in J than observed (TRAPPIST-1,
Proxima Centauri), FGK stars within 0.1 mag. Teff in K, L in Lsun, distance in pc.
"""

from __future__ import annotations

import numpy as np
import torch

from astrobio.physics._arrays import as_arrays, require_positive
from astrobio.physics.constants import (
    BOLTZMANN_J_K,
    PLANCK_J_S,
    SOLAR_ABSOLUTE_J_MAG,
    SOLAR_TEFF_K,
    SPEED_OF_LIGHT_M_S,
)

J_BAND_UM = (1.11, 1.39)
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)  # quadrature over the band


def planck_ratio(wavelength_um, temperature, reference_temperature):
    """B_lambda(T) / B_lambda(T_ref) at `wavelength_um`: the surface-brightness contrast of a
    star spot (T < T_ref) or facula (T > T_ref) against the photosphere."""
    lib, (wavelength, t, t_ref) = as_arrays(wavelength_um, temperature, reference_temperature)
    require_positive(wavelength, "wavelength")
    require_positive(t, "temperature")
    require_positive(t_ref, "reference_temperature")
    x = PLANCK_J_S * SPEED_OF_LIGHT_M_S / (wavelength * 1e-6 * BOLTZMANN_J_K)
    return lib.finish(lib.expm1(x / t_ref) / lib.expm1(x / t))


def j_band_fraction(teff):
    """The share of a blackbody's bolometric flux that falls in the J band (Gauss-Legendre
    quadrature over `J_BAND_UM`; 0.087 for the Sun, 0.16 for a 3000 K star)."""
    lib, (t,) = as_arrays(teff)
    require_positive(t, "teff")
    low, high = J_BAND_UM
    half = 0.5 * (high - low)
    nodes, weights = 0.5 * (high + low) + half * _NODES, half * _WEIGHTS
    if lib.is_torch:
        nodes, weights = (torch.as_tensor(a, dtype=t.dtype, device=t.device)
                          for a in (nodes, weights))
    wavelength = nodes * 1e-6
    c2 = PLANCK_J_S * SPEED_OF_LIGHT_M_S / BOLTZMANN_J_K
    # B_lambda / (sigma T^4 / pi) = (15 / pi^4) (c2 / T)^4 / (lambda^5 (exp(c2 / lambda T) - 1))
    x = c2 / (wavelength * t[..., None])
    share = (15.0 / np.pi**4) * x**4 / (wavelength * lib.expm1(x)) * weights * 1e-6
    return lib.finish(share.sum(-1))


def absolute_j_magnitude(teff, luminosity):
    """M_J of a star of `teff` (K) and `luminosity` (Lsun), module docstring."""
    lib, (t, lum) = as_arrays(teff, luminosity)
    require_positive(lum, "luminosity")
    ratio = lum * j_band_fraction(t) / float(j_band_fraction(SOLAR_TEFF_K))
    return lib.finish(SOLAR_ABSOLUTE_J_MAG - 2.5 * lib.log10(ratio))


def apparent_magnitude(absolute_magnitude, distance_pc):
    """m = M + 5 log10(d / 10 pc)."""
    lib, (absolute, distance) = as_arrays(absolute_magnitude, distance_pc)
    require_positive(distance, "distance")
    return lib.finish(absolute + 5.0 * lib.log10(distance / 10.0))
