"""Which of a user's files belongs to which planet, and the optional labels table.

Rules (`python -m astrobio.data build --catalog ...`, README "Your own data"):

* Planets are the good rows of the catalogue; each is known by its `pl_name`.
* A name matches when both agree after lower-casing and dropping every character that is not
  a letter or a digit: "TRAPPIST-1 e", "trappist-1_e" and "TRAPPIST1e" are one name.
* A file in a modality folder (`--climate`, `--spectra`, `--metabolism`; the files directly
  inside it, by extension: `CLIMATE_SUFFIXES`, `SPECTRUM_SUFFIXES`, `METABOLISM_SUFFIXES`)
  belongs to the planet whose name matches its file name without the extension and without a
  JWST product suffix (`_x1d`, `_x1dints`). A JWST `x1d` FITS file whose name matches no
  planet belongs to the planet its TARGNAME header names, or, when TARGNAME names a host star
  (`hostname`) with exactly one planet in the catalogue, to that planet.
* A mapping CSV (`--mapping`, columns `file` and `planet`, optional `modality`; paths relative
  to the CSV's folder) assigns files explicitly, before and instead of the name rule; the
  modality follows from the extension unless the row gives it.
* One file per planet and modality. Two files matched by name to one planet are reported and
  neither is used; several spectrum files listed for one planet in the mapping CSV are pooled
  (inverse-variance weighted per wavelength bin, the same as binning all their points at once).
* A file that matches no planet, a file of an unknown type, and a folder inside a modality
  folder are reported by name; nothing else is affected.

Labels CSV (`--labels`): a `pl_name` (or `planet`) column and any of `habitable` (0/1, also
true/false, yes/no), `habitability_class` (a name of `schema.HABITABILITY_CLASSES` or its
index), `surface_temperature` (K, within `TEMPERATURE_RANGE_K`), `biosignature` (0/1), and
`split` (train/val/test, pins the planet's split). A blank cell is an unknown target. A row
naming a planet the catalogue lacks, a repeated planet, or a value out of range is reported
with the file, the line and the column; the rest of the row and of the file is kept.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from astrobio.data.format import SPLITS
from astrobio.errors import DataError, Problem
from astrobio.schema import HABITABILITY_CLASSES, TARGETS

CLIMATE_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
FITS_SUFFIXES = (".fits", ".fit", ".fits.gz")
TABLE_SUFFIXES = (".csv", ".txt", ".dat", ".ecsv", ".tbl")
SPECTRUM_SUFFIXES = FITS_SUFFIXES + TABLE_SUFFIXES
METABOLISM_SUFFIXES = (".xml", ".sbml", ".xml.gz", ".sbml.gz")
SUFFIXES = {"climate": CLIMATE_SUFFIXES, "spectrum": SPECTRUM_SUFFIXES,
            "graph": METABOLISM_SUFFIXES}
JWST_SUFFIXES = ("_x1dints", "_x1d")
TEMPERATURE_RANGE_K = (20.0, 5000.0)
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes"), ("0", "false", "no")
LABEL_COLUMNS = (*TARGETS, "split")


@dataclass
class Problems:
    """Collects problems; with `strict` the first one is raised as a `DataError`."""

    strict: bool = False
    found: list[Problem] = field(default_factory=list)

    def report(self, file, message: str, sample: str | None = None,
               field: str | None = None) -> None:
        problem = Problem(str(file), message, sample, field)
        if self.strict:
            raise DataError(f"{message} (--strict stops at the first problem)", file=str(file),
                            sample=sample, field=field)
        self.found.append(problem)


def name_key(name: str) -> str:
    """The form names are compared in: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def file_key(path: Path) -> str:
    """`name_key` of a file name without its extension(s) and JWST product suffix."""
    stem = path.name
    for suffix in sorted({s for group in SUFFIXES.values() for s in group}, key=len,
                         reverse=True):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    for suffix in JWST_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return name_key(stem)


def modality_of(path: Path) -> str | None:
    name = path.name.lower()
    return next((m for m, group in SUFFIXES.items() if name.endswith(group)), None)


