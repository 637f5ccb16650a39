"""The one text template family: a planet's description from what was observed of it, for
synthetic planets and catalogue (real) planets alike.

`describe(facts, rng)` writes one sentence per fact present in `facts`, each in one of a few
phrasings, some as a rounded number and some only as a word ("a cool red dwarf",
"super-Earth-sized"), in an order `rng` picks. Facts (every one optional but `name`):

    name, host            the planet's and its star's names
    teff, st_rad, st_mass, st_lum    the star (K, Rsun, Msun, Lsun)
    period, a, e          the orbit (days, AU)
    radius, mass          the planet (Earth units)
    insolation            S / S_earth
    j_mag                 the host's J magnitude
    active                the host flares often (photometric monitoring)
    spectrum              what a transmission spectrum showed: "flat", "envelope" or
                          "secondary" (a heavy atmosphere's features)
    detections            [(gas, "detected" | "tentative")] from that spectrum
    thermal               a surface temperature retrieved from thermal emission (K)

Only observations and catalogue values appear: never a habitable-zone verdict, a derived
density or equilibrium temperature, nor anything about habitability or life. Catalogue planets
are described with `rng = name_rng(name)`, so a planet's text never changes.
"""

from __future__ import annotations

import zlib

import numpy as np

from astrobio.data.synthetic.stars import spectral_type
from astrobio.data.synthetic.water import KELVIN_FREEZE, boiling_temperature

GAS_NAMES = {"H2O": "water vapour", "CO2": "carbon dioxide", "CH4": "methane",
             "O2": "molecular oxygen", "O3": "ozone", "NH3": "ammonia", "CO": "carbon monoxide",
             "N2O": "nitrous oxide"}
BOILING_1_BAR_K = float(boiling_temperature(1.01325))


def name_rng(name: str) -> np.random.Generator:
    """The phrasing stream of a catalogue planet: fixed by its name."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _size_word(radius: float) -> str:
    if radius < 0.8:
        return "smaller than Earth"
    if radius < 1.25:
        return "roughly Earth-sized"
    if radius < 2.0:
        return "super-Earth-sized"
    if radius < 6.0:
        return "sub-Neptune-sized"
    return "a giant planet"


def _star(f: dict, rng) -> str:
    teff = f.get("teff")
    host = f.get("host")
    if teff is None:
        return host or "its star"
    letter = spectral_type(teff)
    word = {"M": "a cool red dwarf", "K": "an orange K dwarf", "G": "a Sun-like G star",
            "F": "a hot F-type star"}.get(letter, f"a hot {letter}-type star")
    article = "an" if letter in "AFMO" else "a"
    phrase = _pick(rng, (word, f"{article} {letter}-type star with Teff = {teff:,.0f} K",
                         f"{article} {letter} dwarf (effective temperature about "
                         f"{round(teff, -1):,.0f} K)", f"a {teff:,.0f} K {letter} star"))
    return f"{host}, {phrase}" if host else phrase


def _stellar_facts(f: dict, rng) -> list[str]:
    parts = [f"{label} {f[key]:.3g} {unit}" for key, label, unit in
             (("st_rad", "radius", "Rsun"), ("st_mass", "mass", "Msun"),
              ("st_lum", "luminosity", "Lsun")) if f.get(key) is not None]
    if not parts:
        return []
    return [_pick(rng, ("The star has " + ", ".join(parts) + ".",
                        "Host star: " + "; ".join(parts) + "."))]


def _thermal(kelvin: float, rng) -> str:
    if kelvin < KELVIN_FREEZE:
        verdict = "below the freezing point of water"
    elif kelvin < BOILING_1_BAR_K:
        verdict = "between the freezing and boiling points of water at one bar"
    else:
        verdict = "above the boiling point of water at one bar"
    return _pick(rng, (f"Thermal emission puts the surface near {kelvin:.0f} K, {verdict}.",
                       f"The surface temperature retrieved from its thermal emission is about "
                       f"{kelvin:.0f} K, {verdict}."))


SPECTRUM = {
    "flat": ("The transmission spectrum is flat at the precision reached.",
             "No absorption features are seen in transmission."),
    "envelope": ("Its transmission spectrum shows large features, as a hydrogen-rich envelope "
                 "would.",),
    "secondary": ("Its transmission spectrum shows small features, as a heavy atmosphere "
                  "would.",),
}


def _facts(f: dict, rng) -> list[str]:
    out = _stellar_facts(f, rng)
    if f.get("period") is not None:
        out.append(_pick(rng, (f"Its orbital period is {f['period']:.1f} days.",
                               f"It completes an orbit every {f['period']:.3g} days.")))
    if f.get("a") is not None:
        out.append(f"The semi-major axis is {f['a']:.3f} AU.")
    if f.get("radius") is not None:
        out.append(_pick(rng, (f"The radius is {f['radius']:.2f} Earth radii.",
                               f"The planet is {_size_word(f['radius'])}.")))
    if f.get("mass") is not None:
        out.append(_pick(rng, (f"A mass of {f['mass']:.1f} Earth masses has been measured.",
                               f"Its mass is about {f['mass']:.2g} M_earth.")))
    if f.get("insolation") is not None:
        out.append(_pick(rng, (f"It receives {f['insolation']:.2f} times the flux Earth gets "
                               "from the Sun.", f"Instellation: {f['insolation']:.3g} S_earth.")))
    if f.get("e") is not None:
        out.append("The orbit is nearly circular." if f["e"] < 0.1 else
                   f"The orbit is eccentric (e = {f['e']:.2f}).")
    if f.get("j_mag") is not None:
        out.append(f"The host has J = {f['j_mag']:.1f}.")
    if f.get("active"):
        out.append("The host star shows frequent flares.")
    if f.get("spectrum") in SPECTRUM:
        out.append(_pick(rng, SPECTRUM[f["spectrum"]]))
    for level, template in (("detected", "Absorption by {} is detected."),
                            ("tentative", "Tentative detection of {}.")):
        gases = [GAS_NAMES[g] for g, seen in f.get("detections", ()) if seen == level]
        if gases:
            out.append(template.format(", ".join(gases)))
    if f.get("thermal") is not None:
        out.append(_thermal(f["thermal"], rng))
    return out


def describe(facts: dict, rng: np.random.Generator) -> str:
    """A description of one planet from `facts` (module docstring)."""
    name = facts["name"]
    opening = _pick(rng, ("{} orbits {}.", "The planet {} circles {}.", "{}: host is {}."))
    opening = opening.format(name, _star(facts, rng))
    sentences = _facts(facts, rng)
    order = rng.permutation(len(sentences))
    return " ".join([opening, *(sentences[i] for i in order)])
