"""A run bound to its tokenizer, and `evaluate` per split: a changed tokenizer is detected or
made harmless; one split's results never overwrite another's."""

import json
import shutil

import pytest
import torch

from astrobio.checksum import checksum_path, sha256_file
from astrobio.config import load_config
from astrobio.data.tokenizer import save_tokenizer, train_tokenizer
from astrobio.errors import RunError
from astrobio.evaluate import evaluate_run
from astrobio.evaluate import main as evaluate_main
from astrobio.predict import bundled_catalogue, predict_catalogue, predict_dataset
from astrobio.predict import main as predict_main
from astrobio.run import load_run
from astrobio.train.__main__ import main as train_main
from astrobio.train.trainer import train


def test_the_run_keeps_its_tokenizer_and_its_sha256(trained_run, dataset):
    kept = trained_run / "tokenizer.json"
    assert kept.read_bytes() == (dataset / "tokenizer.json").read_bytes()
    assert sha256_file(kept) in checksum_path(kept).read_text()


@pytest.fixture
def run_on_own_dataset(dataset, overrides, tmp_path):
    """A 2-step run on a copy of the dataset, which the test may change."""
    data = shutil.copytree(dataset, tmp_path / "ds")
    config = load_config("tiny", overrides=overrides + ["train.steps=2"])
    train(config, tmp_path / "run", data, progress=False)
    return tmp_path / "run", data


def _replace_tokenizer(data):
    other = train_tokenizer(["completely different words, of another corpus"] * 20, 270)
    save_tokenizer(other, data / "tokenizer.json")


def test_a_changed_dataset_tokenizer_changes_no_result(run_on_own_dataset, capsys):
    """evaluate re-encodes with the run's copy (and says so); predict, of a catalogue or of
    the dataset, encodes with the run's copy; a resume on the changed dataset is refused."""
    run, data = run_on_own_dataset
    before = evaluate_run(run)
    predictions = predict_catalogue(bundled_catalogue(), run)
    of_dataset = predict_dataset(data, run, splits=("test",))
    _replace_tokenizer(data)
    with pytest.warns(RuntimeWarning, match="encoded again with the run's own"):
        after = evaluate_run(run)
    assert after["habitable"] == before["habitable"]
    assert after["ablation_auroc"] == before["ablation_auroc"]
    assert predict_catalogue(bundled_catalogue(), run) == predictions
    assert predict_dataset(data, run, splits=("test",)) == of_dataset
    assert train_main(["--out", str(run), "--resume", "--quiet", "--steps", "3"]) == 2
    assert "differs from the tokenizer this run was trained with" in capsys.readouterr().err


def test_a_changed_run_tokenizer_is_a_named_error(run_copy, capsys):
    path = run_copy / "tokenizer.json"
    path.write_text(path.read_text().replace('"<unk>"', '"<UNK>"', 1))
    with pytest.raises(RunError, match="tokenizer.json: sha256"):
        _ = load_run(run_copy).tokenizer
    assert predict_main(["--run", str(run_copy)]) == 2
    assert "tokenizer.json: sha256" in capsys.readouterr().err


def test_evaluate_keeps_each_split_apart_with_the_runs_threads(run_copy, capsys):
    assert evaluate_main(["--run", str(run_copy), "--quiet"]) == 0
    out = run_copy / "evaluation"
    test_bytes = (out / "evaluation_test.json").read_bytes()
    capsys.readouterr()
    torch.set_num_threads(2)
    try:
        assert evaluate_main(["--run", str(run_copy), "--split", "val"]) == 0
        assert torch.get_num_threads() == 1  # the run's train.cpu_threads
    finally:
        torch.set_num_threads(1)
    captured = capsys.readouterr()
    assert "evaluate val" in captured.err  # the progress bar
    assert captured.out.startswith("val split (") and "ablation: val AUROC" in captured.out
    assert (out / "evaluation_test.json").read_bytes() == test_bytes
    val = json.loads((out / "evaluation_val.json").read_text())
    assert val["split"] == "val" and val["n"] != json.loads(test_bytes)["n"]
    for name in ("ablation_val", "reliability_val", "ablation_test", "reliability_test"):
        assert (out / f"{name}.png").stat().st_size > 1000


def test_evaluate_bad_arguments_and_damaged_logs(run_copy, capsys):
    assert evaluate_main(["--run", str(run_copy), "--batch-size", "0", "--quiet"]) == 2
    assert "--batch-size 0" in capsys.readouterr().err
    with open(run_copy / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 9, "loss/to')
    with pytest.warns(RuntimeWarning, match="dropped 1 damaged line"):
        evaluate_run(run_copy)
    assert (run_copy / "evaluation" / "loss_curves.png").stat().st_size > 1000
