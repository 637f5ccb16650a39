"""The default `python -m astrobio.train` run (the `tiny` preset on the built-in data) against
what generator 3.0.0's observables support. Measured (2026-12-01, seed 0, 1,000 test planets):
habitable AUROC 0.953, against a ceiling of 0.966 from all five modalities' latent observables
(`python -m astrobio.experiments.references`, 100,000 planets). Removing params costs 0.020
[0.010, 0.030] and text (the thermal-emission thermometer) 0.012 [0.007, 0.018]. The climate
cube, the graph and the spectrum summarise evidence the other modalities already carry (the
references without any one of climate, graph, spectrum or params: 0.965-0.966; without text:
0.943), so removing one of them must only not help."""

import pytest

from astrobio.config import load_config
from astrobio.evaluate import evaluate_run
from astrobio.train import trainer


@pytest.mark.slow
def test_default_run_nears_the_ceiling_and_uses_params_and_text(tmp_path):
    config = load_config("tiny")
    results = trainer.train(config, tmp_path / "run", tmp_path / "data", progress=False)
    assert results["n"] == 1000
    assert results["habitable"]["auroc"] >= 0.94
    drops = evaluate_run(tmp_path / "run")["ablation_drop"]
    for modality in ("params", "text"):
        assert drops[modality]["drop"] > 0.005, (modality, drops[modality])
    for modality in ("climate", "graph", "spectrum"):
        assert drops[modality]["drop"] > -0.005, (modality, drops[modality])
