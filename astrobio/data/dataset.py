"""The on-disk dataset: its layout, and `AstroBioDataset` reading it back.

Layout of a dataset directory (written by `astrobio.data.build`, checked by `.validate`)::

    card.json        the dataset card; written last, so a directory without it is incomplete
    README.md        the card in words
    manifest.jsonl   one JSON object per sample, ordered by split, shard, position
    tokenizer.json   byte-level BPE trained on the train split's texts
    train/ val/ test/
      shard-00000/                       `shard_size` samples; a `.tmp` name while written
        climate/000000.npy               float32 [V, Z, H, W]  one file per sample, so
        spectrum/000000.npy              float32 [L]           DALI's fn.readers.numpy
        spectrum_err/000000.npy          float32 [L]           reads them as a list of
        spectrum_mask/000000.npy         bool    [L]           files, one sample each
        params.npy                       float32 [n, P]
        present.npy                      bool    [n, M]
        habitable.npy, habitability_class.npy, biosignature.npy      int64 [n]
        surface_temperature.npy          float32 [n]
        has_targets.npy                  bool    [n]
        node_features.npy                float32 [sum N, F]   sample i: rows
        node_offsets.npy                 int64   [n + 1]      node_offsets[i]:[i+1]
        edge_index.npy                   int64   [2, sum E]   node ids local to the sample
        edge_attr.npy                    float32 [sum E, Fe]
        edge_offsets.npy                 int64   [n + 1]
        input_ids.npy                    int64   [sum T]      bos ... eos, <= max_text_tokens
        token_offsets.npy                int64   [n + 1]

Every array is a plain C-order NumPy `.npy` of format version 1.0 (what DALI reads).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from astrobio.config import DataConfig
from astrobio.data.sample import PlanetSample
from astrobio.data.schema import MODALITIES, N_EDGE_FEATURES, N_NODE_FEATURES, PARAM_NAMES
from astrobio.data.tokenizer import encode_text, load_tokenizer
from astrobio.errors import ConfigError, DataError

FORMAT = "astrobio-dataset"
FORMAT_VERSION = 1
NPY_VERSION = (1, 0)
CARD_FILE = "card.json"
README_FILE = "README.md"
MANIFEST_FILE = "manifest.jsonl"
# Present from the first write of a build until its card is written: marks a directory as an
# unfinished build of ours, which a new build may clear.
BUILD_MARKER = ".astrobio-build"
SPLITS = ("train", "val", "test")
TMP_SUFFIX = ".tmp"

SAMPLE_FILES = {
    "climate": np.dtype(np.float32),
    "spectrum": np.dtype(np.float32),
    "spectrum_err": np.dtype(np.float32),
    "spectrum_mask": np.dtype(np.bool_),
}
LABELS = {
    "habitable": np.dtype(np.int64),
    "habitability_class": np.dtype(np.int64),
    "surface_temperature": np.dtype(np.float32),
    "biosignature": np.dtype(np.int64),
    "has_targets": np.dtype(np.bool_),
}
# Ragged fields: concatenated rows, and the offsets file that cuts them per sample.
OFFSETS = ("node_offsets", "edge_offsets", "token_offsets")
RAGGED = {"node_features": "node_offsets", "edge_index": "edge_offsets",
          "edge_attr": "edge_offsets", "input_ids": "token_offsets"}
MANIFEST_KEYS = {"planet_id": str, "index": int, "split": str, "shard": str, "position": int,
                 "params": dict, "labels": dict, "present": dict, "n_nodes": int, "n_edges": int,
                 "n_tokens": int, "text": str}
SHARD_FILES = {
    "params": np.dtype(np.float32),
    "present": np.dtype(np.bool_),
    **LABELS,
    "node_features": np.dtype(np.float32),
    "node_offsets": np.dtype(np.int64),
    "edge_index": np.dtype(np.int64),
    "edge_attr": np.dtype(np.float32),
    "edge_offsets": np.dtype(np.int64),
    "input_ids": np.dtype(np.int64),
    "token_offsets": np.dtype(np.int64),
}


def shard_name(number: int) -> str:
    return f"shard-{number:05d}"


def sample_file(position: int) -> str:
    return f"{position:06d}.npy"


def sample_shapes(config: DataConfig) -> dict[str, tuple[int, ...]]:
    """Shape of each one-file-per-sample array."""
    bins = (config.spectrum_bins,)
    return {"climate": config.climate_shape, "spectrum": bins, "spectrum_err": bins,
            "spectrum_mask": bins}


def shard_shapes(n: int, n_nodes: int, n_edges: int, n_tokens: int) -> dict[str, tuple]:
    """Shape of each per-shard array for `n` samples holding these ragged totals."""
    return {
        "params": (n, len(PARAM_NAMES)),
        "present": (n, len(MODALITIES)),
        **{label: (n,) for label in LABELS},
        "node_features": (n_nodes, N_NODE_FEATURES),
        "node_offsets": (n + 1,),
        "edge_index": (2, n_edges),
        "edge_attr": (n_edges, N_EDGE_FEATURES),
        "edge_offsets": (n + 1,),
        "input_ids": (n_tokens,),
        "token_offsets": (n + 1,),
    }


def field_file(shard_dir: Path, field: str, position: int) -> Path:
    """The file that holds `field` of the sample at `position` of a shard."""
    if field in SAMPLE_FILES:
        return shard_dir / field / sample_file(position)
    if field in SHARD_FILES:
        return shard_dir / f"{field}.npy"
    return shard_dir.parent.parent / MANIFEST_FILE  # the text and the manifest's copies


def write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.ascontiguousarray(array), version=NPY_VERSION,
                                  allow_pickle=False)


def npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The exact header `write_npy` writes for this dtype and shape."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": tuple(shape)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def inspect_npy(path: Path, dtype: np.dtype,
                shape: tuple[int, ...] | None) -> tuple[np.ndarray | None, list[str]]:
    """(read-only array or None, messages): the header, size, dtype and shape of one `.npy`."""
    if not path.is_file():
        return None, ["missing"]
    size = os.path.getsize(path)
    if shape is not None:  # the common case, a file exactly as `write_npy` wrote it
        header = npy_header(dtype, shape)
        with open(path, "rb") as f:
            same = f.read(len(header)) == header
        if same and size == len(header) + int(np.prod(shape)) * dtype.itemsize:
            return _map(path, dtype, shape, len(header)), []
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version != NPY_VERSION:
                return None, [f".npy format version {version}, expected {NPY_VERSION} "
                              "(DALI reads 1.0 only)"]
            file_shape, fortran, file_dtype = np.lib.format.read_array_header_1_0(f)
            data_start = f.tell()
    except (OSError, ValueError, EOFError) as err:
        return None, [f"unreadable .npy header: {err}"]
    messages = []
    data_bytes = int(np.prod(file_shape)) * file_dtype.itemsize
    if size < data_start + data_bytes:
        messages.append(f"truncated: the header promises {data_bytes} data bytes, the file "
                        f"holds {size - data_start}")
    elif size > data_start + data_bytes:
        messages.append(f"{size - data_start - data_bytes} stray bytes after the data")
    if file_dtype != dtype:
        messages.append(f"dtype {file_dtype}, expected {dtype}")
    if fortran:
        messages.append("Fortran order, expected C order")
    if shape is not None and tuple(file_shape) != tuple(shape):
        messages.append(f"shape {tuple(file_shape)}, expected {tuple(shape)}")
    if messages:
        return None, messages
    return _map(path, dtype, file_shape, data_start), []


def _map(path: Path, dtype: np.dtype, shape: tuple[int, ...], offset: int) -> np.ndarray:
    if int(np.prod(shape)) == 0:  # mmap cannot map zero bytes
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=tuple(shape), offset=offset)


def read_card(root: str | Path) -> dict:
    """The card of a complete dataset; a clear error for a missing or unfinished one."""
    root = Path(root)
    path = root / CARD_FILE
    if not root.is_dir():
        raise DataError("no such dataset directory", file=str(root))
    if not path.is_file():
        state = ("an unfinished build (interrupted?)" if (root / BUILD_MARKER).exists()
                 else "not a complete AstroBio dataset")
        raise DataError(f"{CARD_FILE} is missing: {state}; build it again with "
                        f"`python -m astrobio.data build --out {root} --overwrite`",
                        file=str(path))
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable card: {err}", file=str(path)) from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise DataError(f"not an {FORMAT} card", file=str(path), field="format")
    if card.get("format_version") != FORMAT_VERSION:
        raise DataError(f"format version {card.get('format_version')!r}, this code reads "
                        f"{FORMAT_VERSION}", file=str(path), field="format_version")
    return card


def card_config(card: dict, root: str | Path) -> DataConfig:
    """The `DataConfig` a dataset was built with; unknown keys are an error."""
    values = card.get("config")
    file = str(Path(root) / CARD_FILE)
    if not isinstance(values, dict):
        raise DataError("no config table", file=file, field="config")
    known = {f.name for f in dataclasses.fields(DataConfig)}
    for key in values:
        if key not in known:
            raise DataError(f"unknown config key; known keys: {sorted(known)}", file=file,
                            field=f"config.{key}")
    return DataConfig(**values)


def read_manifest(root: str | Path) -> list[dict]:
    path = Path(root) / MANIFEST_FILE
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(f"unreadable manifest: {err.strerror}", file=str(path)) from None
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except ValueError as err:
            raise DataError(f"line {number} is not JSON: {err}", file=str(path)) from None
    return records


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
    """

    def __init__(self, root: str | Path, split: str = "train", tokenizer=None,
                 check: bool = True):
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        self.root, self.split, self.check = Path(root), split, check
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


