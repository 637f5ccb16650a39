"""`AstroBioDataset`: one split of a built dataset (`astrobio.data.format`), read back as
`PlanetSample`s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from astrobio.data.format import (
    CARD_FILE,
    MANIFEST_FILE,
    MANIFEST_KEYS,
    OFFSETS,
    RAGGED,
    SAMPLE_FILES,
    SHARD_FILES,
    SPLITS,
    card_config,
    field_file,
    inspect_npy,
    npy_header,
    read_card,
    read_manifest,
    sample_file,
    sample_shapes,
    shard_shapes,
)
from astrobio.data.sample import PlanetSample
from astrobio.data.tokenizer import encode_text, load_tokenizer
from astrobio.errors import ConfigError, DataError


def _load_mmap(path: Path, field: str, dtype: np.dtype, shape: tuple) -> np.ndarray:
    array, messages = inspect_npy(path, dtype, shape)
    if messages:
        raise DataError("; ".join(messages), file=str(path), field=field)
    return array


class _Shard:
    """The per-shard arrays of one shard, memory-mapped and checked once."""

    def __init__(self, directory: Path, n: int):
        self.directory = directory
        offsets = {}
        for name in OFFSETS:
            array = _load_mmap(directory / f"{name}.npy", name, SHARD_FILES[name], (n + 1,))
            if array[0] != 0 or (np.diff(array) < 0).any():
                raise DataError("offsets must start at 0 and never decrease",
                                file=str(directory / f"{name}.npy"), field=name)
            offsets[name] = np.array(array)
        shapes = shard_shapes(n, *(int(offsets[k][-1]) for k in OFFSETS))
        self.arrays = {name: offsets[name] if name in offsets else
                       _load_mmap(directory / f"{name}.npy", name, dtype, shapes[name])
                       for name, dtype in SHARD_FILES.items()}

    def rows(self, field: str, position: int) -> np.ndarray:
        """A copy of `field` for one sample (ragged fields cut by their offsets)."""
        array = self.arrays[field]
        if field not in RAGGED:
            return np.array(array[position])
        offsets = self.arrays[RAGGED[field]]
        start, stop = offsets[position], offsets[position + 1]
        return np.array(array[:, start:stop] if field == "edge_index" else array[start:stop])


class AstroBioDataset(torch.utils.data.Dataset):
    """One split of a built dataset; `dataset[i]` is a `PlanetSample` with `input_ids`.

    Per-shard arrays are memory-mapped (each item copies only its own rows) and per-sample
    files are read whole. `tokenizer` (a tokenizer, or a path for `load_tokenizer`) re-encodes
    the texts instead of the stored ids. `check` validates every item as it is read, so a
    defect is a `DataError` naming the file, the sample and the field, never a NaN downstream.
    `read_sample_files=False` leaves the per-sample files (`format.SAMPLE_FILES`) unread, as
    zeros of their shape (a broadcast view), for a loader that reads them itself (DALI).
    `keep(record)` selects planets by their manifest record (its `params`, `labels`, ...),
    e.g. one host type for an out-of-distribution split.
    """

    def __init__(self, root: str | Path, split: str = "train", tokenizer=None,
                 check: bool = True, read_sample_files: bool = True,
                 keep: Callable[[dict], bool] | None = None):
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        self.root, self.split, self.check = Path(root), split, check
        self.read_sample_files = read_sample_files
        self.card = read_card(self.root)
        self.config = card_config(self.card, self.root)
        manifest = read_manifest(self.root)
        self.records = [r for r in manifest if isinstance(r, dict) and r.get("split") == split]
        for record in self.records:
            bad = [k for k, t in MANIFEST_KEYS.items() if not isinstance(record.get(k), t)]
            if bad:
                raise DataError(f"missing or mistyped keys {bad}; run `python -m astrobio.data "
                                "validate`", file=str(self.root / MANIFEST_FILE),
                                sample=str(record.get("planet_id")), field=bad[0])
        try:
            shard_counts = {s["name"]: int(s["count"])
                            for s in self.card["splits"][split]["shards"]}
        except (KeyError, TypeError, ValueError):
            raise DataError("no readable shard list", file=str(self.root / CARD_FILE),
                            field=f"splits.{split}.shards") from None
        if len(self.records) != sum(shard_counts.values()):
            raise DataError(f"the manifest lists {len(self.records)} {split} samples, the "
                            f"card {sum(shard_counts.values())}",
                            file=str(self.root / MANIFEST_FILE), field="split")
        self._shard_counts = shard_counts
        if keep is not None:
            self.records = [r for r in self.records if keep(r)]
        if isinstance(tokenizer, str | Path):
            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer = tokenizer
        self._headers = {field: npy_header(dtype, sample_shapes(self.config)[field])
                         for field, dtype in SAMPLE_FILES.items()}
        self._shards: dict[str, _Shard] = {}

    def __getstate__(self):
        # Workers reopen the memory maps rather than receive pickled copies of the arrays.
        return {**self.__dict__, "_shards": {}}

    def __len__(self) -> int:
        return len(self.records)

    def _shard(self, name: str) -> _Shard:
        if name not in self._shards:
            if name not in self._shard_counts:
                raise DataError("shard not listed in the card", file=str(self.root / CARD_FILE),
                                field="shards")
            self._shards[name] = _Shard(self.root / self.split / name, self._shard_counts[name])
        return self._shards[name]

    def _read_sample_file(self, path: Path, field: str, planet_id: str) -> np.ndarray:
        """Whole-file read checked against the exact expected header; `np.load` names the
        problem when the header differs."""
        header, dtype = self._headers[field], SAMPLE_FILES[field]
        shape = sample_shapes(self.config)[field]
        if not self.read_sample_files:
            return np.broadcast_to(np.zeros((), dtype), shape)
        size = len(header) + int(np.prod(shape)) * dtype.itemsize
        try:
            with open(path, "rb") as f:
                data = f.read(size + 1)
        except OSError as err:
            raise DataError(f"unreadable: {err.strerror}", file=str(path), sample=planet_id,
                            field=field) from None
        if len(data) == size and data.startswith(header):
            return np.frombuffer(bytearray(data), dtype, offset=len(header)).reshape(shape)
        array, messages = inspect_npy(path, dtype, shape)  # another writer's header, or a defect
        if messages:
            raise DataError("; ".join(messages), file=str(path), sample=planet_id, field=field)
        return np.array(array)

    def __getitem__(self, index: int) -> PlanetSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} {self.split} samples")
        record = self.records[index]
        planet_id, position = record["planet_id"], record["position"]
        shard = self._shard(record["shard"])
        sample = PlanetSample(
            planet_id=planet_id,
            **{field: self._read_sample_file(shard.directory / field / sample_file(position),
                                             field, planet_id) for field in SAMPLE_FILES},
            node_features=shard.rows("node_features", position),
            edge_index=shard.rows("edge_index", position),
            edge_attr=shard.rows("edge_attr", position),
            params=shard.rows("params", position),
            text=record["text"],
            present=shard.rows("present", position),
            habitable=int(shard.arrays["habitable"][position]),
            habitability_class=int(shard.arrays["habitability_class"][position]),
            surface_temperature=float(shard.arrays["surface_temperature"][position]),
            biosignature=int(shard.arrays["biosignature"][position]),
            has_targets=bool(shard.arrays["has_targets"][position]),
            input_ids=(shard.rows("input_ids", position) if self.tokenizer is None else
                       encode_text(self.tokenizer, record["text"], self.config.max_text_tokens)),
        )
        if self.check:
            for field, message in sample.problems(self.config.climate_shape,
                                                  self.config.spectrum_bins):
                raise DataError(message, file=str(field_file(shard.directory, field, position)),
                                sample=planet_id, field=field)
        return sample