@dataclass
class Catalogue:
    """The planets' names, keyed for matching, with their hosts."""

    planets: list[str]
    hosts: dict[str, str]  # planet -> hostname (where the CSV gives one)

    def __post_init__(self):
        self.by_key: dict[str, list[str]] = {}
        for planet in self.planets:
            self.by_key.setdefault(name_key(planet), []).append(planet)
        self.by_host: dict[str, list[str]] = {}
        for planet, host in self.hosts.items():
            self.by_host.setdefault(name_key(host), []).append(planet)

    def match(self, key: str) -> list[str]:
        return self.by_key.get(key, [])

    def match_host(self, key: str) -> list[str]:
        return self.by_host.get(key, [])


def read_hosts(path: Path) -> dict[str, str]:
    """pl_name -> hostname from a catalogue CSV ('#' lines skipped); empty without the column."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {row["pl_name"].strip(): (row.get("hostname") or "").strip()
            for row in csv.DictReader(lines)
            if (row.get("pl_name") or "").strip() and (row.get("hostname") or "").strip()}


def _fits_target(path: Path) -> str | None:
    from astropy.io import fits

    try:
        name = fits.getheader(path, 0).get("TARGNAME")
    except Exception:  # astropy raises OSError and others; the reader names the defect later
        return None
    return str(name).strip() or None if name is not None else None


def match_folder(folder: Path, modality: str, catalogue: Catalogue, problems: Problems,
                 taken: set[Path]) -> dict[str, list[Path]]:
    """planet -> its files of `modality` in `folder` by the name rules (files in `taken`,
    assigned by the mapping, skipped)."""
    if not folder.is_dir():
        raise DataError(f"no such {modality} folder", file=str(folder))
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.resolve() in taken:
            continue
        if path.is_dir():
            problems.report(path, "a folder inside the modality folder: files must lie "
                            f"directly in {folder} or be listed in a mapping CSV")
            continue
        if modality_of(path) != modality:
            problems.report(path, f"not a {modality} file (expected one of "
                            f"{', '.join(SUFFIXES[modality])})")
            continue
        planets = catalogue.match(file_key(path))
        how = "its file name"
        if not planets and path.name.lower().endswith(FITS_SUFFIXES):
            target = _fits_target(path)
            if target is not None:
                planets = catalogue.match(name_key(target))
                how = f"its TARGNAME {target!r}"
                if not planets and len(catalogue.match_host(name_key(target))) == 1:
                    planets = catalogue.match_host(name_key(target))
                    how = f"its TARGNAME {target!r}, the host of one catalogue planet"
        if len(planets) > 1:
            problems.report(path, f"{how} matches several planets ({', '.join(planets)}); "
                            "list the file in a mapping CSV")
        elif not planets:
            problems.report(path, f"matches no planet of the catalogue (compared as "
                            f"{file_key(path)!r}); rename it after its planet or list it in a "
                            "mapping CSV")
        else:
            found.setdefault(planets[0], []).append(path)
    for planet, paths in list(found.items()):
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            for path in paths:
                problems.report(path, f"two or more {modality} files for one planet ({names}); "
                                "none of them is used: keep one, or list them in a mapping "
                                "CSV (spectra listed there are pooled)", sample=planet,
                                field=modality)
            del found[planet]
    return found


def read_mapping(path: Path, catalogue: Catalogue,
                 problems: Problems) -> dict[str, dict[str, list[Path]]]:
    """modality -> planet -> files listed in a mapping CSV."""
    rows = _csv_rows(path)
    assigned: dict[str, dict[str, list[Path]]] = {}
    for line, row in rows:
        where = f"{path}:{line}"
        name, planet = (row.get("file") or "").strip(), (row.get("planet") or "").strip()
        if not name or not planet:
            problems.report(where, "needs a file and a planet", field="file")
            continue
        file = Path(name) if Path(name).is_absolute() else path.parent / name
        modality = (row.get("modality") or "").strip() or modality_of(file)
        if modality not in SUFFIXES:
            problems.report(where, f"cannot tell the modality of {name!r}; give a modality "
                            f"column ({', '.join(SUFFIXES)})", sample=planet, field="modality")
        elif planet not in catalogue.planets:
            problems.report(where, "names a planet the catalogue does not have", sample=planet,
                            field="planet")
        elif not file.is_file():
            problems.report(where, f"no such file {file}", sample=planet, field="file")
        else:
            assigned.setdefault(modality, {}).setdefault(planet, []).append(file)
    for modality in ("climate", "graph"):
        for planet, files in list(assigned.get(modality, {}).items()):
            if len(files) > 1:
                problems.report(path, f"lists {len(files)} {modality} files for one planet; "
                                "only spectra can be pooled; none is used", sample=planet,
                                field=modality)
                del assigned[modality][planet]
    return assigned


def _csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV with a header; '#' lines and blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the file: {err}", file=str(path)) from None
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise DataError("no header line", file=str(path))
    try:
        parsed = list(csv.reader(line for _, line in numbered))
    except csv.Error as err:
        raise DataError(f"not valid CSV: {err}", file=str(path)) from None
    header = [h.strip() for h in parsed[0]]
    if len(set(header)) != len(header):
        raise DataError(f"repeated column names in the header {header}", file=str(path))
    return [(n, dict(zip(header, (c.strip() for c in cells))))
            for (n, _), cells in zip(numbered[1:], parsed[1:])]


def _binary(text: str) -> int:
    word = text.lower()
    if word in TRUE_WORDS:
        return 1
    if word in FALSE_WORDS:
        return 0
    raise ValueError(f"{text!r} is not 0/1 (or true/false, yes/no)")


def _class(text: str) -> int:
    names = [c.lower() for c in HABITABILITY_CLASSES]
    if text.lower() in names:
        return names.index(text.lower())
    if text.isdigit() and int(text) < len(HABITABILITY_CLASSES):
        return int(text)
    raise ValueError(f"{text!r} is none of {HABITABILITY_CLASSES} nor an index 0-"
                     f"{len(HABITABILITY_CLASSES) - 1}")


def _temperature(text: str) -> float:
    value = float(text)
    low, high = TEMPERATURE_RANGE_K
    if not low <= value <= high:
        raise ValueError(f"{text} K is outside the plausible [{low:g}, {high:g}] K (kelvin, "
                         "not Celsius?)")
    return value


def _split(text: str) -> str:
    if text not in SPLITS:
        raise ValueError(f"{text!r} is not one of {SPLITS}")
    return text


PARSERS: dict[str, Callable[[str], object]] = {
    "habitable": _binary, "habitability_class": _class, "surface_temperature": _temperature,
    "biosignature": _binary, "split": _split}


@dataclass
class Labels:
    """A planet's known targets and pinned split, with the line they came from."""

    line: str
    targets: dict[str, object]
    split: str | None


