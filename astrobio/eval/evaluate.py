"""Predictions of a trained system on a split, their scores, and the ablation over modalities."""

from __future__ import annotations

import numpy as np
import torch

from astrobio.data.sample import target_known
from astrobio.eval.metrics import auroc, auroc_drop, binary_metrics, per_class_report
from astrobio.schema import HABITABILITY_CLASSES, MODALITIES

PREDICTION_COLUMNS = {"p_habitable": np.float32, "p_biosignature": np.float32,
                      "predicted_class": np.int64, "predicted_temperature": np.float32,
                      "habitable": np.int64, "biosignature": np.int64,
                      "habitability_class": np.int64, "surface_temperature": np.float32,
                      "has_targets": np.bool_}


@torch.no_grad()
def predict(model, loader, device, remove: str | None = None) -> dict[str, np.ndarray]:
    """Head outputs and labels over `loader`; `remove` marks that modality absent everywhere."""
    model.eval()
    columns: dict[str, list[np.ndarray]] = {name: [] for name in PREDICTION_COLUMNS}
    for batch in loader:
        if remove is not None:
            batch = batch.masked(torch.tensor([name != remove for name in MODALITIES]))
        batch = batch.to(device)
        output = model(batch)
        values = {
            "p_habitable": torch.sigmoid(output.habitable_logit.float()),
            "p_biosignature": torch.sigmoid(output.biosignature_logit.float()),
            "predicted_class": output.habitability_class_logits.argmax(-1),
            "predicted_temperature": output.surface_temperature.float(),
            "habitable": batch.habitable,
            "biosignature": batch.biosignature,
            "habitability_class": batch.habitability_class,
            "surface_temperature": batch.surface_temperature,
            "has_targets": batch.has_targets,
        }
        for name, value in values.items():
            columns[name].append(value.cpu().numpy())
    return {name: np.concatenate(parts) if parts else np.zeros(0, PREDICTION_COLUMNS[name])
            for name, parts in columns.items()}


def score(predictions: dict[str, np.ndarray]) -> dict:
    """Metrics over the labelled samples, each target over those that know it (labels may be
    partial): `habitable` (accuracy, AUROC, F1, ECE), surface temperature MAE in K, class
    accuracy with a per-class report, and `biosignature`. A target no sample knows scores NaN
    (support 0 in the report)."""
    labelled = predictions["has_targets"].astype(bool)

    def known(target: str) -> np.ndarray:
        return labelled & target_known(target, predictions[target])

    def binary(target: str, probability: str) -> dict[str, float]:
        mask = known(target)
        if not mask.any():
            return {"accuracy": nan, "auroc": nan, "f1": nan, "ece": nan}
        return binary_metrics(predictions[target][mask], predictions[probability][mask])

    nan = float("nan")
    temperature, klass = known("surface_temperature"), known("habitability_class")
    return {
        "n": int(labelled.sum()),
        "habitable": binary("habitable", "p_habitable"),
        "biosignature": binary("biosignature", "p_biosignature"),
        "surface_temperature_mae_k": float(np.abs(
            predictions["predicted_temperature"][temperature]
            - predictions["surface_temperature"][temperature]).mean()) if temperature.any()
        else nan,
        "habitability_class_accuracy": float(
            (predictions["predicted_class"][klass] == predictions["habitability_class"][klass]
             ).mean()) if klass.any() else nan,
        "habitability_class_report": per_class_report(
            predictions["habitability_class"][klass], predictions["predicted_class"][klass],
            HABITABILITY_CLASSES),
    }


def flat_metrics(results: dict) -> dict[str, float]:
    """The headline numbers of `score` as one flat mapping, for logs and tables."""
    return {
        **{f"habitable_{k}": v for k, v in results["habitable"].items()},
        "biosignature_auroc": results["biosignature"]["auroc"],
        "surface_temperature_mae_k": results["surface_temperature_mae_k"],
        "habitability_class_accuracy": results["habitability_class_accuracy"],
    }


def ablation(model, loader, device, full: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per modality removed at evaluation (through `present`): the test AUROC of `habitable`
    and its drop from `full`, the predictions with every modality (`metrics.auroc_drop`)."""
    labelled = full["has_targets"].astype(bool) & target_known("habitable", full["habitable"])
    labels, scores = full["habitable"][labelled], full["p_habitable"][labelled]
    results = {}
    for name in MODALITIES:
        ablated = predict(model, loader, device, remove=name)["p_habitable"][labelled]
        results[name] = {"auroc": auroc(labels, ablated),
                         **auroc_drop(labels, scores, ablated)}
    return results
