"""PNG plots of a run: loss curves, ablation, gradient flow, reliability diagram."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from astrobio.eval.metrics import reliability_curve  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_loss_curves(records: list[dict], path: Path) -> Path:
    """One line per logged loss term against the step, on a log scale (zero terms, such as
    an unviolated physics penalty, leave gaps); `kl_weight` is a schedule, not a loss."""
    terms = sorted({k[len("loss/"):] for r in records for k in r
                    if k.startswith("loss/") and k != "loss/kl_weight"})
    fig, ax = plt.subplots(figsize=(8, 5))
    steps = np.array([r["step"] for r in records])
    for term in terms:
        values = np.array([r.get(f"loss/{term}", np.nan) for r in records], dtype=float)
        values[~(values > 0)] = np.nan
        ax.plot(steps, values, label=term, lw=2.5 if term == "total" else 1.2)
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title="Training losses")
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def plot_ablation(full_auroc: float, ablated: dict[str, float], path: Path,
                  drops: dict[str, dict[str, float]] | None = None,
                  split: str = "test") -> Path:
    """AUROC of `habitable` on `split` with each modality removed at evaluation; with `drops`
    (`metrics.auroc_drop` per modality), bars carry the drop's 95 % interval."""
    names = list(ablated)
    fig, ax = plt.subplots(figsize=(7, 4))
    errors = None
    if drops is not None:  # the interval of full - drop, as distances below and above the bar
        errors = [[drops[n]["high"] - drops[n]["drop"] for n in names],
                  [drops[n]["drop"] - drops[n]["low"] for n in names]]
    ax.bar(names, [ablated[n] for n in names], yerr=errors, capsize=4, color="tab:orange",
           label="modality removed")
    ax.axhline(full_auroc, color="tab:blue", ls="--", label=f"all modalities ({full_auroc:.3f})")
    low = min([full_auroc, *ablated.values()])
    ax.set(ylabel=f"{split} AUROC (habitable)", title=f"Ablation at evaluation ({split} split)",
           ylim=(max(0.0, low - 0.05), 1.0))
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_gradient_flow(records: list[dict], path: Path) -> Path:
    """Gradient norm of the habitability loss reaching each module, across training."""
    modules = sorted({k for r in records for k in r if k != "step"})
    fig, ax = plt.subplots(figsize=(8, 5))
    steps = [r["step"] for r in records]
    for module in modules:
        ax.plot(steps, [r.get(module, np.nan) for r in records], marker="o", ms=3, label=module)
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="‖∂L_habitable/∂θ‖", title="Gradient flow from L_habitable")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_reliability(labels: np.ndarray, probabilities: np.ndarray, path: Path,
                     split: str = "test") -> Path:
    centres, confidence, frequency, counts = reliability_curve(labels, probabilities)
    used = counts > 0
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="gray", ls="--", label="perfect calibration")
    ax.plot(confidence[used], frequency[used], marker="o", label="model")
    ax.bar(centres, counts / counts.sum(), width=0.1, alpha=0.25, label="fraction of samples")
    ax.set(xlabel="predicted P(habitable)", ylabel="observed frequency", xlim=(0, 1),
           ylim=(0, 1), title=f"Reliability diagram ({split} split)")
    ax.legend(loc="upper left")
    return _save(fig, path)
