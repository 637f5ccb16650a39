"""NASA Exoplanet Archive `pscomppars` CSV -> `PlanetSample`s with params and text present.

The archive's units are kept except `st_lum`, which the archive gives as log10(L/Lsun) and the
sample stores linear (`schema.PARAM_NAMES`). A blank or NaN cell is missing; missing values are
derived where physics allows and otherwise make the row bad:

    st_teff, st_rad, st_lum   any one from the other two (Stefan–Boltzmann)
    st_mass                   from st_logg (cgs) and st_rad: M = 10^(logg - 4.438) R^2
    pl_orbsmax                from pl_orbper (days) and st_mass (Kepler's third law)
    pl_rade, pl_bmasse        one from the other (Chen & Kipping 2017 mean relation; giant
                              planets' masses do not follow from their radii)
    pl_orbeccen               0 (circular) when blank
    pl_insol                  L / (a^2 sqrt(1 - e^2)) when blank

Values outside `PLAUSIBLE_RANGES` (the sample's `schema.PARAM_RANGES` and the ranges of the
columns only used to derive them) are errors (most likely wrong units), and so is an `st_lum`
that matches Stefan–Boltzmann only when read as linear L/Lsun (more than 0.5 dex off as log10,
within 0.2 dex as linear). The file is UTF-8, a byte-order mark allowed; '#' comment lines come
before the header (a '#' line among the rows is reported as a bad row: a commented-out planet
is not silently dropped), and a column name may appear once. Every bad row is reported:
`on_error="raise"` (default) raises one `DataError` listing all of them (its file, sample and
field are those of the first); `on_error="skip"` warns with the same list and returns the
good rows. Labels are unknown (`has_targets` False).

The text is written by the template family synthetic planets use
(`astrobio.data.description`) from the values the row gives, never from derived ones, so it
states only what was measured.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from astrobio import physics
from astrobio.config import DataConfig
from astrobio.data.description import describe, name_rng
from astrobio.data.sample import PlanetSample
from astrobio.errors import DataError
from astrobio.schema import CATALOGUE_MODALITIES, PARAM_NAMES, PARAM_RANGES

NUMERIC_COLUMNS = (*PARAM_NAMES, "st_logg", "pl_orbper")
PLAUSIBLE_RANGES = {  # after conversion to the sample's units
    **PARAM_RANGES,
    "st_logg": (-1.0, 9.0),  # log10 cm s^-2
    "pl_orbper": (1e-3, 1e9),  # days
}
# description fact -> archive column
TEXT_FACTS = {"teff": "st_teff", "st_rad": "st_rad", "st_mass": "st_mass", "st_lum": "st_lum",
              "period": "pl_orbper", "a": "pl_orbsmax", "e": "pl_orbeccen", "radius": "pl_rade",
              "mass": "pl_bmasse", "insolation": "pl_insol"}
SOLAR_LOGG_CGS = 4.438
ON_ERROR = ("raise", "skip")


class _RowError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _number(value: str) -> float:
    return math.nan if value.strip() == "" else float(value)


def describe_planet(name: str, measured: Mapping[str, float], host: str | None = None) -> str:
    """A planet's description from its `measured` values (archive column names, the sample's
    units; blank or NaN values are left out), in the template family of the synthetic
    planets (`astrobio.data.description`), phrased the same way every time."""
    facts = {"name": name, "host": host}
    for fact, column in TEXT_FACTS.items():
        value = measured.get(column)
        if value is not None and math.isfinite(value):
            facts[fact] = float(value)
    return describe(facts, name_rng(name))


def _physics(field: str, function, *args) -> float:
    try:
        return float(function(*args))
    except DataError as err:
        raise _RowError(field, f"cannot derive {field}: {err}") from None


def _check_range(values: dict[str, float], field: str) -> None:
    value = values[field]
    low, high = PLAUSIBLE_RANGES[field]
    if not math.isnan(value) and not low <= value <= high:
        raise _RowError(field, f"{value:.6g} is outside the plausible range [{low:g}, {high:g}]"
                        f" (wrong units?)")


def _stellar(v: dict[str, float], log_lum: float) -> None:
    """Fill st_teff, st_rad, st_lum (linear) and st_mass in place."""
    for field in ("st_teff", "st_rad", "st_mass", "st_logg"):
        _check_range(v, field)
    if not math.isnan(log_lum):
        low, high = (math.log10(x) for x in PLAUSIBLE_RANGES["st_lum"])
        if not low <= log_lum <= high:
            raise _RowError("st_lum", f"{log_lum:.6g} is outside the plausible log10(L/Lsun) "
                            f"range [{low:g}, {high:g}] (wrong units?)")
        v["st_lum"] = 10.0**log_lum
        if not (math.isnan(v["st_teff"]) or math.isnan(v["st_rad"])) and log_lum > 0:
            expected = math.log10(physics.stellar_luminosity(v["st_teff"], v["st_rad"]))
            if abs(log_lum - expected) > 0.5 and abs(math.log10(log_lum) - expected) < 0.2:
                raise _RowError("st_lum", f"{log_lum:.6g} matches the star's Teff and radius "
                                f"only as linear L/Lsun; the archive column is log10(L/Lsun)")
    known = [k for k in ("st_teff", "st_rad", "st_lum") if not math.isnan(v[k])]
    if len(known) < 2:
        missing = [k for k in ("st_teff", "st_rad", "st_lum") if k not in known]
        raise _RowError(missing[0], f"missing; need two of st_teff, st_rad, st_lum "
                        f"(have {known or 'none'})")
    if math.isnan(v["st_lum"]):
        v["st_lum"] = _physics("st_lum", physics.stellar_luminosity, v["st_teff"], v["st_rad"])
    elif math.isnan(v["st_rad"]):
        v["st_rad"] = _physics("st_rad", physics.stellar_radius, v["st_teff"], v["st_lum"])
    elif math.isnan(v["st_teff"]):
        v["st_teff"] = _physics("st_teff", physics.stellar_teff, v["st_lum"], v["st_rad"])
    if math.isnan(v["st_mass"]):
        if math.isnan(v["st_logg"]):
            raise _RowError("st_mass", "missing, and no st_logg to derive it from")
        v["st_mass"] = 10.0 ** (v["st_logg"] - SOLAR_LOGG_CGS) * v["st_rad"] ** 2
    for field in ("st_teff", "st_rad", "st_lum", "st_mass"):  # derived values too
        _check_range(v, field)


def _planetary(v: dict[str, float]) -> None:
    """Fill the planet's radius, mass, orbit and insolation in place."""
    for field in ("pl_rade", "pl_bmasse", "pl_orbsmax", "pl_orbper", "pl_orbeccen",
                  "pl_insol"):
        _check_range(v, field)
    if math.isnan(v["pl_rade"]) and math.isnan(v["pl_bmasse"]):
        raise _RowError("pl_rade", "missing, and so is pl_bmasse; need at least one")
    if math.isnan(v["pl_rade"]):
        v["pl_rade"] = _physics("pl_rade", physics.planet_radius_from_mass, v["pl_bmasse"])
    elif math.isnan(v["pl_bmasse"]):
        v["pl_bmasse"] = _physics("pl_bmasse", physics.planet_mass_from_radius, v["pl_rade"])
    if math.isnan(v["pl_orbsmax"]):
        if math.isnan(v["pl_orbper"]):
            raise _RowError("pl_orbsmax", "missing, and no pl_orbper to derive it from")
        v["pl_orbsmax"] = _physics("pl_orbsmax", physics.semi_major_axis_from_period,
                                   v["pl_orbper"], v["st_mass"])
    if math.isnan(v["pl_orbeccen"]):
        v["pl_orbeccen"] = 0.0
    if math.isnan(v["pl_insol"]):
        v["pl_insol"] = _physics("pl_insol", physics.insolation, v["st_lum"], v["pl_orbsmax"],
                                 v["pl_orbeccen"])
    for field in ("pl_rade", "pl_bmasse", "pl_orbsmax", "pl_insol"):
        _check_range(v, field)


