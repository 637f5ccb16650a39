"""`python -m astrobio.data build|validate`; validate reports every planted defect."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from astrobio.data.__main__ import main
from astrobio.data.format import CARD_FILE, MANIFEST_FILE, read_manifest
from astrobio.data.validate import validate_dataset


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    seed = int(os.environ.get("ASTROBIO_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    print(f"ASTROBIO_TEST_SEED={seed} (dataset)")
    out = tmp_path_factory.mktemp("ds") / "data"
    assert main(["build", "--n", "40", "--seed", str(seed), "--out", str(out),
                 "--set", "data.shard_size=16", "--quiet"]) == 0
    return out


def test_module_entry_point_builds(tmp_path, capsys):
    out = tmp_path / "data"
    built = subprocess.run(
        [sys.executable, "-m", "astrobio.data", "build", "--n", "12", "--out", str(out),
         "--seed", "3"], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert "sample/s" in built.stderr  # the progress bar shows its rate
    assert json.loads((out / CARD_FILE).read_text())["n_samples"] == 12
    assert main(["validate", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_a_sound_dataset_has_no_problems(built, capsys):
    assert validate_dataset(built) == []
    assert main(["validate", str(built), "--quiet"]) == 0


def _save(path, array):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=(1, 0))


def test_every_planted_defect_is_reported(built, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(built, bad)
    records = read_manifest(bad)
    shard0 = [r for r in records if r["split"] == "train" and r["shard"] == "shard-00000"]
    with_edges = [r for r in shard0 if r["n_edges"] > 0 and r["n_nodes"] > 0]
    assert with_edges, "the generator gave no graph with edges in 16 planets"
    edged = with_edges[0]
    a, c, d, e, f = [r for r in shard0 if r is not edged][:5]
    shard = bad / "train" / "shard-00000"
    expected = []  # (file, sample, field, words in the message)

    climate = np.load(shard / "climate" / f"{a['position']:06d}.npy")
    climate[1, 2, 3, 4] = np.nan
    _save(shard / "climate" / f"{a['position']:06d}.npy", climate)
    expected.append((shard / "climate" / f"{a['position']:06d}.npy", a, "climate",
                     "non-finite"))

    edge_index = np.load(shard / "edge_index.npy")
    start = int(np.load(shard / "edge_offsets.npy")[edged["position"]])
    edge_index[1, start] = edged["n_nodes"] + 5
    _save(shard / "edge_index.npy", edge_index)
    expected.append((shard / "edge_index.npy", edged, "edge_index", "indices span"))

    spectrum = shard / "spectrum" / f"{c['position']:06d}.npy"
    spectrum.write_bytes(spectrum.read_bytes()[:-7])
    expected.append((spectrum, c, "spectrum", "truncated"))

    err = shard / "spectrum_err" / f"{d['position']:06d}.npy"
    _save(err, np.load(err).astype(np.float64))
    expected.append((err, d, "spectrum_err", "dtype float64"))

    lines = (bad / MANIFEST_FILE).read_text().splitlines()
    line = records.index(e)
    record = json.loads(lines[line])
    record["labels"]["habitability_class"] = 9
    lines[line] = json.dumps(record)
    expected.append((f"{bad / MANIFEST_FILE}:{line + 1}", e, "habitability_class",
                     "is not in 0..4"))
    expected.append((shard / "habitability_class.npy", e, "habitability_class",
                     "the manifest says 9"))
    ghost = {**json.loads(lines[0]), "planet_id": "GHOST", "position": 99}
    lines.append(json.dumps(ghost))
    (bad / MANIFEST_FILE).write_text("\n".join(lines) + "\n")
    expected.append((f"{bad / MANIFEST_FILE}:{len(lines)}", ghost, "position",
                     "without data"))

    (shard / "climate" / f"{f['position']:06d}.npy").unlink()
    expected.append((shard / "climate" / f"{f['position']:06d}.npy", f, "climate", "missing"))

    val_shard = bad / "val" / "shard-00000"
    features = val_shard / "node_features.npy"
    features.write_bytes(features.read_bytes()[:-5])
    expected.append((features, None, "node_features", "truncated"))

    card = json.loads((bad / CARD_FILE).read_text())
    card["splits"]["test"]["count"] += 1
    (bad / CARD_FILE).write_text(json.dumps(card))
    expected.append((bad / CARD_FILE, None, "splits.test.count", "card says"))

    (bad / "train" / "shard-00009.tmp").mkdir()
    expected.append((bad / "train" / "shard-00009.tmp", None, None, "interrupted"))

    problems = validate_dataset(bad)
    for file, record, field, words in expected:
        sample = record["planet_id"] if record else None
        matches = [p for p in problems if p.file == str(file) and p.sample == sample
                   and p.field == field and words in p.message]
        assert matches, f"not reported: {file} {sample} {field} {words!r}\n" + "\n".join(
            map(str, problems))

    assert main(["validate", str(bad), "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert len(printed.splitlines()) == len(problems)
    for _, record, _, _ in expected:
        if record:
            assert record["planet_id"] in printed


def test_missing_card_is_reported_as_incomplete(built, tmp_path):
    bad = tmp_path / "incomplete"
    shutil.copytree(built, bad)
    (bad / CARD_FILE).unlink()
    (problem,) = validate_dataset(bad)
    assert problem.file == str(bad / CARD_FILE) and "missing" in problem.message
    card = json.loads((built / CARD_FILE).read_text())
    card["config"]["bogus"] = 1
    (bad / CARD_FILE).write_text(json.dumps(card))
    (problem,) = validate_dataset(bad)
    assert (problem.field, "unknown config key") == ("config.bogus", problem.message[:18])


def test_bad_arguments_exit_2_with_a_clear_error(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text("[data]\nshard_size = 4\nbogus = 1\n")
    assert main(["build", "--n", "8", "--out", str(tmp_path / "a"), "--config", str(config),
                 "--quiet"]) == 2
    assert "unknown config key 'data.bogus'" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    assert main(["build", "--n", "8", "--out", str(foreign), "--quiet"]) == 2
    assert "not an AstroBio dataset" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "nowhere"), "--quiet"]) == 1
    assert "no such dataset directory" in capsys.readouterr().out
