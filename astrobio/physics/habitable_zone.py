"""Habitable-zone limits of Kopparapu et al. (2013, ApJ 765, 131; 2014, ApJL 787, L29).

Each limit is an effective stellar flux reaching the planet, in Earth units,

    Seff(Teff) = S0 + a T + b T^2 + c T^3 + d T^4,   T = Teff - 5780 K,

fitted for 2600 K <= Teff <= 7200 K, and its distance is d = sqrt(L / Seff) AU for L in Lsun.
Conservative zone: runaway greenhouse -> maximum greenhouse; optimistic: recent Venus -> early
Mars. The 2014 runaway-greenhouse limit depends on the planet's mass; the paper gives fits for
0.1, 1 and 5 Earth masses and this module interpolates Seff linearly in log10(mass) between
them (exact at those three masses). The other 2014 limits are the 1 Earth-mass fits for every
mass (the paper finds the outer edge nearly mass independent). The 2013 fits are for 1 Earth
mass only.

Out of range (Teff outside the fit, mass outside 0.1–5 Earth masses for the 2014 runaway limit):
`out_of_range="raise"` (default) raises `DataError` quoting the offending values;
`out_of_range="clamp"` evaluates the fit at the nearest valid value and adds boolean arrays
`teff_clamped` (and `mass_clamped` for 2014) to the result, True where a value was clamped.
Gradients through a clamped input are zero.
"""

from __future__ import annotations

import math

from astrobio.errors import DataError
from astrobio.physics._arrays import ArrayLib, as_arrays, require, require_positive

TEFF_ORIGIN_K = 5780.0
TEFF_RANGE_K = (2600.0, 7200.0)
MASS_RANGE_2014 = (0.1, 5.0)  # Earth masses

# (S0, a, b, c, d), from inner to outer limit.
KOPPARAPU_2014 = {
    "recent_venus": (1.776, 2.136e-4, 2.533e-8, -1.332e-11, -3.097e-15),
    "runaway_greenhouse": (1.107, 1.332e-4, 1.580e-8, -8.308e-12, -1.931e-15),
    "maximum_greenhouse": (0.356, 6.171e-5, 1.698e-9, -3.198e-12, -5.575e-16),
    "early_mars": (0.320, 5.547e-5, 1.526e-9, -2.874e-12, -5.011e-16),
}
KOPPARAPU_2014_RUNAWAY_BY_MASS = {
    0.1: (0.99, 1.209e-4, 1.404e-8, -7.418e-12, -1.713e-15),
    1.0: KOPPARAPU_2014["runaway_greenhouse"],
    5.0: (1.188, 1.433e-4, 1.707e-8, -8.968e-12, -2.084e-15),
}
KOPPARAPU_2013 = {
    "recent_venus": (1.7753, 1.4316e-4, 2.9875e-9, -7.5702e-12, -1.1635e-15),
    "runaway_greenhouse": (1.0512, 1.3242e-4, 1.5418e-8, -7.9895e-12, -1.8328e-15),
    "moist_greenhouse": (1.0140, 8.1774e-5, 1.7063e-9, -4.3241e-12, -6.6462e-16),
    "maximum_greenhouse": (0.3438, 5.8942e-5, 1.6558e-9, -3.0045e-12, -5.2983e-16),
    "early_mars": (0.3179, 5.4513e-5, 1.5313e-9, -2.7786e-12, -4.8997e-16),
}
MODELS = {"kopparapu2013": KOPPARAPU_2013, "kopparapu2014": KOPPARAPU_2014}
OUT_OF_RANGE = ("raise", "clamp")


def _polynomial(coefficients: tuple[float, ...], t):
    s0, a, b, c, d = coefficients
    return s0 + t * (a + t * (b + t * (c + t * d)))


def _within(lib: ArrayLib, x, bounds: tuple[float, float], field: str, out_of_range: str):
    """`x` clamped to `bounds` and its clamped flag, or an error for values outside."""
    low, high = bounds
    outside = (x < low) | (x > high)
    if out_of_range == "raise":
        require(~outside, x, field, f"within the fitted range [{low:g}, {high:g}] (pass "
                f"out_of_range='clamp' to evaluate at the nearest valid value)")
    return lib.clip(x, low, high), outside


