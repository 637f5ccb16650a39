"""Edit a built dataset the way a buggy writer would: change files, then record their new
checksums (`reseal`), so that the content checks behind the checksums are what a test meets."""

import json
from pathlib import Path

from astrobio.checksum import sha256_file
from astrobio.data.format import (
    CARD_CHECKSUM,
    CARD_FILE,
    MANIFEST_FILE,
    README_FILE,
    SAMPLE_FILES,
    SHARD_FILES,
    card_checksum,
    read_manifest,
)
from astrobio.data.tokenizer import TOKENIZER_FILE


def reseal(root: Path) -> None:
    """Record every file's present sha256 in the manifest and card."""
    root = Path(root)
    records = read_manifest(root)
    for record in records:
        directory = root / record["split"] / record["shard"]
        record["sha256"] = {field: sha256_file(directory / field / f"{record['position']:06d}.npy")
                            for field in SAMPLE_FILES
                            if (directory / field / f"{record['position']:06d}.npy").is_file()}
    (root / MANIFEST_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    card = json.loads((root / CARD_FILE).read_text())
    for split, summary in card["splits"].items():
        for shard in summary["shards"]:
            directory = root / split / shard["name"]
            shard["sha256"] = {f"{name}.npy": sha256_file(directory / f"{name}.npy")
                               for name in SHARD_FILES if (directory / f"{name}.npy").is_file()}
    card["files"] = {name: sha256_file(root / name)
                     for name in (MANIFEST_FILE, TOKENIZER_FILE, README_FILE)}
    card[CARD_CHECKSUM] = card_checksum(card)
    (root / CARD_FILE).write_text(json.dumps(card, indent=2))
