"""Predictions of a trained system on a split, their scores, and the ablation over modalities."""

from __future__ import annotations

import numpy as np
import torch

from astrobio.eval.metrics import auroc, auroc_drop, binary_metrics, per_class_report
from astrobio.schema import HABITABILITY_CLASSES, MODALITIES


@torch.no_grad()
def predict(model, loader, device, remove: str | None = None) -> dict[str, np.ndarray]:
    """Head outputs and labels over `loader`; `remove` marks that modality absent everywhere."""
    model.eval()
    columns: dict[str, list[np.ndarray]] = {}
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
            columns.setdefault(name, []).append(value.cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in columns.items()}


def score(predictions: dict[str, np.ndarray]) -> dict:
    """Metrics over the labelled samples: `habitable` (accuracy, AUROC, F1, ECE), surface
    temperature MAE in K, class accuracy with a per-class report, and `biosignature`."""
    labelled = predictions["has_targets"].astype(bool)
    p = {name: value[labelled] for name, value in predictions.items()}
    return {
        "n": int(labelled.sum()),
        "habitable": binary_metrics(p["habitable"], p["p_habitable"]),
        "biosignature": binary_metrics(p["biosignature"], p["p_biosignature"]),
        "surface_temperature_mae_k": float(
            np.abs(p["predicted_temperature"] - p["surface_temperature"]).mean()),
        "habitability_class_accuracy": float(
            (p["predicted_class"] == p["habitability_class"]).mean()),
        "habitability_class_report": per_class_report(
            p["habitability_class"], p["predicted_class"], HABITABILITY_CLASSES),
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
    labelled = full["has_targets"].astype(bool)
    labels, scores = full["habitable"][labelled], full["p_habitable"][labelled]
    results = {}
    for name in MODALITIES:
        ablated = predict(model, loader, device, remove=name)["p_habitable"][labelled]
        results[name] = {"auroc": auroc(labels, ablated),
                         **auroc_drop(labels, scores, ablated)}
    return results
