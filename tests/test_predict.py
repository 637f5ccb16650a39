"""`python -m astrobio.predict` on the shipped catalogue and on a user's bad catalogue."""

import csv
import json

import pytest

from astrobio.config import load_config
from astrobio.data.cache import ensure_default_dataset
from astrobio.errors import DataError
from astrobio.experiments.__main__ import QUICK_SIZES
from astrobio.predict import bundled_catalogue, main, predict_catalogue
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
    with pytest.warns(UserWarning, match="Bad b"):
        assert main(["--catalog", str(bad), "--run", str(run), "--out", str(tmp_path),
                     "--skip-bad-rows"]) == 0
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
