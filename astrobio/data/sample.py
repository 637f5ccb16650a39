"""`PlanetSample`: one planet, every modality as numpy arrays, and its validation."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np

from astrobio.errors import DataError
from astrobio.schema import (
    CLIMATE_RANGES,
    EDGE_FEATURE_RANGES,
    HABITABILITY_CLASSES,
    MODALITIES,
    N_EDGE_FEATURES,
    N_NODE_FEATURES,
    NODE_FEATURE_RANGES,
    PARAM_NAMES,
    PARAM_RANGES,
    SPECTRUM_ERR_RANGE_PPM,
    SPECTRUM_RANGE_PPM,
    SURFACE_TEMPERATURE_RANGE_K,
)

UNKNOWN_LABEL = -1


@functools.cache
def _absent_climate(shape: tuple[int, int, int, int]) -> np.ndarray:
    """One read-only zero cube per shape, shared by every sample without a climate (a
    catalogue of 100,000 planets would otherwise hold 100,000 empty cubes)."""
    cube = np.zeros(shape, np.float32)
    cube.flags.writeable = False
    return cube


def _out_of_range(field: str, columns: np.ndarray,
                  ranges: dict[str, tuple[float, float]]) -> list[tuple[str, str]]:
    """(field, message) for each of `columns` [C, n] (named by `ranges`, in order) holding
    values outside its range."""
    found = []
    for name, values, (low, high) in zip(ranges, columns, ranges.values(), strict=True):
        outside = (values < low) | (values > high)
        if outside.any():
            found.append((field, f"{int(outside.sum())} value(s) of {name} outside its "
                          f"physical range [{low:g}, {high:g}] (from {values[outside].min():.4g}"
                          f" to {values[outside].max():.4g}; wrong units or a corrupt file?)"))
    return found


@dataclass
class PlanetSample:
    """One planet. A missing modality is zeros of the right shape with `present` False.

    climate        float32 [V, Z, H, W]  channels as `schema.CLIMATE_VARIABLES`
    node_features  float32 [N, F]        metabolites
    edge_index     int64   [2, E]        row 0 source, row 1 destination (reaction links)
    edge_attr      float32 [E, Fe]
    spectrum       float32 [L]           transit depth in ppm on `schema.wavelength_grid(L)`
    spectrum_err   float32 [L]           1-sigma uncertainty, ppm
    spectrum_mask  bool    [L]           True where the bin was observed
    params         float32 [P]           as `schema.PARAM_NAMES`
    text           str                   a description; `input_ids` is its tokenisation
    present        bool    [M]           as `schema.MODALITIES`
    provenance     dict or None          a synthetic planet's metadata (`synthetic.generator`)
    Labels are `UNKNOWN_LABEL` (and `has_targets` False) for planets whose truth is unknown.
    """

    planet_id: str
    climate: np.ndarray
    node_features: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray
    spectrum: np.ndarray
    spectrum_err: np.ndarray
    spectrum_mask: np.ndarray
    params: np.ndarray
    text: str
    present: np.ndarray
    habitable: int = UNKNOWN_LABEL
    habitability_class: int = UNKNOWN_LABEL
    surface_temperature: float = 0.0
    biosignature: int = UNKNOWN_LABEL
    has_targets: bool = False
    input_ids: np.ndarray | None = field(default=None, repr=False)
    provenance: dict | None = field(default=None, repr=False)

    @classmethod
    def blank(cls, planet_id: str, climate_shape: tuple[int, int, int, int],
              spectrum_bins: int) -> PlanetSample:
        """A sample with every modality absent (zeros, `present` all False)."""
        return cls(
            planet_id=planet_id,
            climate=_absent_climate(tuple(climate_shape)),
            node_features=np.zeros((0, N_NODE_FEATURES), np.float32),
            edge_index=np.zeros((2, 0), np.int64),
            edge_attr=np.zeros((0, N_EDGE_FEATURES), np.float32),
            spectrum=np.zeros(spectrum_bins, np.float32),
            spectrum_err=np.zeros(spectrum_bins, np.float32),
            spectrum_mask=np.zeros(spectrum_bins, bool),
            params=np.zeros(len(PARAM_NAMES), np.float32),
            text="",
            present=np.zeros(len(MODALITIES), bool),
        )

    def with_present(self, modality: str, value: bool = True) -> PlanetSample:
        present = self.present.copy()
        present[MODALITIES.index(modality)] = value
        return dataclasses.replace(self, present=present)

    def is_present(self, modality: str) -> bool:
        return bool(self.present[MODALITIES.index(modality)])

    def validate(self, climate_shape: tuple[int, int, int, int], spectrum_bins: int,
                 source: str | None = None) -> None:
        """Raise `DataError` naming `source`, this sample and the field for the first defect."""
        for problem in self.problems(climate_shape, spectrum_bins):
            raise DataError(problem[1], file=source, sample=self.planet_id, field=problem[0])

    def problems(self, climate_shape: tuple[int, int, int, int],
                 spectrum_bins: int) -> list[tuple[str, str]]:
        """Every defect as (field, message); empty when the sample is valid."""
        found: list[tuple[str, str]] = []
        n_nodes = self.node_features.shape[0] if self.node_features.ndim == 2 else -1
        expected = {
            "climate": (np.float32, tuple(climate_shape)),
            "node_features": (np.float32, (n_nodes, N_NODE_FEATURES)),
            "edge_index": (np.int64, (2, self.edge_attr.shape[0])),
            "edge_attr": (np.float32, (self.edge_attr.shape[0], N_EDGE_FEATURES)),
            "spectrum": (np.float32, (spectrum_bins,)),
            "spectrum_err": (np.float32, (spectrum_bins,)),
            "spectrum_mask": (np.bool_, (spectrum_bins,)),
            "params": (np.float32, (len(PARAM_NAMES),)),
            "present": (np.bool_, (len(MODALITIES),)),
        }
        for name, (dtype, shape) in expected.items():
            value = getattr(self, name)
            if not isinstance(value, np.ndarray):
                found.append((name, f"expected a numpy array, got {type(value).__name__}"))
                continue
            if value.dtype != dtype:
                found.append((name, f"dtype {value.dtype}, expected {np.dtype(dtype)}"))
            if value.shape != shape:
                found.append((name, f"shape {value.shape}, expected {shape}"))
            elif value.dtype.kind == "f" and not np.isfinite(value).all():
                bad = int((~np.isfinite(value)).sum())
                found.append((name, f"{bad} non-finite value(s) (NaN or inf)"))
        if self.edge_index.ndim == 2 and self.edge_index.size and n_nodes >= 0:
            low, high = int(self.edge_index.min()), int(self.edge_index.max())
            if low < 0 or high >= n_nodes:
                found.append(("edge_index", f"indices span [{low}, {high}] but the graph has "
                              f"{n_nodes} node(s)"))
        found += self._range_problems({f for f, _ in found})
        if not isinstance(self.text, str):
            found.append(("text", f"expected str, got {type(self.text).__name__}"))
        if self.has_targets:
            if self.habitable not in (0, 1):
                found.append(("habitable", f"{self.habitable!r} is not 0 or 1"))
            if self.biosignature not in (0, 1):
                found.append(("biosignature", f"{self.biosignature!r} is not 0 or 1"))
            if not 0 <= self.habitability_class < len(HABITABILITY_CLASSES):
                found.append(("habitability_class", f"{self.habitability_class!r} is not in "
                              f"0..{len(HABITABILITY_CLASSES) - 1}"))
            low, high = SURFACE_TEMPERATURE_RANGE_K
            if not (np.isfinite(self.surface_temperature)
                    and low <= self.surface_temperature <= high):
                found.append(("surface_temperature", f"{self.surface_temperature!r} K is "
                              f"outside the physical range [{low:g}, {high:g}] K"))
        return found

    def _range_problems(self, defective: set[str]) -> list[tuple[str, str]]:
        """Values outside `schema`'s physical ranges, in the fields not already `defective`
        (a wrong shape or a NaN is reported once, as that)."""
        found: list[tuple[str, str]] = []
        present = (dict(zip(MODALITIES, self.present.tolist(), strict=True))
                   if "present" not in defective else {})

        def check(field: str, columns, ranges) -> None:
            if field not in defective:
                found.extend(_out_of_range(field, columns, ranges))

        if present.get("climate"):
            check("climate", self.climate.reshape(len(CLIMATE_RANGES), -1), CLIMATE_RANGES)
        if present.get("params"):
            check("params", self.params.reshape(-1, 1), PARAM_RANGES)
        check("node_features", self.node_features.T, NODE_FEATURE_RANGES)
        check("edge_attr", self.edge_attr.T, EDGE_FEATURE_RANGES)
        if not defective & {"spectrum", "spectrum_err", "spectrum_mask"}:
            observed = self.spectrum_mask
            check("spectrum", self.spectrum[observed][None],
                  {"transit depth (ppm)": SPECTRUM_RANGE_PPM})
            check("spectrum_err", self.spectrum_err[observed][None],
                  {"depth uncertainty (ppm)": SPECTRUM_ERR_RANGE_PPM})
        return found

