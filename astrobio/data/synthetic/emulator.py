"""The clero climate emulator where it applies, and its climates as this package's datacube.

clero (Stevenson et al., MIT licence, `pip install clero`; numpy and scipy only, its weights
ship in the wheel and nothing is fetched at run time) is a Gaussian-process emulator of 3D
exoGCM climates (UM and ExoCAM, trained on the ThousandWorlds simulations) of tidally locked,
ocean-covered rocky planets: surface temperature and, on 10 levels, temperature, specific
humidity, cloud fraction and winds on a 32 x 64 grid (Gaussian latitudes; longitude 0 at the
substellar point), with draws from its own predictive uncertainty.

It applies (`in_domain`) to rocky planets with an atmosphere and at least 0.1 Earth oceans
(its slab ocean), tidally locked (`planets.is_locked`), inside clero's CORE_DOMAIN: radius
0.7-1.75 Re, gravity 6-17 m/s^2, rotation = orbital period 1-200 d, surface pressure 0.5-5 bar,
CO2 up to 1, CH4 up to 0.05, instellation 500-1500 W/m^2, Teff 2500-5800 K. Elsewhere the
energy-balance model (`climate`) stands in.

A draw is one call of `Emulator.sample` for one planet with a seed drawn from that planet's
random stream, so it is the same whichever block or process generates the planet. clero is
imported only here and only when a planet needs it.

`to_cube` puts a draw on the datacube's grid: conservative (area-overlap) regridding in
sin(latitude) and longitude (clero's substellar longitude 0 becomes the cube's 180 degrees),
linear interpolation in log pressure from clero's levels (10 mbar to 0.925 P) to the cube's
sigma levels, constant beyond clero's lowest and highest levels. Level 0 of temperature is
clero's surface temperature; the liquid-water channel follows `climate`'s definition.
"""

from __future__ import annotations

import functools

import numpy as np

from astrobio.data.synthetic.climate import SIGMA_TOP, liquid_cloud_share
from astrobio.data.synthetic.water import liquid_area, liquid_cells

GCMS = ("um", "exocam")
N_LEVELS = 10
MIN_WATER_OCEANS = 0.1
SOLAR_CONSTANT_W_M2 = 1361.0
GRAVITY_EARTH = 9.80665
INPUTS = ("T_star", "F_star", "radius", "gravity", "P_rot", "P0", "CO2", "CH4")
RUNAWAY_STATE = "runaway_greenhouse"
FIELDS = ("surface_temperature", *(f"{name}_{k}" for name in
                                   ("temperature", "specific_humidity", "cloud_fraction")
                                   for k in range(N_LEVELS)))


@functools.cache
def _clero():
    try:
        import clero
    except ImportError as err:  # a machine without clero cannot build these planets
        raise ImportError("the synthetic generator needs clero for planets in its domain: "
                          "pip install clero (or set data.clero = false for the energy-balance "
                          "model everywhere)") from err
    return clero


@functools.cache
def emulator():
    """clero's shipped emulator, loaded once per process (about 1 s, 38 MB)."""
    return _clero().Emulator()


def inputs(teff, insolation, radius, mass, period, pressure, co2, ch4) -> dict[str, np.ndarray]:
    """clero's inputs (its names and units) from this package's (Earth units, days, bar)."""
    return {"T_star": np.asarray(teff, np.float64),
            "F_star": SOLAR_CONSTANT_W_M2 * np.asarray(insolation, np.float64),
            "radius": np.asarray(radius, np.float64),
            "gravity": GRAVITY_EARTH * np.asarray(mass) / np.asarray(radius) ** 2,
            "P_rot": np.asarray(period, np.float64), "P0": np.asarray(pressure, np.float64),
            "CO2": np.asarray(co2, np.float64), "CH4": np.asarray(ch4, np.float64)}


def in_domain(planet_inputs: dict[str, np.ndarray], applicable) -> np.ndarray:
    """Where clero applies: `applicable` (rocky, with air and ocean, locked) and every input
    inside CORE_DOMAIN."""
    inside = np.asarray(applicable, bool).copy()
    for name, (low, high) in _clero().CORE_DOMAIN.items():
        value = planet_inputs[name]
        inside &= (value >= low) & (value <= high)
    return inside


def draw(planet: dict[str, float], gcm: str, seed: int) -> dict[str, np.ndarray]:
    """One climate draw [32, 64] per field of `FIELDS` for one planet (clero's units)."""
    out = emulator().sample({**{k: float(v) for k, v in planet.items()}, "GCM": gcm},
                            n_samples=1, seed=seed, fields=list(FIELDS))
    return {name: value[0] for name, value in out.items()}


