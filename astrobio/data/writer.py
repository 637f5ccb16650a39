"""`write_dataset`: any stream of `PlanetSample`s into the on-disk format (`astrobio.data.format`).

    from astrobio.data import write_dataset
    write_dataset(samples, "data/mine", config.data)       # samples: any iterable

The synthetic build (`astrobio.data.build`) and the build from a user's files
(`astrobio.data.from_files`) both write through here, so `validate`, the torch and DALI
loaders and training read every dataset alike.

Streaming: samples are validated and buffered per split, and a split's shard is written as soon
as it holds `shard_size` samples, so memory holds at most one shard per split plus the
manifest records (text and parameters). Order of writing, so that nothing half-written passes
for complete: a marker file; each shard under `shard-NNNNN.tmp`, renamed once its token ids
are in (the tokenizer, unless given, is trained on the whole train split first); then
`tokenizer.json`, `manifest.jsonl`, `README.md` and last `card.json`, each written to a
temporary name and renamed. The same samples, split and config give byte-identical files.

Splits: `split` is a mapping planet_id -> split name, a callable `(index, sample) -> split`, or
None: then a planet's split follows from sha256(seed, planet_id) against the config's
`test_fraction` and `val_fraction`, so it stays where it is when planets are added or removed.

The card also records the train split's distribution of each parameter (quantiles over the
planets whose parameters are present), which `astrobio.predict` compares new planets with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from astrobio.checksum import sha256_bytes
from astrobio.config import DataConfig
from astrobio.data.format import (
    BUILD_MARKER,
    CARD_CHECKSUM,
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
    card_checksum,
    sample_file,
    shard_name,
    shard_shapes,
    write_npy,
)
from astrobio.data.sample import PlanetSample, target_known
from astrobio.data.tokenizer import (
    TOKENIZER_FILE,
    encode_texts,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from astrobio.errors import ConfigError, DataError
from astrobio.schema import (
    CLIMATE_VARIABLES,
    HABITABILITY_CLASSES,
    MODALITIES,
    PARAM_NAMES,
    TARGETS,
)

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
SplitRule = Mapping[str, str] | Callable[[int, PlanetSample], str] | None


def hash_split(planet_id: str, config: DataConfig) -> str:
    """A planet's split from sha256(seed, planet_id) alone: test below `test_fraction`, val
    below `test_fraction + val_fraction`, else train."""
    digest = hashlib.sha256(f"{config.seed}:{planet_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < config.test_fraction:
        return "test"
    return "val" if u < config.test_fraction + config.val_fraction else "train"


def _split_of(rule: SplitRule, index: int, sample: PlanetSample, config: DataConfig) -> str:
    if rule is None:
        return hash_split(sample.planet_id, config)
    if callable(rule):
        split = rule(index, sample)
    elif sample.planet_id in rule:
        split = rule[sample.planet_id]
    else:
        raise DataError("the split mapping names no split for this planet",
                        sample=sample.planet_id, field="split")
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {SPLITS}", sample=sample.planet_id,
                        field="split")
    return split


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
    """Counts, targets known and class balance of one split's manifest records (as the card
    holds them)."""
    labels = [r["labels"] for r in records]

    def known(target):
        return [lab[target] for lab in labels if target_known(target, lab[target])]

    return {
        "count": len(records),
        "labelled": sum(bool(lab["has_targets"]) for lab in labels),
        "targets": {t: len(known(t)) for t in TARGETS},
        "habitable": {str(k): v for k, v in sorted(Counter(known("habitable")).items())},
        "habitability_class": {name: sum(c == i for c in known("habitability_class"))
                               for i, name in enumerate(HABITABILITY_CLASSES)},
        "biosignature": {str(k): v for k, v in sorted(Counter(known("biosignature")).items())},
        "present": {m: sum(r["present"][m] for r in records) for m in MODALITIES},
        "climate_models": {role: dict(sorted(Counter(
            r["provenance"][f"{role}_climate"] for r in records if "provenance" in r).items()))
            for role in ("truth", "observer")},
    }


def param_distribution(records: list[dict]) -> dict:
    """Quantiles of each parameter over the records whose parameters are present."""
    rows = [[r["params"][name] for name in PARAM_NAMES] for r in records
            if r["present"]["params"]]
    if not rows:
        return {"n": 0, "quantiles": list(QUANTILES), "params": {}}
    values = np.quantile(np.asarray(rows, np.float64), QUANTILES, axis=0)
    return {"n": len(rows), "quantiles": list(QUANTILES),
            "params": {name: [float(v) for v in values[:, k]]
                       for k, name in enumerate(PARAM_NAMES)}}


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def _write_shard(directory: Path, samples: list[PlanetSample]) -> tuple[list[dict], dict]:
    """Every array but the token ids, into a fresh directory: (per sample {field: sha256} of
    its own files, {file name: sha256} of the per-shard files)."""
    directory.mkdir(parents=True)
    per_sample: list[dict] = [{} for _ in samples]
    for field in SAMPLE_FILES:
        (directory / field).mkdir()
        for position, sample in enumerate(samples):
            per_sample[position][field] = write_npy(directory / field / sample_file(position),
                                                    getattr(sample, field))
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
    checksums = {}
    for name, array in arrays.items():
        if array.dtype != SHARD_FILES[name] or array.shape != shapes[name]:
            raise DataError(f"samples gave {array.dtype} {array.shape}, the layout needs "
                            f"{SHARD_FILES[name]} {shapes[name]}", file=str(directory),
                            field=name)
        checksums[f"{name}.npy"] = write_npy(directory / f"{name}.npy", array)
    return per_sample, checksums


def _write_tokens(directory: Path, ids: list[np.ndarray]) -> dict:
    return {
        "input_ids.npy": write_npy(directory / "input_ids.npy",
                                   np.concatenate(ids) if ids else np.zeros(0, np.int64)),
        "token_offsets.npy": write_npy(directory / "token_offsets.npy",
                                       _offsets([len(i) for i in ids])),
    }


def write_text_atomic(path: Path, text: str) -> str:
    """A reader sees the old file or the whole new one; returns the file's sha256."""
    data = text.encode("utf-8")
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return sha256_bytes(data)


