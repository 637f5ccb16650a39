"""The on-disk dataset: what `build_dataset` writes is what `AstroBioDataset` reads back,
the generator being the truth; determinism, atomicity, bad files."""

import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from _edits import reseal
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from astrobio.config import DataConfig
from astrobio.data import build as build_module
from astrobio.data.batch import multimodal_collate_fn
from astrobio.data.build import build_dataset, split_indices
from astrobio.data.format import BUILD_MARKER, CARD_FILE, SPLITS, read_card, read_manifest
from astrobio.data.reader import AstroBioDataset
from astrobio.data.synthetic import generate_sample
from astrobio.data.tokenizer import encode_text, load_tokenizer
from astrobio.errors import ConfigError, DataError
from astrobio.schema import PAD_TOKEN_ID

ARRAY_FIELDS = ("climate", "node_features", "edge_index", "edge_attr", "spectrum",
                "spectrum_err", "spectrum_mask", "params", "present")


def _config(seed: int) -> DataConfig:
    return DataConfig(n_samples=40, shard_size=16, seed=seed)


@pytest.fixture(scope="module")
def data_seed():
    seed = int(os.environ.get("ASTROBIO_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    print(f"ASTROBIO_TEST_SEED={seed} (dataset)")
    return seed


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_seed):
    config = _config(data_seed)
    return build_dataset(config, tmp_path_factory.mktemp("ds") / "data", progress=False), config


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_splits_follow_seed_and_fractions(built):
    root, config = built
    card, records = read_card(root), read_manifest(root)
    n_val, n_test = round(40 * config.val_fraction), round(40 * config.test_fraction)
    counts = {s: card["splits"][s]["count"] for s in SPLITS}
    assert counts == {"train": 40 - n_val - n_test, "val": n_val, "test": n_test}
    indices = {s: sorted(r["index"] for r in records if r["split"] == s) for s in SPLITS}
    assert sorted(sum(indices.values(), [])) == list(range(40))
    other = split_indices(40, config.val_fraction, config.test_fraction, config.seed + 1)
    assert any(indices[s] != other[s].tolist() for s in SPLITS)  # the seed matters
    # Shards hold `shard_size` samples, the last the remainder.
    for split in SPLITS:
        full, rest = divmod(counts[split], config.shard_size)
        expected = [config.shard_size] * full + ([rest] if rest else [])
        assert [s["count"] for s in card["splits"][split]["shards"]] == expected


def test_items_equal_the_generator(built):
    root, config = built
    tokenizer = load_tokenizer(root)
    for split in SPLITS:
        dataset = AstroBioDataset(root, split)
        assert len(dataset) == read_card(root)["splits"][split]["count"]
        for i in range(len(dataset)):
            sample = dataset[i]
            truth = generate_sample(dataset.records[i]["index"], config)
            assert sample.planet_id == truth.planet_id and sample.text == truth.text
            for field in ARRAY_FIELDS:
                got, want = getattr(sample, field), getattr(truth, field)
                assert got.dtype == want.dtype and np.array_equal(got, want), field
            for label in ("habitable", "habitability_class", "biosignature", "has_targets"):
                assert getattr(sample, label) == getattr(truth, label), label
            assert sample.surface_temperature == pytest.approx(truth.surface_temperature,
                                                               rel=1e-6)
            want_ids = encode_text(tokenizer, truth.text, config.max_text_tokens)
            assert sample.input_ids.tolist() == want_ids.tolist()
            assert len(want_ids) <= config.max_text_tokens and want_ids[0] == 1


def test_shards_are_memory_mapped_and_not_pickled(built):
    root, _ = built
    dataset = AstroBioDataset(root, "train")
    dataset[0]
    shard = next(iter(dataset._shards.values()))
    assert isinstance(shard.arrays["node_features"], np.memmap)
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._shards == {}
    assert np.array_equal(clone[0].climate, dataset[0].climate)


def test_build_is_deterministic(built, tmp_path):
    root, config = built
    first = _files(root)
    for workers in (1, 2):
        again = build_dataset(config, tmp_path / f"again{workers}", progress=False,
                              workers=workers)
        second = _files(again)
        assert sorted(first) == sorted(second)
        assert [str(p) for p in first if first[p] != second[p]] == []


def test_incomplete_and_foreign_directories(built, tmp_path):
    root, config = built
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    with pytest.raises(DataError, match="complete dataset is already here"):
        build_dataset(config, copy, progress=False)
    (copy / CARD_FILE).unlink()
    with pytest.raises(DataError, match="card.json is missing") as err:
        AstroBioDataset(copy)
    assert err.value.file == str(copy / CARD_FILE)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not an AstroBio dataset"):
        build_dataset(config, foreign, progress=False)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_interrupted_build_is_refused_then_rebuilt(built, tmp_path, monkeypatch):
    root, config = built
    out = tmp_path / "interrupted"
    real = build_module.generate_samples
    calls = []

    def failing(start, stop, cfg):
        calls.append(start)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(start, stop, cfg)

    monkeypatch.setattr(build_module, "generate_samples", failing)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(config, out, progress=False)
    monkeypatch.setattr(build_module, "generate_samples", real)
    assert (out / BUILD_MARKER).exists() and not (out / CARD_FILE).exists()
    # Nothing written so far carries a final shard name.
    written = list(out.glob("*/shard-*"))
    assert written and all(p.name.endswith(".tmp") for p in written)
    with pytest.raises(DataError, match="unfinished build"):
        AstroBioDataset(out)
    build_dataset(config, out, progress=False)
    assert _files(out) == _files(root)


def test_bad_files_name_file_sample_and_field(built, tmp_path):
    """Defects behind valid checksums (a buggy writer's): the content checks name them."""
    root, _ = built
    copy = tmp_path / "bad"
    shutil.copytree(root, copy)
    records = [r for r in read_manifest(copy) if r["split"] == "train"]
    shard = copy / "train" / records[0]["shard"]

    climate = shard / "climate" / f"{records[1]['position']:06d}.npy"
    climate.write_bytes(climate.read_bytes()[:-100])
    reseal(copy)
    dataset = AstroBioDataset(copy, "train")
    with pytest.raises(DataError, match="truncated") as err:
        dataset[1]
    assert (err.value.file, err.value.sample, err.value.field) == (
        str(climate), records[1]["planet_id"], "climate")

    spectrum = shard / "spectrum" / f"{records[2]['position']:06d}.npy"
    value = np.load(spectrum)
    value[3] = np.nan
    np.save(spectrum, value)
    reseal(copy)
    with pytest.raises(DataError, match="non-finite") as err:
        AstroBioDataset(copy, "train")[2]
    assert (err.value.sample, err.value.field) == (records[2]["planet_id"], "spectrum")

    params = shard / "params.npy"
    np.save(params, np.load(params).astype(np.float64))
    reseal(copy)
    with pytest.raises(DataError, match="dtype float64") as err:
        AstroBioDataset(copy, "train")[0]
    assert (err.value.file, err.value.field) == (str(params), "params")


def test_an_edited_file_fails_its_checksum(built, tmp_path):
    root, _ = built
    copy = tmp_path / "edited"
    shutil.copytree(root, copy)
    record = [r for r in read_manifest(copy) if r["split"] == "train"][2]
    spectrum = copy / "train" / record["shard"] / "spectrum" / f"{record['position']:06d}.npy"
    value = np.load(spectrum)
    value[3] = 1.0 + value[3]  # finite, well-formed: only the checksum can tell
    np.save(spectrum, value)
    with pytest.raises(DataError, match="sha256") as err:
        AstroBioDataset(copy, "train")[2]
    assert (err.value.file, err.value.sample, err.value.field) == (
        str(spectrum), record["planet_id"], "spectrum")
    assert f"train/{record['shard']}" in str(err.value)


def test_a_user_tokenizer_with_another_pad_id(built, tmp_path, rng):
    root, config = built
    words = sorted({w for r in read_manifest(root) for w in r["text"].split()})
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]"]  # pad is id 3, not 0
    vocab = {w: i for i, w in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", bos_token="[CLS]",
                            eos_token="[SEP]", pad_token="[PAD]").save_pretrained(tmp_path / "hf")
    dataset = AstroBioDataset(root, "train", tokenizer=tmp_path / "hf")
    assert dataset.tokenizer.pad_token_id == 3
    picks = rng.choice(len(dataset), 5, replace=False)
    samples = [dataset[int(i)] for i in picks]
    for sample in samples:
        body = [vocab.get(w, 0) for w in sample.text.split()][: config.max_text_tokens - 2]
        assert sample.input_ids.tolist() == [1, *body, 2]
    batch = multimodal_collate_fn(samples)
    lengths = torch.tensor([len(s.input_ids) for s in samples])
    assert torch.equal(batch.attention_mask.sum(1), lengths)
    assert (batch.input_ids[batch.attention_mask == 0] == PAD_TOKEN_ID).all()


def test_bad_arguments(built):
    root, _ = built
    with pytest.raises(ConfigError, match="unknown split"):
        AstroBioDataset(root, "training")
    dataset = AstroBioDataset(root, "val")
    with pytest.raises(IndexError):
        dataset[len(dataset)]
