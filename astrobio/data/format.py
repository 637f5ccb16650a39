"""The on-disk dataset format: its layout, file checks, checksums, the card and the manifest.

Written by `astrobio.data.writer` (the synthetic build and the build from a user's files both
go through it), read by `astrobio.data.reader`, checked by `.validate`.

Layout of a dataset directory::

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

Integrity: every file has its sha256 recorded where the reader finds it before reading the
file. The card's shard entries hold the per-shard arrays' checksums (`sha256`: file name ->
hex), each manifest record its per-sample files' (`sha256`: field -> hex), the card's `files`
the manifest's, the tokenizer's and the README's, and `card_sha256` the card's own content
(its canonical JSON without that key). The reader checks a shard's arrays when it opens the
shard, and each per-sample file as it reads it; `validate` checks everything. Shard names must
match `SHARD_PATTERN`, so no name in the card or manifest can point outside the dataset.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from astrobio.checksum import sha256_bytes
from astrobio.config import DataConfig
from astrobio.errors import DataError
from astrobio.schema import MODALITIES, N_EDGE_FEATURES, N_NODE_FEATURES, PARAM_NAMES

FORMAT = "astrobio-dataset"
FORMAT_VERSION = 2
NPY_VERSION = (1, 0)
CARD_FILE = "card.json"
README_FILE = "README.md"
MANIFEST_FILE = "manifest.jsonl"
# Present from the first write of a build until its card is written: marks a directory as an
# unfinished build of ours, which a new build may clear.
BUILD_MARKER = ".astrobio-build"
SPLITS = ("train", "val", "test")
TMP_SUFFIX = ".tmp"
SHARD_PATTERN = re.compile(r"shard-\d{5}")
CARD_CHECKSUM = "card_sha256"

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
                 "n_tokens": int, "text": str, "sha256": dict}
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


def shard_path(root: Path, split: str, name: object) -> Path:
    """The directory of shard `name` of `split`; a `DataError` for any name that is not a
    shard name (`../../x`, an absolute path, ...), which is never joined onto the root."""
    if split not in SPLITS or not isinstance(name, str) or not SHARD_PATTERN.fullmatch(name):
        raise DataError(f"{name!r} is not a shard name (shard-NNNNN); refused, nothing read",
                        file=str(Path(root) / CARD_FILE), field=f"splits.{split}.shards")
    return Path(root) / split / name


def checksum_error(path: Path, expected: object, actual: str, sample: str | None = None,
                   field: str | None = None, shard: str | None = None) -> DataError:
    """The error for a file whose sha256 differs from the one recorded when it was written
    (`shard`: "split/shard-NNNNN" for a file of a shard)."""
    where = f" (shard {shard})" if shard else ""
    if not isinstance(expected, str):
        return DataError(f"no sha256 recorded for this file{where}; the card or manifest is "
                         "damaged", file=str(path), sample=sample, field=field or "sha256")
    return DataError(f"sha256 {actual[:12]}... differs from the recorded {expected[:12]}...: "
                     f"the file changed after the dataset was written{where}; copy or build "
                     "the dataset again", file=str(path), sample=sample, field=field or "sha256")


def npy_bytes(array: np.ndarray) -> bytes:
    """The exact bytes `write_npy` writes."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), version=NPY_VERSION,
                              allow_pickle=False)
    return buffer.getvalue()


def card_checksum(card: dict) -> str:
    """sha256 of the card's canonical JSON without its own checksum."""
    content = {k: v for k, v in card.items() if k != CARD_CHECKSUM}
    return sha256_bytes(json.dumps(content, sort_keys=True, ensure_ascii=False).encode())


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


def write_npy(path: Path, array: np.ndarray) -> str:
    """Write `array` as a version 1.0 `.npy`; returns the file's sha256."""
    data = npy_bytes(array)
    with open(path, "wb") as f:
        f.write(data)
    return sha256_bytes(data)


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


def read_card(root: str | Path, verify: bool = True) -> dict:
    """The card of a complete dataset; a clear error for a missing or unfinished one, or (with
    `verify`) for a card whose content differs from its recorded sha256."""
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
                        f"{FORMAT_VERSION}; build the dataset again", file=str(path),
                        field="format_version")
    if verify and card.get(CARD_CHECKSUM) != card_checksum(card):
        raise DataError("the card's content does not match its recorded sha256 (edited or "
                        "damaged); build the dataset again", file=str(path),
                        field=CARD_CHECKSUM)
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


def read_recorded(root: str | Path, name: str, card: dict | None) -> bytes:
    """The bytes of the dataset's top-level file `name` (manifest, tokenizer, README); with
    `card`, checked against the sha256 the card records for it."""
    path = Path(root) / name
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"unreadable: {err.strerror}", file=str(path)) from None
    if card is not None:
        expected = (card.get("files") or {}).get(name)
        actual = sha256_bytes(data)
        if expected != actual:
            raise checksum_error(path, expected, actual)
    return data


def read_manifest(root: str | Path, card: dict | None = None) -> list[dict]:
    """The manifest's records; with `card`, its bytes are first checked against the card's
    recorded sha256."""
    path = Path(root) / MANIFEST_FILE
    data = read_recorded(root, MANIFEST_FILE, card)
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text: {err}", file=str(path)) from None
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except ValueError as err:
            raise DataError(f"line {number} is not JSON: {err}", file=str(path)) from None
    return records