def _row_sample(row: dict[str, str], data_config: DataConfig) -> PlanetSample:
    values = {}
    for column in NUMERIC_COLUMNS:
        text = row.get(column, "")
        try:
            values[column] = _number(text)
        except ValueError:
            raise _RowError(column, f"{text!r} is not a number") from None
        if math.isinf(values[column]):
            raise _RowError(column, f"{text!r} is infinite")
    log_lum, values["st_lum"] = values["st_lum"], math.nan
    measured = dict(values)  # before anything is derived
    _stellar(values, log_lum)
    _planetary(values)
    measured["st_lum"] = values["st_lum"] if not math.isnan(log_lum) else math.nan
    name = row["pl_name"].strip()
    text = describe_planet(name, measured, host=row.get("hostname", "").strip() or None)
    sample = PlanetSample.blank(name, data_config.climate_shape, data_config.spectrum_bins)
    params = np.array([values[k] for k in PARAM_NAMES], np.float32)
    sample = dataclasses.replace(sample, params=params, text=text)
    for modality in CATALOGUE_MODALITIES:
        sample = sample.with_present(modality)
    return sample


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of every data row; blank lines and the '#' comment
    lines before the header skipped ('#' lines after it are rows, reported as bad)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the file: {err}", file=str(path)) from None
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    while numbered and numbered[0][1].lstrip().startswith("#"):
        numbered.pop(0)
    if not numbered:
        raise DataError("no header line (only comments or nothing)", file=str(path))
    try:
        parsed = list(csv.reader(line for _, line in numbered))
    except csv.Error as err:
        raise DataError(f"not valid CSV: {err}", file=str(path)) from None
    header = [h.strip() for h in parsed[0]]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(f"column(s) {repeated} appear more than once in the header; which one "
                        "holds the value is ambiguous", file=str(path), field=repeated[0])
    return header, [(n, cells) for (n, _), cells in zip(numbered[1:], parsed[1:])]


