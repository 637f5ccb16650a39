"""A dataset from a user's own files: a NASA Exoplanet Archive catalogue, and any of climate
model output (NetCDF), transit spectra (JWST `x1d` FITS or tables), metabolic models (SBML)
and a labels table.

    python -m astrobio.data build --catalog pscomppars.csv [--climate DIR] [--spectra DIR]
        [--metabolism DIR] [--labels labels.csv] [--mapping files.csv] [--run RUN] --out DIR

Each planet of the catalogue becomes one sample with its parameters and text; each other
modality is read from the file matched to it (`astrobio.data.matching` states the rules) by
the readers in `astrobio.data.readers`, which regrid datacubes onto the configured grid
(`readers.climate_grid`) and bin spectra onto the configured wavelength grid with their errors
propagated; a planet without a file lacks that modality (`present` False). Labels are optional
and partial. Every unreadable or unmatched file, and every bad labels row, is reported by name
and left out, and the build goes on (`strict=True` stops at the first). Splits: the
catalogue's planets in a seeded permutation cut by the config's fractions
(`build.split_indices`), unless the labels table pins a planet's split. Files are read one
planet at a time while the dataset is written, so memory does not grow with the number of
files.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrobio.config import DataConfig
from astrobio.data.build import split_indices
from astrobio.data.format import SPLITS, read_card
from astrobio.data.matching import (
    FITS_SUFFIXES,
    Catalogue,
    Problems,
    match_folder,
    read_hosts,
    read_labels,
    read_mapping,
)
from astrobio.data.readers import (
    climate_grid,
    read_climate_netcdf,
    read_exoplanet_archive,
    read_jwst_x1d,
    read_sbml,
    read_transit_table,
)
from astrobio.data.readers.climate_netcdf import DIM_NAMES
from astrobio.data.sample import PlanetSample
from astrobio.data.writer import write_dataset
from astrobio.errors import DataError
from astrobio.schema import MODALITIES, TARGETS

FIELDS = {"climate": ("climate",), "graph": ("node_features", "edge_index", "edge_attr"),
          "spectrum": ("spectrum", "spectrum_err", "spectrum_mask")}
FOLDER_OPTIONS = {"climate": "--climate", "spectrum": "--spectra", "graph": "--metabolism"}


@dataclass
class BuildResult:
    out: Path
    card: dict
    problems: list


def pool_spectra(samples: list[PlanetSample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance weighted mean per bin of binned spectra (equal to binning all their
    points at once): (spectrum, spectrum_err, spectrum_mask)."""
    weight = np.stack([np.where(s.spectrum_mask, 1.0 / np.square(np.where(
        s.spectrum_mask, s.spectrum_err, 1.0).astype(np.float64)), 0.0) for s in samples])
    depth = np.stack([s.spectrum.astype(np.float64) for s in samples])
    total = weight.sum(0)
    mask = total > 0
    spectrum = np.divide((weight * depth).sum(0), total, out=np.zeros_like(total), where=mask)
    error = np.divide(1.0, np.sqrt(total), out=np.zeros_like(total), where=mask)
    return spectrum.astype(np.float32), error.astype(np.float32), mask


def grid_coverage(path: Path, config: DataConfig) -> list[str]:
    """What the regridding cannot fill from `path`'s own grid: latitudes short of the target
    grid's (held at the nearest source row) or longitudes with a hole (a regional model)."""
    import xarray as xr

    try:
        with xr.open_dataset(path, decode_times=False) as ds:
            coords = {role: next((ds[n].values for n in names if n in ds.coords), None)
                      for role, names in DIM_NAMES.items() if role in ("lat", "lon")}
    except Exception:  # the reader names an unreadable file
        return []
    notes = []
    _, lat, _ = climate_grid(config)
    source_lat = coords["lat"]
    if source_lat is not None and source_lat.size > 1:
        step = np.abs(np.diff(np.sort(source_lat))).max()
        if source_lat.min() - step > lat.min() or source_lat.max() + step < lat.max():
            notes.append(f"latitudes span {source_lat.min():.4g} to {source_lat.max():.4g} deg "
                         f"only; the datacube repeats the nearest source row toward the poles")
    source_lon = coords["lon"]
    if source_lon is not None and source_lon.size > 1:
        ordered = np.sort(np.unique(source_lon % 360.0))
        gaps = np.diff(np.concatenate([ordered, [ordered[0] + 360.0]]))
        if gaps.max() > 2.0 * np.median(gaps):
            notes.append(f"longitudes leave a {gaps.max():.4g} deg hole (a regional model?); "
                         "the datacube interpolates across it")
    return notes


