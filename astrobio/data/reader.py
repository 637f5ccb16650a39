"""`AstroBioDataset`: one split of a built dataset (`astrobio.data.format`), read back as
`PlanetSample`s, every file checked against its recorded sha256 before its values are used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from astrobio.checksum import sha256_bytes, sha256_file
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
    checksum_error,
    field_file,
    inspect_npy,
    npy_header,
    read_card,
    read_manifest,
    sample_file,
    sample_shapes,
    shard_path,
    shard_shapes,
)
from astrobio.data.sample import PlanetSample
from astrobio.data.tokenizer import encode_text, load_tokenizer
from astrobio.errors import ConfigError, DataError


def _check_file(path: Path, expected, planet_id: str, field: str, shard: str) -> None:
    try:
        actual = sha256_file(path)
    except OSError as err:
        raise DataError(f"unreadable: {err.strerror} (shard {shard})", file=str(path),
                        sample=planet_id, field=field) from None
    if actual != expected:
        raise checksum_error(path, expected, actual, planet_id, field, shard)


def _load_mmap(path: Path, field: str, dtype: np.dtype, shape: tuple) -> np.ndarray:
    array, messages = inspect_npy(path, dtype, shape)
    if messages:
        raise DataError("; ".join(messages), file=str(path), field=field)
    return array


class _Shard:
    """The per-shard arrays of one shard, checked against their checksums, then memory-mapped
    and checked once. `sample_checksums` ({position: {field: sha256}}) also checks the
    per-sample files now, for a loader that reads them itself (DALI)."""

    def __init__(self, directory: Path, n: int, checksums: dict, planet_id: str,
                 sample_checksums: dict[int, dict] | None = None):
        self.directory = directory
        label = f"{directory.parent.name}/{directory.name}"
        if not isinstance(checksums, dict):
            checksums = {}
        for name in SHARD_FILES:
            path = directory / f"{name}.npy"
            _check_file(path, checksums.get(f"{name}.npy"), planet_id, name, label)
        for position, expected in (sample_checksums or {}).items():
            for field in SAMPLE_FILES:
                _check_file(directory / field / sample_file(position), expected.get(field),
                            planet_id, field, label)
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
        manifest = read_manifest(self.root, self.card)
        self.records = [r for r in manifest if isinstance(r, dict) and r.get("split") == split]
        try:
            shards = {s["name"]: s for s in self.card["splits"][split]["shards"]}
            shard_counts = {name: int(s["count"]) for name, s in shards.items()}
        except (KeyError, TypeError, ValueError):
            raise DataError("no readable shard list", file=str(self.root / CARD_FILE),
                            field=f"splits.{split}.shards") from None
        for name in shards:
            shard_path(self.root, split, name)  # a name that is no shard name is refused
        for record in self.records:
            bad = [k for k, t in MANIFEST_KEYS.items() if not isinstance(record.get(k), t)]
            if not bad and not (record["shard"] in shard_counts
                                and 0 <= record["position"] < shard_counts[record["shard"]]):
                bad = ["shard" if record["shard"] not in shard_counts else "position"]
            if bad:
                raise DataError(f"missing, mistyped or out-of-range keys {bad}; run `python -m "
                                "astrobio.data validate`", file=str(self.root / MANIFEST_FILE),
                                sample=str(record.get("planet_id")), field=bad[0])
        if len(self.records) != sum(shard_counts.values()):
            raise DataError(f"the manifest lists {len(self.records)} {split} samples, the "
                            f"card {sum(shard_counts.values())}",
                            file=str(self.root / MANIFEST_FILE), field="split")
        self._shard_counts = shard_counts
        self._shard_checksums = {name: s.get("sha256") for name, s in shards.items()}
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

    def _shard(self, name: str, planet_id: str) -> _Shard:
        """The shard `name`, opened (and its files checked) on first use by `planet_id`."""
        if name not in self._shards:
            sample_checksums = None
            if not self.read_sample_files:
                sample_checksums = {r["position"]: r["sha256"] for r in self.records
                                    if r["shard"] == name}
            self._shards[name] = _Shard(shard_path(self.root, self.split, name),
                                        self._shard_counts[name], self._shard_checksums[name],
                                        planet_id, sample_checksums)
        return self._shards[name]

    def _read_sample_file(self, path: Path, field: str, planet_id: str,
                          expected: object) -> np.ndarray:
        """Whole-file read checked against the exact expected header and the recorded sha256;
        `inspect_npy` names the problem when the header differs."""
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
        other = None  # another writer's header, or a defect that inspect_npy names
        if len(data) != size or not data.startswith(header):
            other, messages = inspect_npy(path, dtype, shape)
            if messages:
                raise DataError("; ".join(messages), file=str(path), sample=planet_id,
                                field=field)
        actual = sha256_bytes(data)
        if actual != expected:
            shard = f"{path.parent.parent.parent.name}/{path.parent.parent.name}"
            raise checksum_error(path, expected, actual, planet_id, field, shard)
        if other is not None:
            return np.array(other)
        return np.frombuffer(bytearray(data), dtype, offset=len(header)).reshape(shape)

    def __getitem__(self, index: int) -> PlanetSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} {self.split} samples")
        record = self.records[index]
        planet_id, position = record["planet_id"], record["position"]
        shard = self._shard(record["shard"], planet_id)
        sample = PlanetSample(
            planet_id=planet_id,
            **{field: self._read_sample_file(shard.directory / field / sample_file(position),
                                             field, planet_id, record["sha256"].get(field))
               for field in SAMPLE_FILES},
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