def read_labels(path: Path, catalogue: Catalogue, problems: Problems) -> dict[str, Labels]:
    """planet -> its labels (see the module docstring)."""
    rows = _csv_rows(path)
    columns = set(rows[0][1]) if rows else set()
    planet_column = next((c for c in ("pl_name", "planet") if c in columns), None)
    if rows and planet_column is None:
        raise DataError(f"no pl_name (or planet) column among {sorted(columns)}",
                        file=str(path), field="pl_name")
    for column in sorted(columns - {*LABEL_COLUMNS, "pl_name", "planet"}):
        problems.report(path, f"unknown column, ignored; known: {list(LABEL_COLUMNS)}",
                        field=column)
    labels: dict[str, Labels] = {}
    for line, row in rows:
        where, planet = f"{path}:{line}", row[planet_column]
        if planet not in catalogue.planets:
            problems.report(where, "names a planet the catalogue does not have; row ignored",
                            sample=planet or None, field=planet_column)
            continue
        if planet in labels:
            problems.report(where, f"repeats the planet of {labels[planet].line}; row ignored",
                            sample=planet, field=planet_column)
            continue
        values: dict[str, object] = {}
        for column in LABEL_COLUMNS:
            text = row.get(column, "")
            if text == "" or text.lower() == "nan":
                continue
            try:
                values[column] = PARSERS[column](text)
            except ValueError as err:
                problems.report(where, f"{err}; this value left unknown", sample=planet,
                                field=column)
        split = values.pop("split", None)
        labels[planet] = Labels(where, values, split)
    return labels