@functools.cache
def _grid():
    """clero's latitude rows' area weights [32] and their edges in degrees [33]."""
    analysis = _clero().climate_analysis
    lat = analysis.latitude_centers(32)
    return analysis.latitude_weights(lat), analysis.latitude_edges(32)


def summary(fields: dict[str, np.ndarray], planet: dict[str, float]) -> dict[str, float]:
    """The planet-scale facts of a draw: area-mean surface temperature (K), liquid-water area
    (`water.liquid_area`), cloud cover (area mean of each column's largest cloud fraction) and
    whether clero's climate state is the runaway greenhouse."""
    weights, _ = _grid()
    ts = fields["surface_temperature"].astype(np.float64)
    cloud = np.stack([fields[f"cloud_fraction_{k}"] for k in range(N_LEVELS)]).max(axis=0)
    ts_mean = float(ts.mean(axis=1) @ weights)
    wettest = max(float(fields[f"specific_humidity_{k}"].max()) for k in range(N_LEVELS))
    # climate_state's runaway needs column water > 0.3 or a global mean above 400 K; where
    # neither can hold, skip its (slow) evaluation
    runaway = (wettest > 0.3 or ts_mean > 399.0) and _clero().climate_analysis.climate_state(
        fields, planet)["state"] == RUNAWAY_STATE
    return {"ts": ts_mean,
            "liquid_area": float(liquid_area(ts[None], [planet["P0"]], weights)[0]),
            "cloud_cover": float(cloud.mean(axis=1) @ weights),
            "runaway": bool(runaway)}


def _overlap(source_edges: np.ndarray, target_edges: np.ndarray) -> np.ndarray:
    """[T, S] weights: the share of each target cell covered by each source cell."""
    low = np.maximum(target_edges[:-1, None], source_edges[None, :-1])
    high = np.minimum(target_edges[1:, None], source_edges[None, 1:])
    overlap = np.clip(high - low, 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


@functools.cache
def _regrid(lat: int, lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitude [lat, 32] and longitude [lon, 64] regridding matrices (module docstring)."""
    _, lat_edges = _grid()
    source_mu = np.sin(np.deg2rad(lat_edges))
    target_mu = np.sin(np.deg2rad(np.linspace(-90.0, 90.0, lat + 1)))
    source_lon = np.linspace(0.0, 360.0, 65)  # clero's -180..180 shifted by 180 degrees
    target_lon = np.linspace(0.0, 360.0, lon + 1)
    return _overlap(source_mu, target_mu), _overlap(source_lon, target_lon)


def _levels(pressure_bar: float, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """For each cube level, the clero level below it and the weight of the one above."""
    clero_p = _clero().climate_analysis.pressure_levels(pressure_bar)  # Pa, decreasing
    cube_p = np.geomspace(1.0, SIGMA_TOP, levels) * pressure_bar * 1e5
    x_source, x_target = -np.log(clero_p), -np.log(cube_p)
    position = np.clip(np.interp(x_target, x_source, np.arange(N_LEVELS)), 0, N_LEVELS - 1)
    below = np.minimum(np.floor(position).astype(np.int64), N_LEVELS - 2)
    return below, position - below


def to_cube(fields: dict[str, np.ndarray], pressure_bar: float, ocean_fraction: float,
            shape: tuple[int, int, int, int]) -> np.ndarray:
    """The datacube [4, Z, H, W] (float32) of one clero draw (module docstring)."""
    _, levels, lat, lon = shape
    lat_w, lon_w = _regrid(lat, lon)
    below, weight = _levels(pressure_bar, levels)
    cube = np.empty(shape, np.float32)

    def column(name: str) -> np.ndarray:
        stack = np.stack([fields[f"{name}_{k}"] for k in range(N_LEVELS)]).astype(np.float64)
        stack = lat_w @ stack @ lon_w.T  # [10, H, W]
        w = weight[:, None, None]
        return (1.0 - w) * stack[below] + w * stack[below + 1]

    surface = lat_w @ fields["surface_temperature"].astype(np.float64) @ lon_w.T
    cube[0] = column("temperature")
    cube[0, 0] = surface
    cube[1] = np.clip(column("specific_humidity"), 0.0, None)
    cube[2] = np.clip(column("cloud_fraction"), 0.0, 1.0)
    cube[3] = cube[2] * liquid_cloud_share(cube[0])
    cube[3, 0] = ocean_fraction * liquid_cells(cube[0, 0], pressure_bar)
    return cube
