"""Build the on-disk dataset (layout in `astrobio.data.format`) from the synthetic generator.

Order of writing, so that nothing half-written passes for complete: a marker file; each shard
under `shard-NNNNN.tmp`, renamed once its token ids are in (the tokenizer is trained on the
whole train split first); then `tokenizer.json`, `manifest.jsonl`, `README.md` and last
`card.json`, each written to a temporary name and renamed. The same config gives
byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from astrobio.config import DataConfig
from astrobio.data.format import (
    BUILD_MARKER,
    CARD_FILE,
    FORMAT,
    FORMAT_VERSION,
    LABELS,
    MANIFEST_FILE,
    NPY_VERSION,
    README_FILE,
    SAMPLE_FILES,
    SHARD_FILES,
    SPLITS,
    TMP_SUFFIX,
    sample_file,
    shard_name,
    shard_shapes,
    write_npy,
)
from astrobio.data.sample import PlanetSample
from astrobio.data.synthetic import GENERATOR_VERSION, generate_samples
from astrobio.data.tokenizer import TOKENIZER_FILE, encode_texts, save_tokenizer, train_tokenizer
from astrobio.errors import ConfigError, DataError
from astrobio.schema import (
    CLIMATE_VARIABLES,
    HABITABILITY_CLASSES,
    MODALITIES,
    PARAM_NAMES,
)

# Spawn key of the split permutation's random stream, apart from the generator's streams.
SPLIT_STREAM = 0x5B117


def split_indices(n: int, val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, np.ndarray]:
    """Generator indices of each split, ascending: a seeded permutation of `range(n)` cut into
    `round(n * test_fraction)` test, `round(n * val_fraction)` val, the rest train."""
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"config key 'data.{key}': {value} is not in [0, 1)")
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n - n_val - n_test < 1:
        raise ConfigError(f"n_samples={n} with val_fraction={val_fraction} and "
                          f"test_fraction={test_fraction} leaves no train sample")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_STREAM,)))
    order = rng.permutation(n)
    return {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test:n_test + n_val]),
            "train": np.sort(order[n_test + n_val:])}


def manifest_record(sample: PlanetSample, index: int, split: str, shard: str,
                    position: int) -> dict:
    return {
        "planet_id": sample.planet_id,
        "index": index,
        "split": split,
        "shard": shard,
        "position": position,
        "params": {name: float(v) for name, v in zip(PARAM_NAMES, sample.params, strict=True)},
        "labels": {label: dtype.type(getattr(sample, label)).item()  # as the arrays hold it
                   for label, dtype in LABELS.items()},
        "present": {m: bool(v) for m, v in zip(MODALITIES, sample.present, strict=True)},
        **({"provenance": sample.provenance} if sample.provenance else {}),
        "n_nodes": int(sample.node_features.shape[0]),
        "n_edges": int(sample.edge_index.shape[1]),
        "text": sample.text,
    }


def split_summary(records: list[dict]) -> dict:
    """Counts and class balance of one split's manifest records (as the card holds them)."""
    labelled = [r["labels"] for r in records if r["labels"]["has_targets"]]
    return {
        "count": len(records),
        "labelled": len(labelled),
        "habitable": {str(k): v for k, v in sorted(Counter(
            lab["habitable"] for lab in labelled).items())},
        "habitability_class": {name: sum(lab["habitability_class"] == c for lab in labelled)
                               for c, name in enumerate(HABITABILITY_CLASSES)},
        "biosignature": {str(k): v for k, v in sorted(Counter(
            lab["biosignature"] for lab in labelled).items())},
        "present": {m: sum(r["present"][m] for r in records) for m in MODALITIES},
        "climate_models": {role: dict(sorted(Counter(
            r["provenance"][f"{role}_climate"] for r in records if "provenance" in r).items()))
            for role in ("truth", "observer")},
    }


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def _write_shard(directory: Path, samples: list[PlanetSample]) -> None:
    """Every array but the token ids, into a fresh directory."""
    directory.mkdir(parents=True)
    for field in SAMPLE_FILES:
        (directory / field).mkdir()
        for position, sample in enumerate(samples):
            write_npy(directory / field / sample_file(position), getattr(sample, field))
    arrays = {
        "params": np.stack([s.params for s in samples]),
        "present": np.stack([s.present for s in samples]),
        **{label: np.array([getattr(s, label) for s in samples], dtype)
           for label, dtype in LABELS.items()},
        "node_features": np.concatenate([s.node_features for s in samples]),
        "node_offsets": _offsets([s.node_features.shape[0] for s in samples]),
        "edge_index": np.concatenate([s.edge_index for s in samples], axis=1),
        "edge_attr": np.concatenate([s.edge_attr for s in samples]),
        "edge_offsets": _offsets([s.edge_index.shape[1] for s in samples]),
    }
    shapes = shard_shapes(len(samples), arrays["node_features"].shape[0],
                          arrays["edge_index"].shape[1], 0)
    for name, array in arrays.items():
        if array.dtype != SHARD_FILES[name] or array.shape != shapes[name]:
            raise DataError(f"generator gave {array.dtype} {array.shape}, the layout needs "
                            f"{SHARD_FILES[name]} {shapes[name]}", file=str(directory),
                            field=name)
        write_npy(directory / f"{name}.npy", array)