class _Assembler:
    """Reads each planet's files and joins them onto its catalogue sample."""

    def __init__(self, config: DataConfig, files: dict[str, dict[str, list[Path]]],
                 labels: dict, problems: Problems, spectrum_units: str):
        self.config, self.files, self.labels = config, files, labels
        self.problems, self.spectrum_units = problems, spectrum_units

    def read(self, modality: str, path: Path, planet: str) -> PlanetSample | None:
        config = self.config
        try:
            if modality == "climate":
                for note in grid_coverage(path, config):
                    self.problems.report(path, note, sample=planet, field="climate")
                return read_climate_netcdf(path, config, planet_id=planet)
            if modality == "graph":
                return read_sbml(path, config, planet_id=planet)
            if path.name.lower().endswith(FITS_SUFFIXES):
                return read_jwst_x1d(path, config, planet_id=planet)
            return read_transit_table(path, config, planet_id=planet, units=self.spectrum_units)
        except DataError as err:
            self.problems.report(path, err.message, sample=planet, field=err.field)
            return None

    def sample(self, base: PlanetSample) -> PlanetSample:
        planet = base.planet_id
        sample = base
        for modality, fields in FIELDS.items():
            read = [s for s in (self.read(modality, path, planet)
                                for path in self.files.get(modality, {}).get(planet, []))
                    if s is not None]
            if not read:
                continue
            if modality == "spectrum" and len(read) > 1:
                values = dict(zip(fields, pool_spectra(read), strict=True))
            else:
                values = {f: getattr(read[0], f) for f in fields}
            sample = dataclasses.replace(sample, **values).with_present(modality)
        if planet in self.labels:
            targets = self.labels[planet].targets
            sample = dataclasses.replace(sample, **targets, has_targets=bool(targets))
        return sample

    def samples(self, catalogue: list[PlanetSample]) -> Iterator[PlanetSample]:
        for base in catalogue:
            yield self.sample(base)


def _catalogue_samples(path: Path, config: DataConfig, problems: Problems) -> list:
    if problems.strict:
        return read_exoplanet_archive(path, config, on_error="raise")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = read_exoplanet_archive(path, config, on_error="skip")
    for warning in caught:
        problems.report(path, str(warning.message).removeprefix(f"{path}: "))
    if not samples:
        raise DataError("no good planet row in the catalogue", file=str(path))
    return samples


def build_from_files(catalog: str | Path, out: str | Path, config: DataConfig, *,
                     climate: str | Path | None = None, spectra: str | Path | None = None,
                     metabolism: str | Path | None = None, labels: str | Path | None = None,
                     mapping: str | Path | None = None, tokenizer=None, strict: bool = False,
                     overwrite: bool = False, progress: bool = True,
                     spectrum_units: str = "ppm", preset: str | None = None) -> BuildResult:
    """Build the dataset at `out` (see the module docstring); returns it with its card and the
    problems reported. `tokenizer` as in `write_dataset`; `spectrum_units` is the depth unit
    of spectrum tables (ppm, percent or fraction)."""
    catalog = Path(catalog)
    problems = Problems(strict)
    base = _catalogue_samples(catalog, config, problems)
    catalogue = Catalogue([s.planet_id for s in base], read_hosts(catalog))
    files: dict[str, dict[str, list[Path]]] = {}
    if mapping is not None:
        files = read_mapping(Path(mapping), catalogue, problems)
    taken = {p.resolve() for by_planet in files.values() for paths in by_planet.values()
             for p in paths}
    for modality, folder in (("climate", climate), ("spectrum", spectra),
                             ("graph", metabolism)):
        if folder is None:
            continue
        for planet, paths in match_folder(Path(folder), modality, catalogue, problems,
                                          taken).items():
            if planet in files.get(modality, {}):
                for path in paths:
                    problems.report(path, "the mapping CSV already gives this planet's "
                                    f"{modality} file; not used", sample=planet,
                                    field=modality)
            else:
                files.setdefault(modality, {})[planet] = paths
    table = read_labels(Path(labels), catalogue, problems) if labels is not None else {}

    order = split_indices(len(base), config.val_fraction, config.test_fraction, config.seed)
    split = {base[i].planet_id: name for name in SPLITS for i in order[name]}
    split.update({planet: row.split for planet, row in table.items() if row.split})
    sources = {s.planet_id: {"catalog": catalog.name} for s in base}
    for modality, by_planet in files.items():
        for planet, paths in by_planet.items():
            sources[planet][modality] = [str(p) for p in paths]
    for planet, row in table.items():
        sources[planet]["labels"] = row.line
    source = {"kind": "files", "catalog": str(catalog),
              **{option.removeprefix("--"): None if folder is None else str(folder)
                 for option, folder in (("--climate", climate), ("--spectra", spectra),
                                        ("--metabolism", metabolism), ("--labels", labels),
                                        ("--mapping", mapping))},
              # filled while the files are read; the card is written after the last planet
              "problems": []}
    assembler = _Assembler(config, files, table, problems, spectrum_units)

    def stream() -> Iterator[PlanetSample]:
        yield from assembler.samples(base)
        source["problems"] = [str(p) for p in problems.found]

    write_dataset(stream(), out, config, split=split, tokenizer=tokenizer,
                  overwrite=overwrite, progress=progress, total=len(base), preset=preset,
                  source=source, sources=sources)
    return BuildResult(Path(out), read_card(out), list(problems.found))


def summary_table(card: dict) -> str:
    """How many planets have each modality and target, per split and in all."""
    splits = card["splits"]
    rows = [("planets", {s: splits[s]["count"] for s in SPLITS})]
    rows += [(m, {s: splits[s]["present"][m] for s in SPLITS}) for m in MODALITIES]
    rows += [(t, {s: splits[s]["targets"][t] for s in SPLITS}) for t in TARGETS]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'':<{width}}  {'all':>6} " + " ".join(f"{s:>6}" for s in SPLITS)]
    for name, counts in rows:
        lines.append(f"{name:<{width}}  {sum(counts.values()):>6} "
                     + " ".join(f"{counts[s]:>6}" for s in SPLITS))
    return "\n".join(lines)
