"""The out-of-distribution splits keep one population for training and another for the test."""

import pytest

from astrobio.data.reader import AstroBioDataset
from astrobio.experiments.splits import SPLITS


def _record(split, teff=5500.0, radius=1.0, insolation=2.0):  # 1.0 Re is a bare core here
    return {"split": split, "present": {"params": True},
            "params": {"st_teff": teff, "pl_rade": radius, "pl_insol": insolation}}


@pytest.mark.parametrize("name,inside", [
    ("m_dwarfs", {"teff": 3200.0}), ("radius_valley", {"radius": 1.7}),
    ("insolation", {"insolation": 0.9})])
def test_held_out_population_only_in_the_test(name, inside):
    keep = SPLITS[name]
    for split in ("train", "val"):
        assert keep(_record(split)) and not keep(_record(split, **inside))
    assert keep(_record("test", **inside)) and not keep(_record("test"))


@pytest.mark.parametrize("name", ["m_dwarfs", "radius_valley", "insolation"])
def test_planets_without_parameters_are_in_no_out_of_distribution_split(name):
    for split in ("train", "val", "test"):  # their params are zeros: teff 0 K, radius 0
        record = {"split": split, "present": {"params": False},
                  "params": {"st_teff": 0.0, "pl_rade": 0.0, "pl_insol": 0.0}}
        assert not SPLITS[name](record)


def test_edges_of_the_held_out_bands():
    assert SPLITS["m_dwarfs"](_record("train", teff=3900.0))  # 3900 K is no M dwarf
    # the valley sits at 1.599 Earth radii for Earth's insolation and 1.817 for ten times it
    # (planets.valley_radius; 8 Earth masses at 100 S_earth, mass ~ S^0.25, Zeng rock)
    for insolation, valley in ((1.0, 1.599), (10.0, 1.817)):
        for factor, inside in ((10**0.079, True), (10**-0.079, True), (10**0.081, False),
                               (10**-0.081, False)):
            record = _record("test", radius=valley * factor, insolation=insolation)
            assert SPLITS["radius_valley"](record) == inside, (insolation, factor)
    # a radius inside the valley at one insolation is outside it at another: it moves
    assert SPLITS["radius_valley"](_record("test", radius=1.817, insolation=10.0))
    assert not SPLITS["radius_valley"](_record("test", radius=1.817, insolation=0.1))


def test_the_reader_keeps_what_the_split_keeps(toy_dataset):
    everything = {s: AstroBioDataset(toy_dataset, s) for s in ("train", "test")}
    keep = SPLITS["m_dwarfs"]
    for split, full in everything.items():
        kept = AstroBioDataset(toy_dataset, split, keep=keep)
        assert [r["planet_id"] for r in kept.records] == [
            r["planet_id"] for r in full.records if keep(r)]
        assert all((r["params"]["st_teff"] < 3900) == (split == "test") for r in kept.records)


def test_training_on_a_split_scores_its_test_population(tmp_path, toy_config, toy_dataset):
    import copy

    from astrobio.train.trainer import train

    config = copy.deepcopy(toy_config)
    config.train.steps = config.train.eval_every = config.train.checkpoint_every = 1
    keep = SPLITS["m_dwarfs"]
    results = train(config, tmp_path / "run", toy_dataset, progress=False, planets=keep)
    m_dwarfs = [r for r in AstroBioDataset(toy_dataset, "test").records
                if keep(r) and r["labels"]["has_targets"]]
    assert results["n"] == len(m_dwarfs) > 0
