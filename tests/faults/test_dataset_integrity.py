"""Faults in a dataset on disk: one flipped byte in any file is a named error (file, shard), and
a manifest or card naming a path outside the dataset is refused without reading it."""

import builtins
import io
import json
import shutil
from pathlib import Path

import pytest

from astrobio.config import DataConfig
from astrobio.data import AstroBioDataset, write_dataset
from astrobio.data.__main__ import main as data_main
from astrobio.data.format import (
    CARD_CHECKSUM,
    CARD_FILE,
    MANIFEST_FILE,
    card_checksum,
    read_manifest,
)
from astrobio.data.synthetic import generate_samples
from astrobio.data.tokenizer import TOKENIZER_FILE
from astrobio.data.validate import validate_dataset
from astrobio.errors import DataError
from astrobio.train.__main__ import main as train_main

CONFIG = DataConfig(n_samples=16, shard_size=4, vocab_size=300, max_text_tokens=40)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity") / "data"
    return write_dataset(generate_samples(0, CONFIG.n_samples, CONFIG), root, CONFIG,
                         split=lambda i, _: "train" if i < 12 else "test", progress=False)


@pytest.fixture
def copy(pristine, tmp_path):
    return Path(shutil.copytree(pristine, tmp_path / "data"))


def flip(path: Path, rng, skip: int = 128) -> int:
    """XOR one bit of one byte past the first `skip` bytes (past a .npy header); returns it."""
    data = bytearray(path.read_bytes())
    at = int(rng.integers(min(skip, len(data) - 1), len(data)))
    data[at] ^= 1 << int(rng.integers(0, 8))
    path.write_bytes(bytes(data))
    return at


def read_all(root: Path, split: str) -> list:
    dataset = AstroBioDataset(root, split)
    return [dataset[i] for i in range(len(dataset))]


@pytest.mark.parametrize("name", ["params.npy", "node_features.npy", "input_ids.npy",
                                  "token_offsets.npy", "present.npy"])
def test_a_flipped_byte_in_a_shard_array(copy, rng, name):
    record = [r for r in read_manifest(copy) if r["split"] == "train"][5]  # shard 1
    path = copy / "train" / record["shard"] / name
    flip(path, rng)
    dataset = AstroBioDataset(copy, "train")  # opening checks nothing of shard 1 yet
    assert dataset[0].planet_id  # shard 0 is untouched and reads
    with pytest.raises(DataError, match="sha256") as err:
        dataset[5]
    assert err.value.file == str(path)
    assert f"shard train/{record['shard']}" in str(err.value)
    assert err.value.field == name.removesuffix(".npy")


@pytest.mark.parametrize("field", ["climate", "spectrum", "spectrum_err", "spectrum_mask"])
def test_a_flipped_byte_in_a_sample_file(copy, rng, field):
    records = [r for r in read_manifest(copy) if r["split"] == "train"]
    bad = records[6]
    path = copy / "train" / bad["shard"] / field / f"{bad['position']:06d}.npy"
    flip(path, rng)
    dataset = AstroBioDataset(copy, "train")
    with pytest.raises(DataError, match="sha256") as err:
        dataset[6]
    assert (err.value.file, err.value.sample, err.value.field) == (str(path),
                                                                  bad["planet_id"], field)
    assert f"shard train/{bad['shard']}" in str(err.value)
    # nothing else lost: every other planet of the split, its shard included, still reads
    assert [dataset[i].planet_id for i in range(len(dataset)) if i != 6] == \
        [r["planet_id"] for r in records if r is not bad]


def test_dali_style_reads_check_sample_files_when_the_shard_opens(copy, rng):
    record = [r for r in read_manifest(copy) if r["split"] == "train"][1]
    path = copy / "train" / record["shard"] / "climate" / f"{record['position']:06d}.npy"
    flip(path, rng)
    dataset = AstroBioDataset(copy, "train", read_sample_files=False)
    with pytest.raises(DataError, match="sha256") as err:
        dataset[0]  # the first planet of the shard opens it
    assert err.value.file == str(path) and err.value.field == "climate"


def test_a_flipped_byte_in_the_manifest_or_card(copy, rng):
    manifest = copy / MANIFEST_FILE
    original = manifest.read_bytes()
    flip(manifest, rng, skip=0)
    with pytest.raises(DataError, match="sha256") as err:
        AstroBioDataset(copy, "train")
    assert err.value.file == str(manifest)
    manifest.write_bytes(original)
    card = copy / CARD_FILE
    text = card.read_text()
    digit = text.index('"n_samples": 16') + len('"n_samples": 1')
    card.write_text(text[:digit] + "7" + text[digit + 1:])  # 16 -> 17, still valid JSON
    with pytest.raises(DataError, match="sha256") as err:
        AstroBioDataset(copy, "train")
    assert (err.value.file, err.value.field) == (str(card), CARD_CHECKSUM)