def _check_columns(header: list[str], path: Path) -> None:
    """Raise naming the first column whose absence leaves every row underivable."""
    have = set(header)
    needs = (
        ("pl_name", "pl_name", "pl_name" in have),
        ("st_teff", "two of st_teff, st_rad, st_lum",
         sum(c in have for c in ("st_teff", "st_rad", "st_lum")) >= 2),
        ("st_mass", "st_mass, or st_logg with st_rad",
         "st_mass" in have or {"st_logg", "st_rad"} <= have),
        ("pl_orbsmax", "pl_orbsmax, or pl_orbper with st_mass",
         "pl_orbsmax" in have or "pl_orbper" in have),
        ("pl_rade", "pl_rade or pl_bmasse", bool({"pl_rade", "pl_bmasse"} & have)),
    )
    for field, need, satisfied in needs:
        if not satisfied:
            raise DataError(f"missing column(s): need {need}; the header has {header}",
                            file=str(path), field=field)


def read_exoplanet_archive(path: str | Path, data_config: DataConfig | None = None,
                           on_error: str = "raise") -> list[PlanetSample]:
    """One `PlanetSample` per row of a `pscomppars` CSV (see the module docstring)."""
    if on_error not in ON_ERROR:
        raise DataError(f"on_error must be one of {ON_ERROR}, got {on_error!r}",
                        field="on_error")
    data_config = data_config or DataConfig()
    path = Path(path)
    header, rows = _read_rows(path)
    _check_columns(header, path)
    samples: list[PlanetSample] = []
    problems: list[tuple[str, str, str]] = []  # (sample, field, message)
    seen: dict[str, int] = {}
    for line, cells in rows:
        name = cells[header.index("pl_name")].strip() if len(cells) == len(header) else ""
        label = name or f"line {line}"
        if cells and cells[0].lstrip().startswith("#"):
            problems.append((label, "pl_name", f"line {line} starts with '#' after the header: "
                             "comments belong before it (remove the line, or the '#' to keep "
                             "the planet)"))
            continue
        if len(cells) != len(header):
            problems.append((label, "pl_name", f"line {line} has {len(cells)} field(s), the "
                             f"header {len(header)} (truncated file?)"))
            continue
        if not name:
            problems.append((label, "pl_name", f"line {line}: blank planet name"))
            continue
        if name in seen:
            problems.append((name, "pl_name", f"line {line} repeats the planet of line "
                             f"{seen[name]}"))
            continue
        seen[name] = line
        try:
            samples.append(_row_sample(dict(zip(header, cells)), data_config))
        except _RowError as err:
            problems.append((name, err.field, f"line {line}: {err}"))
    if problems:
        listing = "\n".join(f"  {s!r}, {f!r}: {m}" for s, f, m in problems)
        message = f"{len(problems)} bad row(s) of {len(rows)}:\n{listing}"
        if on_error == "raise":
            raise DataError(message, file=str(path), sample=problems[0][0],
                            field=problems[0][1])
        warnings.warn(f"{path}: skipped {message}", stacklevel=2)
    return samples


def bundled_catalogue() -> Path:
    """The curated catalogue of real planets shipped with the package, in this format
    (`astrobio/resources/exoplanets.csv`; the sources of its values in its comment lines)."""
    from importlib import resources

    return Path(str(resources.files("astrobio") / "resources" / "exoplanets.csv"))
