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
    TARGETS,
)

UNKNOWN_LABEL = -1  # habitable, habitability_class, biosignature
UNKNOWN_TEMPERATURE = 0.0  # surface_temperature
UNKNOWN_TARGETS = {"habitable": UNKNOWN_LABEL, "habitability_class": UNKNOWN_LABEL,
                   "surface_temperature": UNKNOWN_TEMPERATURE, "biosignature": UNKNOWN_LABEL}


def target_known(target: str, values):
    """Where `values` of `target` (numpy arrays, tensors or scalars) are known: class labels
    >= 0, temperatures > 0; the `UNKNOWN_TARGETS` values are not. The losses and scores mask
    each target with this, so a planet may carry any subset of the four targets."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {TARGETS}")
    return values > 0 if target == "surface_temperature" else values >= 0


@functools.cache
def _absent(dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Read-only zeros of `shape` that take no memory (a broadcast view), one per dtype and
    shape, shared by every sample without that modality: a catalogue of 100,000 planets
    holds no 100,000 empty datacubes."""
    return np.broadcast_to(np.zeros((), dtype), shape)


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
    Each target may be unknown (`UNKNOWN_TARGETS`, see `target_known`); `has_targets` is True
    when at least one is known. Absent modalities of `blank` are read-only views of zeros.
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
            climate=_absent(np.float32, tuple(climate_shape)),
            node_features=np.zeros((0, N_NODE_FEATURES), np.float32),
            edge_index=np.zeros((2, 0), np.int64),
            edge_attr=np.zeros((0, N_EDGE_FEATURES), np.float32),
            spectrum=_absent(np.float32, (spectrum_bins,)),
            spectrum_err=_absent(np.float32, (spectrum_bins,)),
            spectrum_mask=_absent(np.bool_, (spectrum_bins,)),
            params=np.zeros(len(PARAM_NAMES), np.float32),
            text="",
            present=np.zeros(len(MODALITIES), bool),
        )

    def known_targets(self) -> dict[str, bool]:
        return {t: bool(target_known(t, getattr(self, t))) for t in TARGETS}

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
        found.extend(self._target_problems())
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

    def _target_problems(self) -> list[tuple[str, str]]:
        """Each target is a valid value or its `UNKNOWN_TARGETS` value; `has_targets` says
        whether any is known."""
        found = []
        unknown = UNKNOWN_TARGETS
        for name in ("habitable", "biosignature"):
            if getattr(self, name) not in (0, 1, unknown[name]):
                found.append((name, f"{getattr(self, name)!r} is not 0, 1 or "
                              f"{unknown[name]} (unknown)"))
        if not (0 <= self.habitability_class < len(HABITABILITY_CLASSES)
                or self.habitability_class == unknown["habitability_class"]):
            found.append(("habitability_class", f"{self.habitability_class!r} is not in "
                          f"0..{len(HABITABILITY_CLASSES) - 1} nor "
                          f"{unknown['habitability_class']} (unknown)"))
        temperature, (low, high) = self.surface_temperature, SURFACE_TEMPERATURE_RANGE_K
        if not (temperature == unknown["surface_temperature"]
                or (np.isfinite(temperature) and low <= temperature <= high)):
            found.append(("surface_temperature", f"{temperature!r} K is outside the physical "
                          f"range [{low:g}, {high:g}] K and not "
                          f"{unknown['surface_temperature']} (unknown)"))
        if not found and bool(self.has_targets) != any(self.known_targets().values()):
            found.append(("has_targets", f"{bool(self.has_targets)} but "
                          f"{'some' if not self.has_targets else 'no'} target is known"))
        return found

