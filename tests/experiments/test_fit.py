"""The variants' training loop: same steps as the trainer, modalities withheld, encoders frozen."""

import json

import pytest
import torch

from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.experiments.fit import encoder_modules, fit, keep_only
from astrobio.run import load_run
from astrobio.schema import MODALITIES
from astrobio.train.trainer import train


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _with(config, **train):
    import copy

    config = copy.deepcopy(config)
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def test_keep_only_marks_the_rest_absent(toy_dataset):
    batch = next(iter(make_loader(AstroBioDataset(toy_dataset, "train"), 8, shuffle=False)))
    kept = keep_only(batch, ("spectrum", "text"))
    for i, name in enumerate(MODALITIES):
        absent = torch.zeros(8, dtype=torch.bool)
        expected = batch.present[:, i] if name in ("spectrum", "text") else absent
        assert torch.equal(kept.present[:, i], expected), name


def test_fit_with_everything_kept_reproduces_the_trainer(tmp_path, toy_config, toy_dataset):
    config = _with(toy_config, steps=3, eval_every=3, checkpoint_every=3)
    train(config, tmp_path / "trainer", toy_dataset, progress=False)
    fit(config, tmp_path / "fit", toy_dataset, progress=False)
    losses = [[r["loss/total"] for r in _records(tmp_path / run / "metrics.jsonl")
               if "loss/total" in r] for run in ("trainer", "fit")]
    assert len(losses[0]) == 3
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_single_modality_and_isolated_runs(tmp_path, toy_config, toy_dataset):
    config = _with(toy_config, steps=2, gradient_flow_every=1)
    predictions = fit(config, tmp_path / "only_params", toy_dataset, keep=("params",),
                      progress=False)
    assert len(predictions["p_habitable"]) == len(AstroBioDataset(toy_dataset, "test"))
    for record in _records(tmp_path / "only_params" / "gradient_flow.jsonl"):
        assert record["params"] > 0 and record["fusion"] > 0
        for withheld in ("climate", "graph", "spectrum"):
            assert record[withheld] == 0.0, withheld

    isolated = tmp_path / "isolated"
    fit(config, isolated, toy_dataset, frozen={"params": tmp_path / "only_params"},
        progress=False)
    source = load_run(tmp_path / "only_params", "cpu").model
    trained = load_run(isolated, "cpu").model
    frozen, = encoder_modules(trained)["params"]
    for name, value in frozen.state_dict().items():
        assert torch.equal(value, source.param_encoder.state_dict()[name]), name
    moved = [not torch.equal(a, b) for a, b in zip(trained.fusion.parameters(),
                                                    source.fusion.parameters())]
    assert any(moved)
    for record in _records(isolated / "gradient_flow.jsonl"):
        assert record["params"] == 0.0 and record["climate"] > 0 and record["heads"] > 0


def test_fit_rejects_unknown_modalities(tmp_path, toy_config, toy_dataset):
    with pytest.raises(ValueError, match="unknown modalities"):
        fit(toy_config, tmp_path / "x", toy_dataset, keep=("sonar",), progress=False)