def _runaway_2014(t, mass, lib: ArrayLib):
    """Runaway-greenhouse Seff, linear in log10(mass) through the 0.1, 1 and 5 Me fits."""
    low, mid, high = (_polynomial(KOPPARAPU_2014_RUNAWAY_BY_MASS[m], t) for m in (0.1, 1.0, 5.0))
    x = lib.log10(mass)
    below = low + (x + 1.0) * (mid - low)  # log10(0.1) = -1
    above = mid + (x / math.log10(5.0)) * (high - mid)
    return lib.where(x < 0, below, above)


def habitable_zone_flux(teff, model: str = "kopparapu2014", planet_mass=1.0,
                        out_of_range: str = "raise") -> dict:
    """Effective flux (Earth units) at each habitable-zone limit for stars of `teff` (K).

    Returns {limit: Seff} ordered from the inner to the outer limit, arrays (or tensors) of the
    broadcast shape of `teff` and `planet_mass`, plus the clamp flags described in the module
    docstring when `out_of_range="clamp"`.
    """
    if model not in MODELS:
        raise DataError(f"unknown habitable-zone model {model!r}; choose one of "
                        f"{sorted(MODELS)}", field="model")
    if out_of_range not in OUT_OF_RANGE:
        raise DataError(f"out_of_range must be one of {OUT_OF_RANGE}, got {out_of_range!r}",
                        field="out_of_range")
    lib, (teff, mass) = as_arrays(teff, planet_mass)
    teff, mass = lib.broadcast(teff, mass)
    require(lib.isfinite(teff), teff, "teff", "finite")
    require_positive(mass, "planet_mass")
    teff, teff_clamped = _within(lib, teff, TEFF_RANGE_K, "teff", out_of_range)
    t = teff - TEFF_ORIGIN_K
    result = {}
    if model == "kopparapu2013":
        require(mass == 1.0, mass, "planet_mass",
                "1 Earth mass (the kopparapu2013 fits are for Earth-mass planets; use "
                "model='kopparapu2014' for other masses)")
        for limit, coefficients in KOPPARAPU_2013.items():
            result[limit] = lib.finish(_polynomial(coefficients, t))
        if out_of_range == "clamp":
            result["teff_clamped"] = lib.finish(teff_clamped)
        return result
    mass, mass_clamped = _within(lib, mass, MASS_RANGE_2014, "planet_mass", out_of_range)
    for limit, coefficients in KOPPARAPU_2014.items():
        if limit == "runaway_greenhouse":
            seff = _runaway_2014(t, mass, lib)
        else:
            seff = _polynomial(coefficients, t)
        result[limit] = lib.finish(seff)
    if out_of_range == "clamp":
        result["teff_clamped"] = lib.finish(teff_clamped)
        result["mass_clamped"] = lib.finish(mass_clamped)
    return result


def habitable_zone(teff, luminosity, model: str = "kopparapu2014", planet_mass=1.0,
                   out_of_range: str = "raise") -> dict:
    """Habitable-zone limits in AU around stars of `teff` (K) and `luminosity` (Lsun, linear).

    d = sqrt(L / Seff) for each limit of `habitable_zone_flux`: keys `recent_venus`,
    `runaway_greenhouse`, (`moist_greenhouse` for kopparapu2013), `maximum_greenhouse`,
    `early_mars`, plus the clamp flags with `out_of_range="clamp"`. Works on numpy arrays and
    torch tensors (same type, dtype and device out; differentiable).
    """
    lib, (teff, luminosity, mass) = as_arrays(teff, luminosity, planet_mass)
    teff, luminosity, mass = lib.broadcast(teff, luminosity, mass)
    require_positive(luminosity, "luminosity")
    flux = habitable_zone_flux(teff, model, mass, out_of_range)
    result = {}
    for key, value in flux.items():
        result[key] = value if key.endswith("_clamped") else lib.finish(
            lib.sqrt(luminosity / value))
    return result
