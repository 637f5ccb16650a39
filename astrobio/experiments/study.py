"""The study: every baseline, ablation and loss-weighting variant, over several seeds.

Per seed (the seed sets initialisation and data order; the dataset is the same for all):

    unified                 the end-to-end system, `astrobio.train.trainer.train`
    unified_matched         the same, trained for len(MODALITIES) times the steps: the
                            compute of the five only_<m> runs that late fusion and isolated
                            training are built from
    only_<m>                the system trained and evaluated with only modality m present
    late_fusion             the mean of the five only_<m> models' probabilities
    isolated                each encoder from its only_<m> run (trained alone with its own
                            head), frozen; a fresh fusion layer and heads trained on top
    without_<m>             the system retrained with modality m withheld
    uncertainty_weighting   the unified system with `loss.uncertainty_weighting=true`

Every other run has the same budget (`train.steps`, `train.batch_size`, `train.lr`). The unified
model is also scored with each modality removed at evaluation (`astrobio.eval.evaluate.ablation`),
and its gradient-flow log is read from `gradient_flow.jsonl`.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from astrobio.config import Config
from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.eval.evaluate import ablation, predict
from astrobio.experiments import baselines
from astrobio.experiments.fit import fit
from astrobio.run import RunFiles, load_run, resolve_device
from astrobio.schema import MODALITIES
from astrobio.train.losses import WEIGHTED_TERMS
from astrobio.train.trainer import train

FLOW_MODULES = [*MODALITIES, "fusion", "heads"]
RUNS_PER_SEED = 4 + 2 * len(MODALITIES)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _with(config: Config, seed: int, uncertainty: bool = False, steps_factor: int = 1) -> Config:
    config = copy.deepcopy(config)
    config.train.seed = seed
    config.loss.uncertainty_weighting = uncertainty
    config.train.steps *= steps_factor
    return config


def _fresh(run_dir: Path) -> Path:
    shutil.rmtree(run_dir, ignore_errors=True)
    return run_dir


def run_seed(config: Config, seed: int, out: Path, data_root: Path, bar) -> dict:
    """Train and score every variant for one seed; returns metrics, ablations, flows, times."""
    runs = out / "runs" / f"seed{seed}"
    cfg = _with(config, seed)
    device = resolve_device(cfg.train.device)
    test = make_loader(AstroBioDataset(data_root, "test"), cfg.train.batch_size, shuffle=False)
    predictions: dict[str, dict] = {}
    seconds: dict[str, float] = {}

    def timed(name, function):
        bar.set_description(f"seed {seed}: {name}")
        started = time.perf_counter()
        predictions[name] = function()
        seconds[name] = time.perf_counter() - started
        bar.update(1)

    def trainer_run(name: str, run_config: Config):
        train(run_config, _fresh(runs / name), data_root, progress=False)
        return predict(load_run(runs / name, device, run_config).model, test, device)

    timed("unified", lambda: trainer_run("unified", cfg))
    timed("unified_matched", lambda: trainer_run(
        "unified_matched", _with(config, seed, steps_factor=len(MODALITIES))))
    unified = load_run(runs / "unified", device, cfg).model
    ablation_eval = {name: r["auroc"] for name, r in
                     ablation(unified, test, device, predictions["unified"]).items()}
    for m in MODALITIES:
        timed(f"only_{m}", lambda m=m: fit(cfg, _fresh(runs / f"only_{m}"), data_root,
                                           keep=(m,), progress=bar.disable is False))
    predictions["late_fusion"] = baselines.late_fusion(
        [predictions[f"only_{m}"] for m in MODALITIES])
    timed("isolated", lambda: fit(cfg, _fresh(runs / "isolated"), data_root,
                                  frozen={m: runs / f"only_{m}" for m in MODALITIES},
                                  progress=bar.disable is False))
    for m in MODALITIES:
        keep = tuple(k for k in MODALITIES if k != m)
        timed(f"without_{m}", lambda m=m, keep=keep: fit(
            cfg, _fresh(runs / f"without_{m}"), data_root, keep=keep,
            progress=bar.disable is False))
    timed("uncertainty_weighting",
          lambda: trainer_run("uncertainty_weighting", _with(config, seed, uncertainty=True)))
    log_variance = load_run(runs / "uncertainty_weighting", device).state["uncertainty"][
        "log_variance"]
    return {
        "metrics": {name: baselines.headline(p) for name, p in predictions.items()},
        "ablation_eval_auroc": ablation_eval,
        "gradient_flow": {name: _read_jsonl(RunFiles(runs / name).gradient_flow)
                          for name in ("unified", "isolated")},
        "learned_loss_weights": dict(zip(WEIGHTED_TERMS,
                                         torch.exp(-log_variance).tolist())),
        "seconds": seconds,
        "unified_run": str(runs / "unified"),
    }


def summarise(per_seed: list[dict]) -> dict:
    """Every aggregate the report shows, from the per-seed results."""
    table = baselines.aggregate([s["metrics"] for s in per_seed])
    comparisons = {
        f"{model} vs {other}": baselines.compare(table[model]["auroc"], table[other]["auroc"])
        for model in ("unified", "unified_matched") for other in ("isolated", "late_fusion")
    }
    ablation_eval = {m: baselines.mean_std([s["ablation_eval_auroc"][m] for s in per_seed])
                     for m in MODALITIES}
    ablation_retrain = {m: table[f"without_{m}"]["auroc"] for m in MODALITIES}
    shares = {
        name: {module: baselines.mean_std([
            baselines.gradient_shares(s["gradient_flow"][name], FLOW_MODULES)[module]
            for s in per_seed]) for module in FLOW_MODULES}
        for name in ("unified", "isolated")
    }
    weights = {term: baselines.mean_std([s["learned_loss_weights"][term] for s in per_seed])
               for term in WEIGHTED_TERMS}
    loss_weighting = {
        "fixed": table["unified"], "uncertainty": table["uncertainty_weighting"],
        "comparison": {m: baselines.compare(table["uncertainty_weighting"][m],
                                            table["unified"][m], baselines.HIGHER_IS_BETTER[m])
                       for m in baselines.METRICS},
        "learned_weights": weights,
    }
    return {"table": table, "comparisons": comparisons, "ablation_eval": ablation_eval,
            "ablation_retrain": ablation_retrain, "gradient_shares": shares,
            "loss_weighting": loss_weighting}


def run_study(config: Config, out: Path, seeds: list[int], data_root: Path,
              progress: bool = True) -> dict:
    """Every seed's runs, then the summary; the per-seed detail is kept in the result."""
    per_seed = []
    with tqdm(total=len(seeds) * RUNS_PER_SEED, desc="study", unit="run",
              disable=not progress) as bar:
        for seed in seeds:
            per_seed.append(run_seed(config, seed, out, data_root, bar))
    summary = summarise(per_seed)
    summary["per_seed"] = per_seed
    summary["seconds_per_run"] = {
        name: float(np.mean([s["seconds"][name] for s in per_seed]))
        for name in per_seed[0]["seconds"]}
    return summary
