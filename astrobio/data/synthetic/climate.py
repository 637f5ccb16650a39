"""Energy-balance climate: the mean surface temperature and the [4, Z, H, W] datacube, for every
planet outside the domain of the `emulator` (clero), the planet's own and the observer's.

Mean surface temperature (K), grey-atmosphere radiative equilibrium (Eddington
approximation; Pierrehumbert 2010, Principles of Planetary Climate, sec. 4.3):

    Teq = (S S_earth (1 - A) / 4 sigma)^(1/4)
    Ts  = Teq (1 + 0.75 tau)^(1/4) + STEAM_WARMING_K [runaway]
    tau = C_DRY P^2 + C_CO2 ln(1 + pCO2 / P_CO2_REF) + C_H2O w sqrt(P) ln(1 + e_s(Teq) / e_s(255 K))

with P the surface pressure and pCO2 the CO2 partial pressure in bar, w the water available
to the atmosphere (0 dry, 1 Earth). The terms are pressure-induced (collision) absorption,
CO2's logarithmic forcing and a water-vapour feedback that follows Clausius–Clapeyron at Teq
(not Ts, so the expression stays explicit). C_H2O is fixed by the Earth: S = 1, A = 0.3, 1 bar,
400 ppm CO2, w = 1 gives Teq = 254.6 K and Ts = 288 K. With 92 bar of CO2 at Venus' flux and
albedo the same formula gives about 706 K (observed 737 K). Ts grows monotonically with S.

Datacube, channels as `schema.CLIMATE_VARIABLES`, on levels sigma = p / p_surface log-spaced
from 1 to 0.01 (level 0 is the surface), latitude cell centres from south to north, longitude
from 0 to 360 degrees:
- temperature: the surface field carries an equator-to-pole contrast of 80 K / (1 + P / bar)
  (thicker atmospheres carry more heat poleward) or, for tidally locked planets, a day-night
  contrast of 150 K / (1 + 2 P / bar) (Koll & Abbot 2016) around the substellar point, fixed at
  longitude 180 degrees; airless bodies are in local radiative equilibrium instead. Above the
  surface T follows a moist adiabat, T = Ts sigma^kappa with kappa = 2/7 (1 - 0.35 RH_s), down
  to the grey skin temperature Teq 2^(-1/4), above which the stratosphere is isothermal.
- specific humidity: q = 0.622 e / (p - 0.378 e), e = min(RH e_s(T), p), with e_s from
  Clausius–Clapeyron (over ice below 273.15 K) and RH = RH_s (sigma - 0.02) / 0.98 (Manabe &
  Wetherald 1967), so q never exceeds saturation.
- cloud fraction: Sundqvist et al. (1989), C = 1 - sqrt((1 - RH) / (1 - RH_crit)) above
  RH_crit, with extra convective moisture under the substellar point of locked planets.
- surface_liquid_water: level 0 is the liquid fraction of the surface (the ocean fraction
  where a cell holds liquid water by `water.liquid_cells`, 0 over ice, land and boiling or
  sterilising seas); levels above hold the liquid share of the cloud (all liquid above
  273.15 K, all ice below 253.15 K, linear between).
Airless bodies have only the surface level (the rest is 0); gaseous planets have no surface,
their level 0 is the 10-bar level and their "surface temperature" is the 1-bar temperature.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from astrobio import physics
from astrobio.data.synthetic.rows import row_matmul
from astrobio.data.synthetic.water import (
    KELVIN_FREEZE,
    liquid_cells,
    saturation_vapour_pressure,
    uniform_latitude_weights,
)

EPSILON = 0.622  # m_water / m_dry_air

C_DRY = 0.0137  # per bar^2
C_CO2 = 0.25
P_CO2_REF_BAR = 1e-4
WATER_REFERENCE_K = 255.0
EARTH = {"albedo": 0.3, "pressure": 1.0, "co2_bar": 4e-4, "water": 1.0, "ts": 288.0}
WEATHERING_CO2_BAR = (1e-6, 8.0)
STEAM_WARMING_K = 250.0  # runaway: the steam atmosphere's extra warming (Goldblatt+ 2013)
EDDINGTON = 0.75

SIGMA_TOP = 0.01
KAPPA_DRY = 2.0 / 7.0
RH_CRIT = 0.6
ICE_ALL_K = 253.15
GASEOUS_BOTTOM_BAR = 10.0


def _water_term(teq, pressure_bar, water):
    ratio = saturation_vapour_pressure(teq) / saturation_vapour_pressure(WATER_REFERENCE_K)
    return water * np.sqrt(pressure_bar) * np.log1p(ratio)


def _c_h2o() -> float:
    """The water-vapour coefficient that puts the Earth at 288 K (module docstring)."""
    teq = float(physics.equilibrium_temperature_from_insolation(1.0, EARTH["albedo"]))
    tau = ((EARTH["ts"] / teq) ** 4 - 1.0) / EDDINGTON
    dry = C_DRY * EARTH["pressure"] ** 2 + C_CO2 * math.log1p(EARTH["co2_bar"] / P_CO2_REF_BAR)
    return (tau - dry) / float(_water_term(teq, EARTH["pressure"], EARTH["water"]))


C_H2O = _c_h2o()


def greenhouse_opacity(teq, pressure_bar, co2_bar, water):
    """Grey infrared optical depth tau (module docstring); 0 without an atmosphere."""
    return (C_DRY * np.square(pressure_bar) + C_CO2 * np.log1p(co2_bar / P_CO2_REF_BAR)
            + C_H2O * _water_term(teq, pressure_bar, water))


def surface_temperature(insolation, albedo, pressure_bar, co2_bar, water, runaway=False):
    """Mean surface temperature (K) and Teq (K) from the energy balance (module docstring)."""
    teq = physics.equilibrium_temperature_from_insolation(insolation, albedo)
    tau = greenhouse_opacity(teq, pressure_bar, co2_bar, water)
    ts = teq * (1.0 + EDDINGTON * tau) ** 0.25 + STEAM_WARMING_K * np.asarray(runaway, float)
    return ts, teq


def weathering_co2(teq, target_k, background_bar, water):
    """CO2 partial pressure (bar) that the carbonate-silicate cycle settles at (Walker et al.
    1981): enough CO2 for the surface to reach `target_k`, between WEATHERING_CO2_BAR bounds
    (at the upper bound CO2 condenses and scatters, the outer edge of the habitable zone).
    Solved with the background gas alone in the pressure terms, so the full energy balance
    then lands a little above the target."""
    needed = ((np.asarray(target_k) / teq) ** 4 - 1.0) / EDDINGTON
    other = C_DRY * np.square(background_bar) + C_H2O * _water_term(teq, background_bar, water)
    tau_co2 = np.clip(needed - other, 0.0, None)
    return np.clip(P_CO2_REF_BAR * np.expm1(tau_co2 / C_CO2), *WEATHERING_CO2_BAR)


@functools.cache
def _grid(levels: int, lat: int, lon: int):
    """sigma [Z], sin(lat) and cos(lat) [H, 1], longitude [1, W] and a smooth basis [K, H, W]."""
    sigma = np.geomspace(1.0, SIGMA_TOP, levels)
    phi = np.deg2rad(-90.0 + 180.0 * (np.arange(lat) + 0.5) / lat)[:, None]
    lam = np.deg2rad(360.0 * (np.arange(lon) + 0.5) / lon)[None, :]
    s, c = np.sin(phi), np.cos(phi)
    ones = np.ones_like(lam)
    basis = np.stack(np.broadcast_arrays(
        s * ones, c * np.cos(lam), c * np.sin(lam), c * c * np.cos(2 * lam),
        c * c * np.sin(2 * lam), (1.5 * s * s - 0.5) * ones, s * c * np.cos(lam),
        s * c * np.sin(lam)))
    basis = basis / np.sqrt((basis**2).mean(axis=(1, 2), keepdims=True))
    f32 = lambda a: a.astype(np.float32)
    return sigma, f32(s), f32(c), f32(lam), f32(basis)


N_WEATHER_MODES = 8


def liquid_cloud_share(temperature):
    """The liquid share of cloud at `temperature` (K): all liquid above 273.15 K, all ice
    below 253.15 K, linear between."""
    return np.clip((temperature - ICE_ALL_K) / (KELVIN_FREEZE - ICE_ALL_K), 0.0, 1.0)


def equator_pole_contrast(pressure_bar):
    return 80.0 / (1.0 + pressure_bar)


def day_night_contrast(pressure_bar):
    return 150.0 / (1.0 + 2.0 * pressure_bar)


def datacube(ts, teq, pressure_bar, airless, gaseous, locked, rh_surface, ocean_fraction,
             weather, shape: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The climate cubes [B, 4, Z, H, W] (float32) and each planet's cloud cover [B] (the
    area-weighted mean of each column's largest cloud fraction).

    Every argument is an array [B]; `weather` [B, N_WEATHER_MODES] holds standard normals that
    weight smooth patterns (T anomalies of ~1.5 K, RH anomalies of ~15 %)."""
    _, levels, lat, lon = shape
    sigma, sin_lat, cos_lat, lam, basis = _grid(levels, lat, lon)
    col = lambda x: np.asarray(x, np.float32)[:, None, None]  # [B] -> [B, 1, 1]
    ts, teq, rh_s = col(ts), col(teq), col(rh_surface)
    airless, gaseous, locked = col(airless) > 0, col(gaseous) > 0, col(locked) > 0
    # airless columns are zeroed above the surface; 1e-5 bar keeps their arithmetic finite
    p_bottom = np.select([gaseous, airless], [GASEOUS_BOTTOM_BAR, 1e-5],
                         col(pressure_bar)).astype(np.float32)
    pattern = row_matmul(np.asarray(weather, np.float32).reshape(len(ts), -1),
                         basis) / math.sqrt(N_WEATHER_MODES)

    kappa = KAPPA_DRY * (1.0 - 0.35 * rh_s)
    ts = np.where(gaseous, ts * GASEOUS_BOTTOM_BAR**kappa, ts)  # 1-bar value down the adiabat
    cos_zenith = np.maximum(cos_lat * np.cos(lam - math.pi), 0.0)  # substellar at 180 deg
    zonal = ts + equator_pole_contrast(p_bottom) * (1.0 / 3.0 - sin_lat**2)
    day_night = ts + day_night_contrast(p_bottom) * (4.0 / 3.0) * (cos_zenith - 0.25)
    bare = ts * np.maximum(np.where(locked, 4.0 * cos_zenith, 4.0 * cos_lat / math.pi),
                           0.3**4) ** 0.25
    surface = np.where(locked, day_night, zonal) + 1.5 * pattern
    surface = np.maximum(np.where(airless, bare, surface), 0.3 * ts).astype(np.float32)

    cube = np.empty((len(ts), 4, levels, lat, lon), np.float32)
    temperature, humidity, cloud, liquid = (cube[:, c] for c in range(4))
    s = sigma.astype(np.float32)[None, :, None, None]
    kappa = kappa[:, None]
    strat = (teq * 2.0**-0.25)[:, None]
    np.maximum(surface[:, None] * s**kappa, strat, out=temperature)
    temperature[:, 0] = surface
    pressure_pa = p_bottom[:, None] * 1e5 * s

    rh_profile = np.clip((s - 0.02) / 0.98, 0.0, 1.0)
    rh = rh_s[:, None] * rh_profile * (1.0 + 0.15 * pattern[:, None])
    rh += np.where(locked & (rh_s > 0), 0.2 * cos_zenith, 0.0)[:, None]
    np.clip(rh, 0.0, 1.0, out=rh)
    vapour = np.minimum(rh * saturation_vapour_pressure(temperature), pressure_pa)
    np.divide(EPSILON * vapour, pressure_pa - (1.0 - EPSILON) * vapour, out=humidity)
    np.subtract(1.0, np.sqrt(np.clip((1.0 - rh) / (1.0 - RH_CRIT), 0.0, 1.0)), out=cloud)
    np.multiply(cloud, liquid_cloud_share(temperature), out=liquid)
    liquid[:, 0] = col(ocean_fraction) * (liquid_cells(surface, col(pressure_bar)) & ~gaseous)

    bare_rock = airless[:, 0, 0]
    cube[bare_rock, :, 1:] = 0.0
    cube[bare_rock, 1:, 0] = 0.0
    cloud_cover = (cloud.max(axis=1).mean(axis=2, dtype=np.float64)
                   * uniform_latitude_weights(lat)).sum(axis=1) * ~bare_rock
    return cube, cloud_cover