def prepare_out(out: Path, overwrite: bool) -> None:
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
    source = card["source"]
    if source["kind"] == "synthetic":
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
        ]
    else:
        lines = [
            "# AstroBio dataset from files",
            "",
            f"{card['n_samples']} planets; layout format {card['format_version']} (see "
            "`astrobio/data/format.py`). Sources: "
            + ", ".join(f"{k} `{v}`" for k, v in source.items() if k not in ("kind", "problems")
                        and v is not None) + ".",
        ]
        if source.get("problems"):
            lines += ["", f"{len(source['problems'])} file(s) or row(s) were reported and left "
                      "out while building (listed under `source.problems` in `card.json`)."]
    lines += [
        "",
        "| split | samples | labelled | habitable 0/1 | " + " | ".join(HABITABILITY_CLASSES)
        + " |",
        "|---|---|---|---|" + "---|" * len(HABITABILITY_CLASSES),
    ]
    for split, s in card["splits"].items():
        classes = " | ".join(str(s["habitability_class"][c]) for c in HABITABILITY_CLASSES)
        lines.append(f"| {split} | {s['count']} | {s['labelled']} | "
                     f"{s['habitable'].get('0', 0)}/{s['habitable'].get('1', 0)} | {classes} |")
    if any(counts for s in card["splits"].values() for counts in s["climate_models"].values()):
        lines += ["", "Climate models per split (the truth's and the observer's datacube's; each "
                  "planet's in `manifest.jsonl` under `provenance`):", ""]
        for split, s in card["splits"].items():
            models = "; ".join(f"{role}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                               for role, counts in s["climate_models"].items() if counts)
            lines.append(f"- {split}: {models or 'none recorded'}")
    return "\n".join(lines) + "\n"


def write_dataset(samples: Iterable[PlanetSample], out: str | Path, config: DataConfig, *,
                  split: SplitRule = None, tokenizer=None, overwrite: bool = False,
                  progress: bool = True, total: int | None = None, preset: str | None = None,
                  source: dict | None = None, generator_version: str | None = None,
                  sources: Mapping[str, dict] | None = None) -> Path:
    """Write `samples` as a dataset under `out`; returns `out`.

    `config` gives the shapes every sample must have and the split fractions and seed; the
    card records it with `n_samples` set to the number written. `split`: see the module
    docstring. `tokenizer` (a tokenizer, or a path `load_tokenizer` reads: a tokenizer.json, a
    dataset or a Hugging Face directory) encodes the texts instead of a new one trained on the
    train split (give a trained run's tokenizer to fine-tune that run on this data).
    `source` describes where the samples came from (the card's `source`), `sources` maps a
    planet to the files it was read from (its manifest record's `sources`). A sample that
    fails `PlanetSample.validate`, or a planet_id seen twice, is a `DataError`; nothing of the
    build is then left looking complete.
    """
    out = Path(out)
    if config.shard_size < 1:
        raise ConfigError(f"data.shard_size ({config.shard_size}) must be >= 1")
    if isinstance(tokenizer, str | Path):
        tokenizer = load_tokenizer(tokenizer)
    prepare_out(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    (out / BUILD_MARKER).write_text("unfinished build; card.json marks completion\n")

    buffers: dict[str, list[tuple[int, PlanetSample]]] = {s: [] for s in SPLITS}
    shards: dict[str, list[dict]] = {s: [] for s in SPLITS}
    records: dict[str, list[dict]] = {s: [] for s in SPLITS}
    seen: dict[str, int] = {}

    def flush(split_name: str) -> None:
        name = shard_name(len(shards[split_name]))
        tmp = out / split_name / (name + TMP_SUFFIX)
        per_sample, checksums = _write_shard(tmp, [s for _, s in buffers[split_name]])
        for position, (index, sample) in enumerate(buffers[split_name]):
            record = manifest_record(sample, index, split_name, name, position)
            record["sha256"] = per_sample[position]
            if sources is not None and sample.planet_id in sources:
                record["sources"] = sources[sample.planet_id]
            records[split_name].append(record)
        shards[split_name].append({"name": name, "count": len(buffers[split_name]),
                                   "sha256": checksums, "tmp": tmp})
        buffers[split_name].clear()

    with tqdm(total=total, unit="sample", desc="write", disable=not progress) as bar:
        for index, sample in enumerate(samples):
            sample.validate(config.climate_shape, config.spectrum_bins)
            if sample.planet_id in seen:
                raise DataError(f"planet_id repeats sample {seen[sample.planet_id]} of the "
                                "stream", sample=sample.planet_id, field="planet_id")
            seen[sample.planet_id] = index
            split_name = _split_of(split, index, sample, config)
            buffers[split_name].append((index, sample))
            if len(buffers[split_name]) == config.shard_size:
                flush(split_name)
            bar.update(1)
    for split_name in SPLITS:
        if buffers[split_name]:
            flush(split_name)
    if not seen:
        raise DataError("no sample to write", file=str(out))

    if tokenizer is None:
        if not records["train"]:
            raise DataError("no planet landed in the train split, so no tokenizer can be "
                            "trained; give a split, a tokenizer, or more planets",
                            file=str(out), field="split")
        tokenizer = train_tokenizer([r["text"] for r in records["train"]], config.vocab_size)
        trained_on = "train"
    else:
        trained_on = "given"
        if len(tokenizer) > config.vocab_size:
            raise ConfigError(f"the tokenizer has {len(tokenizer)} tokens, more than "
                              f"data.vocab_size {config.vocab_size}")
    for split_name in SPLITS:
        for shard in shards[split_name]:
            shard_records = [r for r in records[split_name] if r["shard"] == shard["name"]]
            ids = encode_texts(tokenizer, [r["text"] for r in shard_records],
                               config.max_text_tokens)
            for record, tokens in zip(shard_records, ids, strict=True):
                record["n_tokens"] = len(tokens)
            shard["sha256"].update(_write_tokens(shard["tmp"], ids))
            os.rename(shard.pop("tmp"), out / split_name / shard["name"])

    tokenizer_tmp = out / (TOKENIZER_FILE + TMP_SUFFIX)
    save_tokenizer(tokenizer, tokenizer_tmp)
    os.replace(tokenizer_tmp, out / TOKENIZER_FILE)
    files = {TOKENIZER_FILE: sha256_bytes((out / TOKENIZER_FILE).read_bytes())}
    files[MANIFEST_FILE] = write_text_atomic(out / MANIFEST_FILE, "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for s in SPLITS for r in records[s]))
    config = dataclasses.replace(config, n_samples=len(seen))
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "npy_version": ".".join(map(str, NPY_VERSION)),
        "source": source or {"kind": "samples"},
        "generator_version": generator_version,
        "preset": preset,
        "seed": config.seed,
        "n_samples": len(seen),
        "config": dataclasses.asdict(config),
        "climate_shape": list(config.climate_shape),
        "climate_variables": list(CLIMATE_VARIABLES),
        "param_names": list(PARAM_NAMES),
        "modalities": list(MODALITIES),
        "habitability_classes": list(HABITABILITY_CLASSES),
        "tokenizer": {"file": TOKENIZER_FILE, "vocab_size": len(tokenizer),
                      "pad_id": tokenizer.pad_token_id, "bos_id": tokenizer.bos_token_id,
                      "eos_id": tokenizer.eos_token_id, "trained_on": trained_on},
        "param_distribution": {"split": "train", **param_distribution(records["train"])},
        "splits": {s: {**split_summary(records[s]), "shards": shards[s]} for s in SPLITS},
    }
    files[README_FILE] = write_text_atomic(out / README_FILE, _readme(card))
    card["files"] = files
    card[CARD_CHECKSUM] = card_checksum(card)
    write_text_atomic(out / CARD_FILE, json.dumps(card, indent=2) + "\n")
    (out / BUILD_MARKER).unlink()
    return out
