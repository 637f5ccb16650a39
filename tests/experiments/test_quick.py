"""`python -m astrobio.experiments --quick` end to end, so the report cannot rot."""

import itertools
import json
import math

import numpy as np
import pytest

from astrobio.experiments.__main__ import main
from astrobio.experiments.report import BASELINES
from astrobio.experiments.splits import SPLITS
from astrobio.schema import MODALITIES

VARIANTS = (*BASELINES, *(f"without_{m}" for m in MODALITIES), "uncertainty_weighting")


def test_quick_study_writes_report_and_every_number(tmp_path, toy_dataset, capsys):
    out = tmp_path / "study"
    argv = ["--quick", "--seeds", "2", "--set", "train.steps=2", "--out", str(out),
            "--data", str(toy_dataset), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "unified vs isolated" in printed and "unified_matched vs late_fusion" in printed
    assert "Kopparapu 2014 solar limits reproduced: 4/4" in printed

    results = json.loads((out / "results.json").read_text())
    study = results["study"]
    assert set(study["table"]) == set(VARIANTS)
    assert len(study["per_seed"]) == 2
    for variant in VARIANTS:
        for metric, stat in study["table"][variant].items():
            runs = [seed["metrics"]["id"][variant][metric] for seed in study["per_seed"]]
            assert stat["values"] == runs
            finite = [v for v in runs if not math.isnan(v)]
            if len(finite) == 2:  # the table is the seeds' mean and sample std
                assert stat["mean"] == np.mean(finite)
                assert abs(stat["std"] - np.std(finite, ddof=1)) < 1e-12

    # the compute-matched unified run takes one step per step of the five single-modality runs
    for seed in (0, 1):
        logged = [json.loads(line) for line in (out / "runs" / f"seed{seed}" / "id"
                                                / "unified_matched" / "metrics.jsonl")
                  .read_text().splitlines()]
        assert max(r["step"] for r in logged) == 2 * len(MODALITIES)

    # the verdict is computed from the table, not asserted
    for model, other in itertools.product(("unified", "unified_matched"),
                                          ("isolated", "late_fusion", "gbt")):
        u, o = study["table"][model]["auroc"], study["table"][other]["auroc"]
        comparison = study["comparisons"][f"{model} vs {other}"]
        if comparison["verdict"] != "undetermined":
            margin = (u["mean"] - o["mean"]) - (u["std"] + o["std"])
            assert (comparison["verdict"] == "better") == (margin > 0)

    # every split scored or skipped with its reason; the paired difference is the table's
    assert set(study["splits"]) | set(study["skipped_splits"]) == set(SPLITS)
    assert "id" in study["splits"]
    for found in study["splits"].values():
        table = found["table"]
        for other in ("gbt", "late_fusion"):
            paired = found["paired"][f"unified - {other}"]
            for metric in ("auroc", "average_precision", "log_loss"):
                expected = table["unified"][metric]["mean"] - table[other][metric]["mean"]
                assert paired[metric]["difference"] == pytest.approx(expected, nan_ok=True)

    # the joint loss reaches every encoder; the isolated model's frozen encoders get nothing
    shares = study["gradient_shares"]
    for m in MODALITIES:
        assert shares["unified"][m]["mean"] > 0, m
        assert shares["isolated"][m]["mean"] == 0.0, m
    assert all(r["match"] for r in results["physics"]["kopparapu"])
    assert len(results["physics"]["catalogue"]["planets"]) >= 15

    report = (out / "report.md").read_text()
    assert "synthetic" in report and "Real planets lack most modalities" in report
    assert "isolated training on AUROC" in report and "late fusion on AUROC" in report
    for image in ("baselines_auroc", "ablation", "gradient_share", "gradient_flow",
                  "loss_curves", "catalogue", "reliability_id"):
        assert (out / f"{image}.png").stat().st_size > 1000, image
        assert f"({image}.png)" in report, image


def test_a_reduced_study_says_what_it_left_out(tmp_path, toy_dataset):
    out = tmp_path / "reduced"
    argv = ["--quick", "--seeds", "1", "--set", "train.steps=1", "--out", str(out),
            "--data", str(toy_dataset), "--quiet", "--no-extra-runs", "--ood-models", "gbt"]
    assert main(argv) == 0
    study = json.loads((out / "results.json").read_text())["study"]
    assert not set(study["table"]) & {"unified_matched", "uncertainty_weighting",
                                      *(f"without_{m}" for m in MODALITIES)}
    assert set(study["splits"]["id"]["paired"]) == {"unified - gbt", "unified - late_fusion"}
    for split, found in study["splits"].items():
        if split != "id":
            assert set(found["table"]) == {"unified", "gbt"}
            assert set(found["paired"]) == {"unified - gbt"}
    report = (out / "report.md").read_text()
    assert "Not run (`--no-extra-runs`)" in report
    if len(study["splits"]) > 1:
        assert "not measured against" in report


def test_unknown_ood_models_are_a_user_error(tmp_path, toy_dataset):
    argv = ["--quick", "--out", str(tmp_path), "--data", str(toy_dataset), "--ood-models",
            "forest"]
    assert main(argv) == 2
