"""`python -m astrobio.predict` and `Run.predict`: the shipped catalogue, a built dataset, a
user's bad catalogue, batching, units and the training-distribution warning."""

import csv
import json
import math

import numpy as np
import pytest

from astrobio.config import load_config
from astrobio.data.cache import ensure_default_dataset
from astrobio.data.format import read_card
from astrobio.data.reader import AstroBioDataset
from astrobio.data.readers import read_exoplanet_archive
from astrobio.errors import ConfigError, DataError
from astrobio.experiments.__main__ import QUICK_SIZES
from astrobio.predict import (
    OutOfDistributionWarning,
    bundled_catalogue,
    main,
    predict_catalogue,
    predict_dataset,
    predict_samples,
)
from astrobio.run import load_run
from astrobio.train.trainer import train

LITERATURE_PLANETS = ("TRAPPIST-1 e", "Proxima Cen b", "Kepler-442 b", "Kepler-186 f",
                      "LHS 1140 b", "TOI-700 d", "K2-18 b", "Kepler-452 b", "GJ 1214 b",
                      "55 Cnc e")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = load_config("tiny", overrides=[*QUICK_SIZES, "train.steps=2",
                                            "train.device=cpu"])
    root = tmp_path_factory.mktemp("predict")
    data = ensure_default_dataset(config.data, root / "data", progress=False)
    train(config, root / "run", data, progress=False)
    return root / "run"


