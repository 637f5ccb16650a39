"""Stellar contamination of transmission spectra: the transit light source effect (Rackham,
Apai & Giampapa 2018, AJ 155; Rackham et al. 2019 for FGK stars).

Unocculted spots (covering fraction f_spot) and faculae (f_fac) make the disk-integrated
spectrum differ from the photosphere the planet crosses, so the recorded depth is the true
depth times

    epsilon(l) = 1 / (1 - f_spot (1 - S_spot(l) / S_phot(l)) - f_fac (1 - S_fac(l) / S_phot(l)))

(Rackham et al. 2018, eq. 3). Spots are 0.86 times the photosphere's temperature (their
choice for M dwarfs, after Berdyugina 2005), faculae 100 K hotter; contrasts are Planck
ratios (`physics.planck_ratio`), and spots cooler than 4000 K also deepen the star's water
bands, by up to 15 % at the band peaks (weight (4000 K - T_spot) / 1000 K, at most 1), which
imprints false water features on the planet's spectrum. For TRAPPIST-1's 8 % spots the
contamination is a few per cent of the depth, one to fifteen times a rocky planet's features
(Rackham et al. 2018).
"""

from __future__ import annotations

import functools

import numpy as np

from astrobio import physics
from astrobio.data.synthetic.atmosphere import COLUMN
from astrobio.data.synthetic.spectrum import band_profiles
from astrobio.schema import wavelength_grid

SPOT_TEFF_RATIO = 0.86
FACULA_EXCESS_K = 100.0
SPOT_WATER_DEPTH = 0.15
WATER_BELOW_K = 4000.0


@functools.cache
def _water_profile(n_bins: int) -> np.ndarray:
    profile = band_profiles(n_bins)[COLUMN["H2O"]]
    return profile / profile.max()


def spot_contrast(n_bins: int, teff) -> np.ndarray:
    """S_spot / S_phot [B, L] for photospheres of `teff` [B] (module docstring)."""
    teff = np.asarray(teff, np.float64)[:, None]
    spot = SPOT_TEFF_RATIO * teff
    ratio = physics.planck_ratio(wavelength_grid(n_bins)[None, :], spot, teff)
    water = np.clip((WATER_BELOW_K - spot) / 1000.0, 0.0, 1.0)
    return ratio * (1.0 - SPOT_WATER_DEPTH * water * _water_profile(n_bins))


def factor(n_bins: int, teff, spot_fraction, facula_fraction) -> np.ndarray:
    """epsilon [B, L], the factor on the true depth (module docstring)."""
    teff = np.asarray(teff, np.float64)
    facula = physics.planck_ratio(wavelength_grid(n_bins)[None, :],
                                  (teff + FACULA_EXCESS_K)[:, None], teff[:, None])
    dimming = (np.asarray(spot_fraction)[:, None] * (1.0 - spot_contrast(n_bins, teff))
               + np.asarray(facula_fraction)[:, None] * (1.0 - facula))
    return 1.0 / (1.0 - dimming)
