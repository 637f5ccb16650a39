"""Check a built dataset and report every defect, not only the first.

File level: every file's sha256 against the one recorded in the card or manifest, missing,
unreadable or truncated `.npy` files, a format version other than 1.0, wrong dtypes and shapes,
offsets that do not cut their arrays, shard names that are no shard names (refused, never
read), files or shards the card and manifest do not know, leftovers of an interrupted build.
Sample level: `PlanetSample.problems` (NaN/inf, edge indices out of range, labels out of range,
...) on what the files hold, the manifest against the arrays, the token ids against the
tokenizer. Dataset level: the card against the manifest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from astrobio.checksum import sha256_file
from astrobio.data.format import (
    BUILD_MARKER,
    CARD_CHECKSUM,
    CARD_FILE,
    LABELS,
    MANIFEST_FILE,
    MANIFEST_KEYS,
    OFFSETS,
    RAGGED,
    README_FILE,
    SAMPLE_FILES,
    SHARD_FILES,
    SHARD_PATTERN,
    SPLITS,
    TMP_SUFFIX,
    card_checksum,
    card_config,
    field_file,
    inspect_npy,
    read_card,
    read_manifest,
    sample_file,
    sample_shapes,
    shard_shapes,
)
from astrobio.data.sample import PlanetSample
from astrobio.data.tokenizer import TOKENIZER_FILE, encode_texts, load_tokenizer
from astrobio.data.writer import split_summary
from astrobio.errors import DataError, Problem
from astrobio.schema import MODALITIES, PARAM_NAMES


class _Validator:
    def __init__(self, root: Path, progress: bool):
        self.root, self.progress = root, progress
        self.problems: list[Problem] = []
        self.known_files: set[Path] = {root / CARD_FILE}

    def report(self, file, message, sample=None, field=None) -> None:
        self.problems.append(Problem(str(file), message, sample, field))

    def run(self) -> list[Problem]:
        if not self.root.is_dir():
            self.report(self.root, "no such dataset directory")
            return self.problems
        for path in sorted(self.root.rglob(f"*{TMP_SUFFIX}")):
            self.report(path, "left over from an interrupted build or write")
        if (self.root / BUILD_MARKER).exists():
            self.report(self.root / BUILD_MARKER, "build marker present: the build did not finish")
        try:
            card = read_card(self.root, verify=False)
            config = card_config(card, self.root)
        except DataError as err:
            self.report(err.file or self.root, err.message, field=err.field)
            return self.problems
        self.card, self.config = card, config
        if card.get(CARD_CHECKSUM) != card_checksum(card):
            self.report(self.root / CARD_FILE, "the card's content does not match its recorded "
                        "sha256 (edited or damaged)", field=CARD_CHECKSUM)
        self.check_card()
        for name in (MANIFEST_FILE, TOKENIZER_FILE, README_FILE):
            self.check_checksum(self.root / name, (card.get("files") or {}).get(name))
        records = self.check_manifest()
        tokenizer = self.check_tokenizer()
        with tqdm(total=sum(len(r) for r in records.values()), unit="sample", desc="validate",
                  disable=not self.progress) as bar:
            for split in SPLITS:
                self.check_split(split, records, tokenizer, bar)
        self.check_unknown_files()
        return self.problems

    def check_checksum(self, path: Path, expected, sample=None, field=None,
                       shard: str | None = None) -> None:
        """The file's sha256 against the recorded one (a missing file is reported where its
        content is checked)."""
        self.known_files.add(path)
        if not path.is_file():
            return
        where = f" (shard {shard})" if shard else ""
        if not isinstance(expected, str):
            self.report(path, f"no sha256 recorded for this file{where}", sample=sample,
                        field=field or "sha256")
            return
        try:
            actual = sha256_file(path)
        except OSError as err:
            self.report(path, f"unreadable: {err.strerror}", sample=sample, field=field)
            return
        if actual != expected:
            self.report(path, f"sha256 {actual[:12]}... differs from the recorded "
                        f"{expected[:12]}...: changed after the dataset was written{where}",
                        sample=sample, field=field or "sha256")

    def check_unknown_files(self) -> None:
        """Every file under the root that the card and manifest do not record."""
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            if path in self.known_files or path.name.endswith(TMP_SUFFIX) or any(
                    part.endswith(TMP_SUFFIX) for part in path.relative_to(self.root).parts):
                continue  # temporary leftovers are reported as such
            if path.name == BUILD_MARKER:
                continue
            self.report(path, "unknown file: neither the card nor the manifest records it")

    def check_card(self) -> None:
        card, config, file = self.card, self.config, self.root / "card.json"
        if tuple(card.get("climate_shape", ())) != config.climate_shape:
            self.report(file, f"{card.get('climate_shape')} disagrees with the config's "
                        f"{list(config.climate_shape)}", field="climate_shape")
        splits = card.get("splits")
        if not isinstance(splits, dict) or set(splits) != set(SPLITS):
            self.report(file, f"expected the splits {list(SPLITS)}", field="splits")
            card["splits"] = {s: {"count": 0, "shards": []} for s in SPLITS}
            return
        total = sum(s.get("count", 0) for s in splits.values())
        if total != card.get("n_samples") or total != config.n_samples:
            self.report(file, f"the splits hold {total} samples, n_samples says "
                        f"{card.get('n_samples')}, the config {config.n_samples}",
                        field="n_samples")
        for split, summary in splits.items():
            shards = summary.get("shards", [])
            if sum(s.get("count", 0) for s in shards) != summary.get("count"):
                self.report(file, "the shard counts do not add up to the split's count",
                            field=f"splits.{split}")

    def check_manifest(self) -> dict[tuple[str, str], dict[int, tuple[int, dict]]]:
        """Manifest records by (split, shard) and position, each with its line number."""
        file = self.root / MANIFEST_FILE
        try:
            lines = read_manifest(self.root)
        except DataError as err:
            self.report(file, err.message)
            lines = []
        by_shard: dict[tuple[str, str], dict[int, tuple[int, dict]]] = {}
        seen_ids: dict[str, int] = {}
        by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
        for line, record in enumerate(lines, start=1):
            where = f"{file}:{line}"
            if not isinstance(record, dict):
                self.report(where, "not a JSON object")
                continue
            planet_id = record.get("planet_id")
            bad = [k for k, t in MANIFEST_KEYS.items() if not isinstance(record.get(k), t)]
            if bad:
                self.report(where, f"missing or mistyped keys {bad}", sample=planet_id)
                continue
            if planet_id in seen_ids:
                self.report(where, f"planet_id repeats line {seen_ids[planet_id]}",
                            sample=planet_id, field="planet_id")
            seen_ids[planet_id] = line
            for field, message in self.record_problems(record):
                self.report(where, message, sample=planet_id, field=field)
            if record["split"] not in SPLITS:
                self.report(where, f"unknown split {record['split']!r}", sample=planet_id,
                            field="split")
                continue
            shard = by_shard.setdefault((record["split"], record["shard"]), {})
            if record["position"] in shard:
                self.report(where, f"position {record['position']} of {record['shard']} repeats"
                            f" line {shard[record['position']][0]}", sample=planet_id,
                            field="position")
                continue
            shard[record["position"]] = (line, record)
            by_split[record["split"]].append(record)
        for split in SPLITS:
            self.check_summary(split, by_split[split])
        return by_shard

    def record_problems(self, record: dict) -> list[tuple[str, str]]:
        """The manifest's params, labels and presence, judged by `PlanetSample.problems`."""
        params, labels, present = record["params"], record["labels"], record["present"]
        found = []
        for name, keys, expected in (("params", params, PARAM_NAMES), ("labels", labels, LABELS),
                                     ("present", present, MODALITIES)):
            if sorted(keys) != sorted(expected):
                found.append((name, f"keys {sorted(keys)}, expected {sorted(expected)}"))
        if found:
            return found
        try:
            stand_in = dataclasses.replace(
                PlanetSample.blank(record["planet_id"], self.config.climate_shape,
                                   self.config.spectrum_bins),
                params=np.array([params[k] for k in PARAM_NAMES], np.float32),
                present=np.array([present[m] for m in MODALITIES], bool), **labels)
        except (TypeError, ValueError) as err:
            return [("labels", f"unreadable values: {err}")]
        return stand_in.problems(self.config.climate_shape, self.config.spectrum_bins)

    def check_summary(self, split: str, records: list[dict]) -> None:
        card_summary = self.card["splits"].get(split, {})
        for key, value in split_summary(records).items():
            if card_summary.get(key) != value:
                self.report(self.root / "card.json", f"card says {card_summary.get(key)}, the "
                            f"manifest gives {value}", field=f"splits.{split}.{key}")

    def check_tokenizer(self):
        file = self.root / TOKENIZER_FILE
        try:
            tokenizer = load_tokenizer(file)
        except DataError as err:
            self.report(file, err.message, field="tokenizer")
            return None
        info = self.card.get("tokenizer", {})
        if len(tokenizer) != info.get("vocab_size"):
            self.report(file, f"{len(tokenizer)} tokens, the card says {info.get('vocab_size')}",
                        field="vocab_size")
        if len(tokenizer) > self.config.vocab_size:
            self.report(file, f"{len(tokenizer)} tokens exceed the config's vocab_size "
                        f"{self.config.vocab_size}", field="vocab_size")
        if tokenizer.pad_token_id != 0:
            self.report(file, f"pad id {tokenizer.pad_token_id}, expected 0", field="pad_id")
        return tokenizer

    def check_split(self, split: str, records: dict, tokenizer, bar) -> None:
        card_shards, checksums = {}, {}
        for entry in self.card["splits"][split].get("shards", []):
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not SHARD_PATTERN.fullmatch(name):
                self.report(self.root / CARD_FILE, f"{name!r} is not a shard name "
                            "(shard-NNNNN); refused, nothing read",
                            field=f"splits.{split}.shards")
                continue
            card_shards[name] = entry.get("count", 0)
            checksums[name] = entry.get("sha256") if isinstance(entry.get("sha256"),
                                                                 dict) else {}
        split_dir = self.root / split
        on_disk = {p.name for p in split_dir.iterdir()} if split_dir.is_dir() else set()
        for name in sorted(on_disk - set(card_shards)):
            if not name.endswith(TMP_SUFFIX):
                self.report(split_dir / name, "not listed in the card")
                self.known_files.update(p for p in (split_dir / name).rglob("*"))
        for (record_split, name), entries in sorted(records.items()):
            if record_split == split and name not in card_shards:
                for line, record in entries.values():
                    self.report(f"{self.root / MANIFEST_FILE}:{line}", "manifest entry without "
                                f"data: shard {name} is not in the card",
                                sample=record["planet_id"], field="shard")
        for name, count in card_shards.items():
            entries = records.get((split, name), {})
            self.check_shard(split_dir / name, count, entries, tokenizer, checksums[name])
            bar.update(len(entries))

    def check_shard(self, directory: Path, n: int, entries: dict, tokenizer,
                    checksums: dict) -> None:
        manifest = self.root / MANIFEST_FILE
        shard = f"{directory.parent.name}/{directory.name}"
        for name in SHARD_FILES:
            self.check_checksum(directory / f"{name}.npy", checksums.get(f"{name}.npy"),
                                field=name, shard=shard)
        for position, (_, record) in sorted(entries.items()):
            for field in SAMPLE_FILES:
                if 0 <= position < n:
                    self.check_checksum(field_file(directory, field, position),
                                        record["sha256"].get(field), sample=record["planet_id"],
                                        field=field, shard=shard)
        for position, (line, record) in sorted(entries.items()):
            if not 0 <= position < n:
                self.report(f"{manifest}:{line}", f"manifest entry without data: position "
                            f"{position} is beyond the shard's {n} samples",
                            sample=record["planet_id"], field="position")
        missing = [p for p in range(n) if p not in entries]
        if missing:
            self.report(manifest, f"no entry for positions {missing} of {directory.name}",
                        field="position")
        if not directory.is_dir():
            for _, record in entries.values():
                self.report(directory, "manifest entry without data: shard directory missing",
                            sample=record["planet_id"])
            return
        arrays = self.shard_arrays(directory, n)
        for field in SAMPLE_FILES:
            expected = {sample_file(p) for p in range(n)}
            present = {p.name for p in (directory / field).iterdir()} \
                if (directory / field).is_dir() else set()
            for name in sorted(present - expected):
                self.report(directory / field / name, "not a sample of this shard")
                self.known_files.add(directory / field / name)
        texts = [entries[p][1]["text"] if p in entries else "" for p in range(n)]
        encoded = encode_texts(tokenizer, texts, self.config.max_text_tokens) \
            if tokenizer is not None else [None] * n
        for position in range(n):
            record = entries.get(position, (None, None))[1]
            planet_id = record["planet_id"] if record else f"{directory.name}[{position}]"
            self.check_sample(directory, position, planet_id, record, arrays,
                              encoded[position], tokenizer)

    def shard_arrays(self, directory: Path, n: int) -> dict[str, np.ndarray]:
        """The readable, well-shaped per-shard arrays; a problem reported for each other."""
        arrays = {}
        for name in OFFSETS:
            array, messages = inspect_npy(directory / f"{name}.npy", SHARD_FILES[name], (n + 1,))
            if array is not None and (array[0] != 0 or (np.diff(array) < 0).any()):
                messages = ["offsets must start at 0 and never decrease"]
            for message in messages:
                self.report(directory / f"{name}.npy", message, field=name)
            if not messages:
                arrays[name] = np.array(array)
        totals = [int(arrays[k][-1]) if k in arrays else None for k in OFFSETS]
        shapes = shard_shapes(n, *(t if t is not None else -1 for t in totals))
        for name, dtype in SHARD_FILES.items():
            if name in OFFSETS:
                continue
            known = name not in RAGGED or RAGGED[name] in arrays
            array, messages = inspect_npy(directory / f"{name}.npy", dtype,
                                          shapes[name] if known else None)
            for message in messages:
                self.report(directory / f"{name}.npy", message, field=name)
            if array is not None and known:
                arrays[name] = array
        return arrays

    def check_sample(self, directory: Path, position: int, planet_id: str, record: dict | None,
                     arrays: dict, tokens: np.ndarray | None, tokenizer) -> None:
        config = self.config
        values: dict[str, object] = {}
        for field, dtype in SAMPLE_FILES.items():
            path = field_file(directory, field, position)
            array, messages = inspect_npy(path, dtype, sample_shapes(config)[field])
            for message in messages:
                self.report(path, message, sample=planet_id, field=field)
            if array is not None:
                values[field] = np.array(array)
        for field in ("node_features", "edge_index", "edge_attr", "input_ids"):
            offsets = arrays.get(RAGGED[field])
            if field in arrays and offsets is not None:
                start, stop = offsets[position], offsets[position + 1]
                rows = arrays[field][:, start:stop] if field == "edge_index" else \
                    arrays[field][start:stop]
                values[field] = np.array(rows)
        for field in ("params", "present", *LABELS):
            if field in arrays:
                values[field] = arrays[field][position]
        self.check_sample_values(directory, position, planet_id, values)
        if record is not None:
            self.check_against_manifest(directory, position, planet_id, record, values)
        ids = values.get("input_ids")
        if ids is not None and tokenizer is not None:
            path = directory / "input_ids.npy"
            if len(ids) > config.max_text_tokens:
                self.report(path, f"{len(ids)} tokens exceed max_text_tokens "
                            f"{config.max_text_tokens}", sample=planet_id, field="input_ids")
            if ids.size and (ids.min() < 0 or ids.max() >= len(tokenizer)):
                self.report(path, f"ids span [{ids.min()}, {ids.max()}], the tokenizer has "
                            f"{len(tokenizer)}", sample=planet_id, field="input_ids")
            elif record is not None and not np.array_equal(ids, tokens):
                self.report(path, "differ from the tokenizer's encoding of the manifest text",
                            sample=planet_id, field="input_ids")

    def check_sample_values(self, directory: Path, position: int, planet_id: str,
                            values: dict) -> None:
        """`PlanetSample.problems` on what could be read. Unreadable fields (reported already)
        stand in as valid zeros, and findings on them are dropped."""
        config = self.config
        blank = PlanetSample.blank(planet_id, config.climate_shape, config.spectrum_bins)
        n_nodes = values["node_features"].shape[0] if "node_features" in values else 0
        n_edges = (values["edge_index"].shape[1] if "edge_index" in values
                   else values["edge_attr"].shape[0] if "edge_attr" in values else 0)
        stand_ins = {
            "node_features": np.zeros((n_nodes, blank.node_features.shape[1]), np.float32),
            "edge_index": np.zeros((2, n_edges), np.int64),
            "edge_attr": np.zeros((n_edges, blank.edge_attr.shape[1]), np.float32),
        }
        fields = [*SAMPLE_FILES, *stand_ins, "params", "present", *LABELS]
        missing = {f for f in fields if f not in values}
        if "node_features" in missing:
            missing.add("edge_index")  # its range check needs the true node count
        sample = dataclasses.replace(blank, **{
            f: values[f] if f in values else stand_ins.get(f, getattr(blank, f))
            for f in fields})
        for field, message in sample.problems(config.climate_shape, config.spectrum_bins):
            if field not in missing:
                self.report(field_file(directory, field, position), message, sample=planet_id,
                            field=field)

    def check_against_manifest(self, directory: Path, position: int, planet_id: str,
                               record: dict, values: dict) -> None:
        manifest = self.root / MANIFEST_FILE
        if record["split"] != directory.parent.name or record["shard"] != directory.name:
            self.report(manifest, "manifest points elsewhere", sample=planet_id, field="shard")
        expected = {
            "params": np.array([record["params"].get(k, np.nan) for k in PARAM_NAMES],
                               np.float32),
            "present": np.array([record["present"].get(m, False) for m in MODALITIES], bool),
            **{label: np.asarray(record["labels"].get(label), dtype)
               for label, dtype in LABELS.items()},
        }
        for field, value in expected.items():
            if field in values and not np.array_equal(values[field], value):
                self.report(field_file(directory, field, position),
                            f"holds {np.asarray(values[field]).tolist()}, the manifest says "
                            f"{value.tolist()}", sample=planet_id, field=field)
        counts = {"node_features": ("n_nodes", 0), "edge_index": ("n_edges", 1),
                  "input_ids": ("n_tokens", 0)}
        for field, (key, axis) in counts.items():
            if field in values and values[field].shape[axis] != record[key]:
                self.report(field_file(directory, field, position),
                            f"{values[field].shape[axis]} rows, the manifest's {key} says "
                            f"{record[key]}", sample=planet_id, field=field)


def validate_dataset(root: str | Path, *, progress: bool = False) -> list[Problem]:
    """Every problem found in the dataset at `root`; empty when it is sound."""
    return _Validator(Path(root), progress).run()

