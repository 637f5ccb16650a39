"""The fixed vocabulary of a sample: modality order, channel names, label classes, grids,
special tokens.

Every module that needs one of these facts imports it from here; this module imports nothing
of the package, so models, ops and config can use it without the data package.
"""

from __future__ import annotations

import numpy as np

MODALITIES = ("climate", "graph", "spectrum", "params", "text")

# Datacube variables, in channel order.
CLIMATE_VARIABLES = (
    "temperature",  # K
    "specific_humidity",  # kg/kg
    "cloud_fraction",  # 0..1
    "surface_liquid_water",  # liquid-water fraction of the surface column, 0..1 (ice = 0)
)

# Planet and star parameters, in vector order (NASA Exoplanet Archive column names, linear
# units: st_lum is L/Lsun here, not the archive's log10).
PARAM_NAMES = (
    "st_teff",  # K
    "st_lum",  # L/Lsun
    "st_rad",  # Rsun
    "st_mass",  # Msun
    "pl_rade",  # Earth radii
    "pl_bmasse",  # Earth masses
    "pl_orbsmax",  # AU
    "pl_orbeccen",
    "pl_insol",  # Earth units
)

HABITABILITY_CLASSES = ("gaseous", "airless", "frozen", "temperate", "runaway")

TARGETS = ("habitable", "habitability_class", "surface_temperature", "biosignature")

# Metabolic graph features (see astrobio.data.metabolism for their meaning).
N_NODE_FEATURES = 16
N_EDGE_FEATURES = 4

# The tokenizer's special tokens take the first ids, in this order, so "<pad>" is 0. The
# collate pads text with PAD_TOKEN_ID and marks pads in `attention_mask`.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_TOKEN_ID = 0

WAVELENGTH_MIN_UM = 0.6
WAVELENGTH_MAX_UM = 12.0


def wavelength_grid(n_bins: int) -> np.ndarray:
    """Bin centres in µm, log-spaced over 0.6–12 µm (constant resolving power)."""
    return np.geomspace(WAVELENGTH_MIN_UM, WAVELENGTH_MAX_UM, n_bins)
