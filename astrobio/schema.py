"""The fixed vocabulary of a sample: modality order, channel names, label classes, grids,
special tokens, and the physical range of every numeric field.

Every module that needs one of these facts imports it from here; this module imports nothing
of the package, so models, ops and config can use it without the data package.
"""

from __future__ import annotations

import numpy as np

MODALITIES = ("climate", "graph", "spectrum", "params", "text")
# What a catalogue row alone gives a planet (the Exoplanet Archive reader; every real planet of
# the shipped catalogue): no datacube, metabolic network or spectrum.
CATALOGUE_MODALITIES = ("params", "text")

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


# Physical ranges (inclusive, in the sample's units) of every numeric field of a sample. A finite
# value outside its range is a defect -- wrong units, a corrupt file, a sign flipped -- that
# `PlanetSample.problems` reports by sample and field, and with it `validate`, the loader's check
# and every reader. They apply where the modality is present (an absent one is zeros) and, for
# the spectrum, where a bin was observed.
CLIMATE_RANGES = {  # per channel, in `CLIMATE_VARIABLES` order
    "temperature": (0.0, 5000.0),  # K; 0 above the surface of an airless body (no atmosphere)
    "specific_humidity": (0.0, 1.0),  # kg/kg; 1 is a pure steam atmosphere
    "cloud_fraction": (0.0, 1.0),
    "surface_liquid_water": (0.0, 1.0),
}
PARAM_RANGES = {  # in `PARAM_NAMES` order; wide enough for every known star and planet
    "st_teff": (1000.0, 60000.0),  # K
    "st_lum": (1e-6, 1e7),  # L/Lsun
    "st_rad": (0.005, 2000.0),  # Rsun
    "st_mass": (0.01, 300.0),  # Msun
    "pl_rade": (0.05, 100.0),  # Earth radii
    "pl_bmasse": (1e-4, 1e6),  # Earth masses
    "pl_orbsmax": (1e-4, 1e5),  # AU
    "pl_orbeccen": (0.0, 0.999999),
    "pl_insol": (1e-8, 1e8),  # Earth units
}
# An observed transit depth: noise can carry it below 0, nothing past 100 %.
SPECTRUM_RANGE_PPM = (-1e6, 1e6)
# 1-sigma depth uncertainty where observed; no instrument reaches 0.01 ppm (JWST: ~10 ppm).
SPECTRUM_ERR_RANGE_PPM = (1e-2, 1e6)
NODE_FEATURE_RANGES = {  # columns of the metabolite features (`astrobio.data.metabolism`)
    "compartment_c": (0.0, 1.0), "compartment_e": (0.0, 1.0), "compartment_other": (0.0, 1.0),
    **{f"log1p_{element}_atoms": (0.0, 20.0) for element in ("C", "H", "O", "N", "P", "S")},
    "log1p_other_atoms": (0.0, 20.0),
    "charge_over_4": (-25.0, 25.0),
    "formula_known": (0.0, 1.0),
    "log1p_in_degree": (0.0, 20.0), "log1p_out_degree": (0.0, 20.0),
    "hub": (0.0, 1.0),
    "mean_activity": (0.0, 1.0),
}
EDGE_FEATURE_RANGES = {  # columns of the reaction-link features
    "reversible": (0.0, 1.0),
    "log1p_stoichiometry": (0.0, 20.0),
    "activity": (0.0, 1.0),
    "biosignature": (0.0, 1.0),
}
SURFACE_TEMPERATURE_RANGE_K = (1.0, 5000.0)  # the label