def dataset_fingerprint(config: DataConfig) -> str:
    """Names a dataset by everything that shapes its content."""
    from astrobio.data.synthetic import GENERATOR_VERSION

    key = json.dumps({"config": dataclasses.asdict(config), "generator": GENERATOR_VERSION,
                      "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def default_data_dir() -> Path:
    """`$ASTROBIO_DATA_DIR`, else `$XDG_CACHE_HOME/astrobio/datasets` (`~/.cache/...`)."""
    if os.environ.get("ASTROBIO_DATA_DIR"):
        return Path(os.environ["ASTROBIO_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "astrobio" / "datasets"


def check_card_matches(card: dict, config: DataConfig, root: Path) -> None:
    from astrobio.data.synthetic import GENERATOR_VERSION

    wanted = dataclasses.asdict(config)
    built = card.get("config", {})
    differing = sorted(k for k in set(wanted) | set(built) if wanted.get(k) != built.get(k))
    if differing:
        raise DataError("built with a different config: "
                        + ", ".join(f"{k}={built.get(k)!r} (wanted {wanted.get(k)!r})"
                                    for k in differing), file=str(root / CARD_FILE),
                        field="config")
    if card.get("generator_version") != GENERATOR_VERSION:
        raise DataError(f"built by generator {card.get('generator_version')!r}, this code has "
                        f"{GENERATOR_VERSION!r}", file=str(root / CARD_FILE),
                        field="generator_version")


def ensure_default_dataset(config: DataConfig, root: str | Path | None = None, *,
                           progress: bool = True) -> Path:
    """The dataset for `config` at `root` (default: `default_data_dir()/synthetic-<hash>`),
    built there first if absent. Safe when several processes call it at once: each builds
    in a private directory and the first rename wins."""
    root = Path(root) if root is not None else (
        default_data_dir() / f"synthetic-{dataset_fingerprint(config)}")
    if (root / CARD_FILE).exists():
        check_card_matches(read_card(root), config, root)
        return root
    from astrobio.data.build import build_dataset

    if root.exists():  # an unfinished build of ours is cleared; anything else is refused
        return build_dataset(config, root, progress=progress)
    root.parent.mkdir(parents=True, exist_ok=True)
    private = root.parent / f".{root.name}.building-{os.getpid()}"
    build_dataset(config, private, overwrite=True, progress=progress)
    try:
        os.rename(private, root)
    except OSError:
        shutil.rmtree(private, ignore_errors=True)
        if not (root / CARD_FILE).exists():
            raise
        check_card_matches(read_card(root), config, root)
    return root
