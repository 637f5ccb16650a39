"""Water: saturation vapour pressure, the boiling point, and the one definition of liquid
surface water that the labels and every modality use.

A surface cell holds liquid water when its temperature T satisfies

    273.15 K <= T <= T_hot(P),   T_hot = min(boiling point at the surface pressure P, 395 K),

395 K being the upper temperature limit of known life (Takai et al. 2008). A planet has liquid
surface water when such cells cover at least `LIQUID_AREA_MIN` of its surface (area-weighted):
a tenth, enough for the open ocean under the substellar point of a tidally locked "eyeball"
planet (Pierrehumbert 2011). The labels apply it to the planet's true climate, the datacube's
`surface_liquid_water` channel and the metabolic graph's environment to the observer's climate
model, the text to a retrieved temperature.

e_s(T) follows Clausius-Clapeyron from the triple point (611.2 Pa, 273.15 K) with constant
latent heats of vaporisation (over water) and sublimation (over ice, below 273.15 K).
"""

from __future__ import annotations

import numpy as np

KELVIN_FREEZE = 273.15
LIFE_HOT_LIMIT_K = 395.0
LIQUID_AREA_MIN = 0.1
E_TRIPLE_PA = 611.2
R_VAPOUR = 461.5  # J kg^-1 K^-1
LATENT_VAPORISATION = 2.5e6  # J kg^-1
LATENT_SUBLIMATION = 2.834e6


def saturation_vapour_pressure(temperature):
    """e_s(T) in Pa, Clausius-Clapeyron over liquid water (over ice below 273.15 K)."""
    t = np.asarray(temperature)
    t = t if t.dtype in (np.float32, np.float64) else t.astype(np.float64)
    latent = np.where(t >= KELVIN_FREEZE, t.dtype.type(LATENT_VAPORISATION / R_VAPOUR),
                      t.dtype.type(LATENT_SUBLIMATION / R_VAPOUR))
    return E_TRIPLE_PA * np.exp(latent * (1.0 / KELVIN_FREEZE - 1.0 / t))


def boiling_temperature(pressure_bar):
    """The temperature (K) at which e_s reaches `pressure_bar` (liquid branch of `e_s`)."""
    p = np.maximum(np.asarray(pressure_bar, np.float64) * 1e5, E_TRIPLE_PA)
    return 1.0 / (1.0 / KELVIN_FREEZE - R_VAPOUR / LATENT_VAPORISATION * np.log(p / E_TRIPLE_PA))


def hot_limit(pressure_bar):
    """T_hot in K: the lower of the boiling point at `pressure_bar` and 395 K."""
    return np.minimum(boiling_temperature(pressure_bar), LIFE_HOT_LIMIT_K)


def liquid_cells(temperature, pressure_bar):
    """Where a surface at `temperature` (K) under `pressure_bar` holds liquid water (the
    arrays broadcast against each other)."""
    t = np.asarray(temperature)
    return (t >= KELVIN_FREEZE) & (t <= hot_limit(pressure_bar))


def liquid_area(surface_temperature, pressure_bar, latitude_weights):
    """Area fraction [B] of the surface holding liquid water, from fields [B, H, W], surface
    pressures [B] and the latitude rows' area weights [H] (summing to 1)."""
    field = np.asarray(surface_temperature)
    pressure = np.asarray(pressure_bar, np.float64).reshape(-1, 1, 1)
    wet = liquid_cells(field, pressure)
    return (wet.mean(axis=-1) * np.asarray(latitude_weights, np.float64)).sum(axis=-1)


def has_liquid_water(area):
    """The planet-level verdict from `liquid_area` (module docstring)."""
    return np.asarray(area) >= LIQUID_AREA_MIN


def uniform_latitude_weights(n_lat: int) -> np.ndarray:
    """Area weights of `n_lat` equal-angle latitude rows from pole to pole (the datacube's
    grid): proportional to the difference of sin(latitude) across each row."""
    edges = np.sin(np.deg2rad(np.linspace(-90.0, 90.0, n_lat + 1)))
    return np.diff(edges) / 2.0