def test_validate_names_every_flipped_file(copy, rng, capsys):
    record = read_manifest(copy)[3]
    shard = copy / "test" / "shard-00000"
    flipped = [shard / "edge_attr.npy", copy / TOKENIZER_FILE,
               copy / "train" / record["shard"] / "spectrum" / f"{record['position']:06d}.npy"]
    for path in flipped:
        flip(path, rng, skip=0 if path.suffix == ".json" else 128)
    problems = validate_dataset(copy)
    sha = [p for p in problems if "sha256" in p.message]
    assert sorted(p.file for p in sha) == sorted(str(p) for p in flipped)
    assert any("shard test/shard-00000" in p.message for p in sha)
    assert data_main(["validate", str(copy), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert all(str(p) in out for p in flipped)


def test_validate_lists_unknown_files(copy):
    (copy / "train" / "shard-00000" / "notes.txt").write_text("mine")
    (copy / "extra.npy").write_bytes(b"\x93NUMPY")
    problems = validate_dataset(copy)
    unknown = sorted(p.file for p in problems if "unknown file" in p.message)
    assert unknown == sorted([str(copy / "extra.npy"),
                              str(copy / "train" / "shard-00000" / "notes.txt")])


def _reseal_card(root: Path, edit) -> None:
    """Edit the card and record its new checksum, as an attacker could."""
    card = json.loads((root / CARD_FILE).read_text())
    edit(card)
    card[CARD_CHECKSUM] = card_checksum(card)
    (root / CARD_FILE).write_text(json.dumps(card))


@pytest.mark.parametrize("name", ["../../outside", "/tmp/outside", "shard-00000/../../x",
                                  "shard-1"])
def test_a_shard_name_outside_the_dataset_is_refused_unread(copy, tmp_path, monkeypatch, name):
    outside = tmp_path / "outside"
    shutil.copytree(copy / "train" / "shard-00001", outside)

    def rename(card):
        card["splits"]["train"]["shards"][1]["name"] = name

    _reseal_card(copy, rename)
    opened = []
    real_open = builtins.open

    def spying_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spying_open)  # numpy's memmap opens with it too
    monkeypatch.setattr(io, "open", spying_open)  # pathlib's read_text and read_bytes
    with pytest.raises(DataError, match="not a shard name") as err:
        AstroBioDataset(copy, "train")
    assert err.value.file == str(copy / CARD_FILE)
    problems = validate_dataset(copy)
    assert any("not a shard name" in p.message and "refused" in p.message for p in problems)
    assert opened and not [f for f in opened if not Path(f).is_relative_to(copy)]


def test_a_manifest_record_pointing_elsewhere_is_refused(copy):
    records = read_manifest(copy)
    records[2]["shard"] = "../../outside"
    records[3]["position"] = -1  # would wrap around to the shard's last planet

    def reseal_manifest(card):
        import hashlib

        text = "".join(json.dumps(r) + "\n" for r in records)
        (copy / MANIFEST_FILE).write_text(text)
        card["files"][MANIFEST_FILE] = hashlib.sha256(text.encode()).hexdigest()

    _reseal_card(copy, reseal_manifest)
    with pytest.raises(DataError, match="shard") as err:
        AstroBioDataset(copy, "train")
    assert err.value.sample == records[2]["planet_id"]
    records[2]["shard"] = "shard-00000"
    _reseal_card(copy, reseal_manifest)
    with pytest.raises(DataError, match="position") as err:
        AstroBioDataset(copy, "train")
    assert err.value.sample == records[3]["planet_id"]


def test_training_refuses_a_changed_dataset_tokenizer(dataset, train_args, tmp_path, rng,
                                                      capsys):
    """The run would keep the changed tokenizer as its own, beside token ids written by
    another: refused before any step, naming the file."""
    copy = Path(shutil.copytree(dataset, tmp_path / "ds"))
    flip(copy / TOKENIZER_FILE, rng, skip=0)
    args = train_args(tmp_path / "run")
    args[args.index("--data") + 1] = str(copy)
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert f"file '{copy / TOKENIZER_FILE}'" in err and "sha256" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "checkpoint.pt").exists()