def test_cli_predicts_the_shipped_catalogue(run, tmp_path, capsys):
    assert main(["--run", str(run), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    records = json.loads((tmp_path / "exoplanets_predictions.json").read_text())
    with open(tmp_path / "exoplanets_predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    names = [r["planet"] for r in records]
    assert [r["planet"] for r in rows] == names
    for planet in LITERATURE_PLANETS:
        assert planet in names and planet in printed
    for r in records:
        assert 0.0 <= r["p_habitable"] <= 1.0 and r["predicted_surface_temperature_k"] > 0
        assert r["lit_hz"] in ("conservative", "optimistic", "outside") and r["lit_hz_ref"]
        assert r["modalities"] == "params,text"
    # the physics against the papers' statuses: all agree on in-zone/outside
    assert all((r["physics_hz"] == "outside") == (r["lit_hz"] == "outside") for r in records)
    assert "agreement" in printed


def test_cli_shows_a_progress_bar_over_every_planet(run, tmp_path, capsys):
    n = len(read_exoplanet_archive(bundled_catalogue()))
    assert main(["--run", str(run), "--out", str(tmp_path), "--batch-size", "4"]) == 0
    bar = capsys.readouterr().err
    assert "predict: 100%" in bar and f"{n}/{n}" in bar


def test_literature_columns_are_read_from_a_catalogue_with_a_byte_order_mark(run, tmp_path):
    plain = predict_catalogue(bundled_catalogue(), run, "cpu")
    with_bom = tmp_path / "bom.csv"
    with_bom.write_bytes(b"\xef\xbb\xbf" + bundled_catalogue().read_bytes())
    assert predict_catalogue(with_bom, run, "cpu") == plain
    assert all(r["lit_hz"] and r["ref"] for r in plain)


def test_catalogue_values_have_sources():
    lines = bundled_catalogue().read_text().splitlines()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert len(rows) >= 15
    assert all(row["ref"] and row["lit_hz_ref"] for row in rows)


def test_bad_catalogue_is_reported_by_file_sample_and_field(run, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("pl_name,st_teff,st_rad,st_mass,pl_rade,pl_orbsmax\n"
                   "Good b,5772,1.0,1.0,1.0,1.0\nBad b,5772,1.0,1.0,1.0,minus one\n")
    assert main(["--catalog", str(bad), "--run", str(run), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "bad.csv" in error and "Bad b" in error and "pl_orbsmax" in error
    assert main(["--catalog", str(bad), "--run", str(run), "--out", str(tmp_path),
                 "--skip-bad-rows"]) == 0
    error = capsys.readouterr().err
    assert "warning: " in error and "skipped 1 bad row" in error and "Bad b" in error
    assert [r["planet"] for r in json.loads((tmp_path / "bad_predictions.json").read_text())] \
        == ["Good b"]


def test_unknown_literature_status_is_an_error(run, tmp_path):
    bad = tmp_path / "status.csv"
    bad.write_text("pl_name,st_teff,st_rad,st_mass,pl_rade,pl_orbsmax,lit_hz\n"
                   "Odd b,5772,1.0,1.0,1.0,1.0,maybe\n")
    with pytest.raises(DataError, match="lit_hz") as info:
        predict_catalogue(bad, run, device="cpu")
    assert info.value.field == "lit_hz"


def test_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["--run", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err


def test_agreement_counts_by_hand():
    from astrobio.predict import agreement

    def record(physics, literature, p):
        return {"physics_hz": physics, "lit_hz": literature, "p_habitable": p}

    scores = agreement([record("conservative", "conservative", 0.9),
                        record("conservative", "optimistic", 0.2),
                        record("outside", "outside", 0.7),
                        record("optimistic", "outside", 0.1),
                        record("outside", None, 0.9)])  # no literature status: not counted
    assert scores == {"n": 4, "physics_in_zone_agreement": 0.75,
                      "physics_exact_status_agreement": 0.5, "model_in_zone_agreement": 0.5}


def test_batches_do_not_change_predictions(run):
    loaded = load_run(run, "cpu")
    samples = read_exoplanet_archive(bundled_catalogue(), loaded.config.data)
    alone = [predict_samples(loaded, [s], batch_size=1) for s in samples]
    alone = [next(records) for records in alone]
    for batch_size in (4, 64):
        together = list(predict_samples(loaded, samples, batch_size=batch_size))
        assert [r["planet"] for r in together] == [s.planet_id for s in samples]
        for a, b in zip(alone, together, strict=True):
            assert b["p_habitable"] == pytest.approx(a["p_habitable"], abs=1e-5)
            assert b["predicted_surface_temperature_k"] == pytest.approx(
                a["predicted_surface_temperature_k"], rel=1e-5)
            assert b["predicted_class"] == a["predicted_class"]


def test_run_predict_is_the_cli_table(run):
    loaded = load_run(run, "cpu")
    samples = read_exoplanet_archive(bundled_catalogue(), loaded.config.data)
    table = loaded.predict(samples)
    records = predict_catalogue(bundled_catalogue(), loaded)
    assert list(table["planet"]) == [r["planet"] for r in records]
    for column in ("p_habitable", "p_biosignature", "predicted_surface_temperature_k",
                   "st_lum", "pl_insol"):
        np.testing.assert_allclose(table[column], [r[column] for r in records], rtol=1e-6)
    assert table["true_habitable"].isna().all()  # a catalogue knows no target


def test_columns_are_in_the_archives_units(run):
    records = {r["planet"]: r for r in predict_catalogue(bundled_catalogue(), run, "cpu")}
    assert records["Earth"]["st_lum"] == pytest.approx(0.0, abs=1e-6)  # log10(1 Lsun)
    # TRAPPIST-1: 2566 K, 0.1192 Rsun, so L = R^2 (T / 5772 K)^4 by Stefan-Boltzmann
    expected = math.log10(0.1192**2 * (2566.0 / 5772.0) ** 4)
    assert records["TRAPPIST-1 e"]["st_lum"] == pytest.approx(expected, abs=1e-5)
    assert records["Earth"]["pl_orbsmax"] == 1.0 and records["Earth"]["pl_orbeccen"] == 0.0167


def test_a_planet_outside_the_training_distribution_is_warned_about(run, tmp_path):
    card = read_card(load_run(run, "cpu").data_dir)["param_distribution"]
    median = {name: values[card["quantiles"].index(0.5)]
              for name, values in card["params"].items()}
    median["st_lum"] = math.log10(median["st_lum"])  # the archive's unit
    names = list(median)
    catalog = tmp_path / "hot.csv"
    catalog.write_text(f"pl_name,{','.join(names)}\n"
                       f"Inside b,{','.join(repr(median[n]) for n in names)}\n"
                       "Scorched b,5772,0,1.0,1.0,1.0,1.0,0.01,0,\n")
    with pytest.warns(OutOfDistributionWarning, match="Scorched b: .*pl_insol") as caught:
        records = {r["planet"]: r for r in predict_catalogue(catalog, run, "cpu")}
    top = card["params"]["pl_insol"][card["quantiles"].index(1.0)]
    insol = records["Scorched b"]["pl_insol"]
    assert insol == pytest.approx(1.0 / 0.01**2, rel=1e-4)  # 1 Lsun at 0.01 AU
    assert f"pl_insol {insol:.4g} is {math.log10(insol / top):.3g} dex above" in \
        records["Scorched b"]["out_of_distribution"]
    assert not any("Inside b" in str(w.message) for w in caught)
    assert records["Inside b"]["out_of_distribution"] == ""


def test_predict_a_built_dataset(run, tmp_path, capsys):
    loaded = load_run(run, "cpu")
    records = predict_dataset(loaded.data_dir, loaded, splits=("val", "test"))
    truth = {s.planet_id: (split, s) for split in ("val", "test")
             for d in [AstroBioDataset(loaded.data_dir, split)] for s in (d[i] for i in
                                                                            range(len(d)))}
    assert sorted(r["planet"] for r in records) == sorted(truth)
    for r in records:
        split, sample = truth[r["planet"]]
        assert r["split"] == split and r["true_habitable"] == sample.habitable
        assert r["true_surface_temperature_k"] == pytest.approx(sample.surface_temperature)
    assert main(["--run", str(run), "--data", str(loaded.data_dir), "--split", "test",
                 "--out", str(tmp_path), "--quiet"]) == 0
    with open(tmp_path / f"{loaded.data_dir.name}_predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["split"] for r in rows} == {"test"} and len(rows) == len(
        AstroBioDataset(loaded.data_dir, "test"))


def test_a_dataset_on_another_grid_is_refused(run, tmp_path):
    other = load_config("tiny", overrides=[*QUICK_SIZES, "data.lat=8"]).data
    root = ensure_default_dataset(other, tmp_path / "other", progress=False)
    with pytest.raises(ConfigError, match="data.lat=8"):
        predict_dataset(root, run, "cpu")
