"""`write_dataset`: any stream of samples written in the on-disk format and read back unchanged,
with partial labels, splits by rule or hash, a given tokenizer, and the card's statistics."""

import dataclasses
import hashlib

import numpy as np
import pytest

from astrobio.config import DataConfig
from astrobio.data import AstroBioDataset, PlanetSample, write_dataset
from astrobio.data.format import SPLITS, read_card, read_manifest
from astrobio.data.synthetic import generate_samples
from astrobio.data.tokenizer import load_tokenizer
from astrobio.data.validate import validate_dataset
from astrobio.errors import DataError
from astrobio.schema import TARGETS

CONFIG = DataConfig(n_samples=12, shard_size=4, vocab_size=300, max_text_tokens=40,
                    missing_modality_rate=0.3)
ARRAYS = ("climate", "node_features", "edge_index", "edge_attr", "spectrum", "spectrum_err",
          "spectrum_mask", "params", "present")


def _partially_labelled(samples, rng):
    """Each target of each planet hidden with probability 1/2 (the generator knows all)."""
    unknown = {"habitable": -1, "habitability_class": -1, "surface_temperature": 0.0,
               "biosignature": -1}
    out = []
    for sample in samples:
        hidden = {t: unknown[t] for t in TARGETS if rng.random() < 0.5}
        out.append(dataclasses.replace(sample, **hidden, has_targets=len(hidden) < 4))
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    rng = np.random.default_rng(7)
    samples = _partially_labelled(generate_samples(0, CONFIG.n_samples, CONFIG), rng)
    out = write_dataset(iter(samples), tmp_path_factory.mktemp("w") / "data", CONFIG,
                        progress=False)
    return out, samples


def test_round_trip_of_a_stream(written):
    out, samples = written
    assert validate_dataset(out) == []
    by_id = {s.planet_id: s for s in samples}
    read = [d[i] for split in SPLITS for d in [AstroBioDataset(out, split)] for i in range(len(d))]
    assert sorted(s.planet_id for s in read) == sorted(by_id)
    for sample in read:
        truth = by_id[sample.planet_id]
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(sample, name), getattr(truth, name), name)
        assert sample.text == truth.text
        for name in (*TARGETS, "has_targets"):
            assert getattr(sample, name) == pytest.approx(getattr(truth, name)), name


def test_default_split_is_a_hash_of_seed_and_planet(written):
    out, _ = written
    for record in read_manifest(out):
        digest = hashlib.sha256(f"{CONFIG.seed}:{record['planet_id']}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        expected = ("test" if u < 0.25 else "val" if u < 0.35 else "train")
        assert record["split"] == expected


def test_card_counts_targets_and_param_quantiles(written):
    out, samples = written
    card, records = read_card(out), read_manifest(out)
    assert card["n_samples"] == len(samples) and card["config"]["n_samples"] == len(samples)
    by_id = {s.planet_id: s for s in samples}
    for split in SPLITS:
        mine = [by_id[r["planet_id"]] for r in records if r["split"] == split]
        known = card["splits"][split]["targets"]
        assert known["habitable"] == sum(s.habitable >= 0 for s in mine)
        assert known["surface_temperature"] == sum(s.surface_temperature > 0 for s in mine)
        assert card["splits"][split]["labelled"] == sum(s.has_targets for s in mine)
    train = np.array([by_id[r["planet_id"]].params for r in records
                      if r["split"] == "train" and r["present"]["params"]], np.float64)
    distribution = card["param_distribution"]
    assert distribution["n"] == len(train)
    quantiles = np.quantile(train, distribution["quantiles"], axis=0)
    for k, name in enumerate(card["param_names"]):
        np.testing.assert_allclose(distribution["params"][name], quantiles[:, k])


def test_given_split_and_tokenizer(written, tmp_path):
    out, samples = written
    tokenizer = load_tokenizer(out)
    rule = {s.planet_id: SPLITS[i % 3] for i, s in enumerate(samples)}
    again = write_dataset(samples, tmp_path / "again", CONFIG, split=rule, tokenizer=out,
                          progress=False)
    assert {r["planet_id"]: r["split"] for r in read_manifest(again)} == rule
    assert load_tokenizer(again).backend_tokenizer.to_str() == \
        tokenizer.backend_tokenizer.to_str()
    assert read_card(again)["tokenizer"]["trained_on"] == "given"
    assert validate_dataset(again) == []


def test_bad_streams_are_named_errors(written, tmp_path):
    _, samples = written
    with pytest.raises(DataError, match="repeats") as err:
        write_dataset([samples[0], samples[1], samples[0]], tmp_path / "twice", CONFIG,
                      progress=False)
    assert err.value.sample == samples[0].planet_id
    broken = dataclasses.replace(samples[2], params=np.full(9, np.nan, np.float32))
    with pytest.raises(DataError, match="non-finite") as err:
        write_dataset([samples[0], broken], tmp_path / "nan", CONFIG, progress=False)
    assert (err.value.sample, err.value.field) == (samples[2].planet_id, "params")
    with pytest.raises(DataError, match="no split") as err:
        write_dataset(samples[:2], tmp_path / "unmapped", CONFIG,
                      split={samples[0].planet_id: "train"}, progress=False)
    assert err.value.sample == samples[1].planet_id
    with pytest.raises(DataError, match="train split"):
        write_dataset(samples[:2], tmp_path / "no-train", CONFIG, split=lambda i, s: "test",
                      progress=False)


def test_a_target_known_without_has_targets_is_refused(written, tmp_path):
    _, samples = written
    blank = PlanetSample.blank("X b", CONFIG.climate_shape, CONFIG.spectrum_bins)
    odd = dataclasses.replace(blank.with_present("text"), text="x", surface_temperature=250.0)
    with pytest.raises(DataError, match="has_targets") as err:
        write_dataset([samples[0], odd], tmp_path / "odd", CONFIG, progress=False)
    assert err.value.sample == "X b"


def test_the_loaders_read_a_written_dataset_alike(written):
    """The torch loader batches every planet of a written split; DALI (where installed) gives
    the same batches, as for a synthetic build."""
    import torch

    from astrobio.data.dali import dali_available, make_dali_loader
    from astrobio.data.loader import make_loader

    out, samples = written
    dataset = AstroBioDataset(out, "train")
    batches = list(make_loader(dataset, 3, shuffle=False))
    assert sum(len(b.planet_ids) for b in batches) == len(dataset) > 0
    by_id = {s.planet_id: s for s in samples}
    for batch in batches:
        for i, planet in enumerate(batch.planet_ids):
            np.testing.assert_array_equal(batch.params[i].numpy(), by_id[planet].params)
    if not dali_available():
        pytest.skip("NVIDIA DALI is not installed")
    dali = list(make_dali_loader(out, "train", 3, shuffle=False, device="cpu"))
    assert [b.planet_ids for b in dali] == [b.planet_ids for b in batches]
    for ours, truth in zip(dali, batches, strict=True):
        for field in ("climate", "spectrum", "spectrum_err", "spectrum_mask", "params",
                      "present", "input_ids"):
            assert torch.equal(getattr(ours, field).cpu(), getattr(truth, field)), field