def _write_tokens(directory: Path, ids: list[np.ndarray]) -> None:
    write_npy(directory / "input_ids.npy",
              np.concatenate(ids) if ids else np.zeros(0, np.int64))
    write_npy(directory / "token_offsets.npy", _offsets([len(i) for i in ids]))


def _write_text(path: Path, text: str) -> None:
    """Atomic: a reader sees the old file or the whole new one."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(text)
    os.replace(tmp, path)


def _prepare(out: Path, overwrite: bool) -> None:
    """Clear `out` for a build: an unfinished build of ours always, a complete dataset only
    with `overwrite`, anything else never."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError("exists and is not a directory", file=str(out))
    if not any(out.iterdir()):
        return
    if (out / CARD_FILE).exists():
        if not overwrite:
            raise DataError("a complete dataset is already here; pass --overwrite to rebuild",
                            file=str(out))
    elif not (out / BUILD_MARKER).exists():
        raise DataError("not empty and not an AstroBio dataset; refusing to write into it",
                        file=str(out))
    shutil.rmtree(out)


def _readme(card: dict) -> str:
    lines = [
        "# AstroBio synthetic dataset",
        "",
        f"Generator {card['generator_version']}, seed {card['seed']}, "
        f"{card['n_samples']} planets; layout format {card['format_version']} "
        "(see `astrobio/data/format.py`). Build again with:",
        "",
        f"    python -m astrobio.data build --n {card['n_samples']} --seed {card['seed']} "
        "--config CONFIG --out DIR",
        "",
        "with CONFIG holding the `[data]` table of `card.json`.",
        "",
        "| split | samples | labelled | habitable 0/1 | " + " | ".join(HABITABILITY_CLASSES)
        + " |",
        "|---|---|---|---|" + "---|" * len(HABITABILITY_CLASSES),
    ]
    for split, s in card["splits"].items():
        classes = " | ".join(str(s["habitability_class"][c]) for c in HABITABILITY_CLASSES)
        lines.append(f"| {split} | {s['count']} | {s['labelled']} | "
                     f"{s['habitable'].get('0', 0)}/{s['habitable'].get('1', 0)} | {classes} |")
    lines += ["", "Climate models per split (the truth's and the observer's datacube's; each "
              "planet's in `manifest.jsonl` under `provenance`):", ""]
    for split, s in card["splits"].items():
        models = "; ".join(f"{role}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                           for role, counts in s["climate_models"].items() if counts)
        lines.append(f"- {split}: {models or 'none recorded'}")
    return "\n".join(lines) + "\n"


def _generate_chunk(args: tuple[int, int, DataConfig]) -> list[PlanetSample]:
    start, stop, config = args
    return generate_samples(start, stop, config)


def build_dataset(config: DataConfig, out: str | Path, *, preset: str | None = None,
                  overwrite: bool = False, progress: bool = True, workers: int = 1) -> Path:
    """Generate `config.n_samples` planets and write them under `out`; returns `out`.

    `workers` > 1 generates in that many processes (same files: each sample depends only on
    the seed and its index).
    """
    out = Path(out)
    n = config.n_samples
    if n < 1 or config.shard_size < 1:
        raise ConfigError(f"n_samples ({n}) and shard_size ({config.shard_size}) must be >= 1")
    splits = split_indices(n, config.val_fraction, config.test_fraction, config.seed)
    split_of = np.empty(n, dtype=np.int64)
    for number, split in enumerate(SPLITS):
        split_of[splits[split]] = number
    _prepare(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    (out / BUILD_MARKER).write_text("unfinished build; card.json marks completion\n")

    buffers: dict[str, list[tuple[int, PlanetSample]]] = {s: [] for s in SPLITS}
    shards: dict[str, list[dict]] = {s: [] for s in SPLITS}
    records: dict[str, list[dict]] = {s: [] for s in SPLITS}

    def flush(split: str) -> None:
        name = shard_name(len(shards[split]))
        tmp = out / split / (name + TMP_SUFFIX)
        _write_shard(tmp, [s for _, s in buffers[split]])
        for position, (index, sample) in enumerate(buffers[split]):
            records[split].append(manifest_record(sample, index, split, name, position))
        shards[split].append({"name": name, "count": len(buffers[split]), "tmp": tmp})
        buffers[split].clear()

    chunks = [(start, min(start + config.shard_size, n), config)
              for start in range(0, n, config.shard_size)]
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        generated = pool.map(_generate_chunk, chunks) if pool else map(_generate_chunk, chunks)
        with tqdm(total=n, unit="sample", desc="generate", disable=not progress) as bar:
            for (start, _, _), samples in zip(chunks, generated):
                for index, sample in enumerate(samples, start=start):
                    sample.validate(config.climate_shape, config.spectrum_bins,
                                    source=f"generator {GENERATOR_VERSION}, index {index}")
                    split = SPLITS[split_of[index]]
                    buffers[split].append((index, sample))
                    if len(buffers[split]) == config.shard_size:
                        flush(split)
                bar.update(len(samples))
    finally:
        if pool:
            pool.shutdown()
    for split in SPLITS:
        if buffers[split]:
            flush(split)

    tokenizer = train_tokenizer([r["text"] for r in records["train"]], config.vocab_size)
    for split in SPLITS:
        for shard in shards[split]:
            shard_records = [r for r in records[split] if r["shard"] == shard["name"]]
            ids = encode_texts(tokenizer, [r["text"] for r in shard_records],
                               config.max_text_tokens)
            for record, tokens in zip(shard_records, ids, strict=True):
                record["n_tokens"] = len(tokens)
            _write_tokens(shard["tmp"], ids)
            os.rename(shard["tmp"], out / split / shard["name"])

    tokenizer_tmp = out / (TOKENIZER_FILE + TMP_SUFFIX)
    save_tokenizer(tokenizer, tokenizer_tmp)
    os.replace(tokenizer_tmp, out / TOKENIZER_FILE)
    _write_text(out / MANIFEST_FILE, "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for split in SPLITS for r in records[split]))
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "npy_version": ".".join(map(str, NPY_VERSION)),
        "generator_version": GENERATOR_VERSION,
        "preset": preset,
        "seed": config.seed,
        "n_samples": n,
        "config": dataclasses.asdict(config),
        "climate_shape": list(config.climate_shape),
        "climate_variables": list(CLIMATE_VARIABLES),
        "param_names": list(PARAM_NAMES),
        "modalities": list(MODALITIES),
        "habitability_classes": list(HABITABILITY_CLASSES),
        "tokenizer": {"file": TOKENIZER_FILE, "vocab_size": len(tokenizer),
                      "pad_id": tokenizer.pad_token_id, "bos_id": tokenizer.bos_token_id,
                      "eos_id": tokenizer.eos_token_id, "trained_on": "train"},
        "splits": {split: {**split_summary(records[split]),
                           "shards": [{"name": s["name"], "count": s["count"]}
                                      for s in shards[split]]}
                   for split in SPLITS},
    }
    _write_text(out / README_FILE, _readme(card))
    _write_text(out / CARD_FILE, json.dumps(card, indent=2) + "\n")
    (out / BUILD_MARKER).unlink()
    return out
