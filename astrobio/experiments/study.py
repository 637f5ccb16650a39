"""The study: every baseline on every split, the ablations and the loss-weighting variant, over
several seeds.

Per seed (the seed sets initialisation and data order; the dataset is the same for all) and
per split of `astrobio.experiments.splits` (`id`, the dataset's own test planets, and the
out-of-distribution ones, each training on one population and scoring another):

    unified                 the end-to-end system, `astrobio.train.trainer.train`
    only_<m>                the system trained and evaluated with only modality m present
    late_fusion             the mean of the five only_<m> models' probabilities
    isolated                each encoder from its only_<m> run (trained alone with its own
                            head), frozen; a fresh fusion layer and heads trained on top
    gbt, logistic           gradient-boosted trees and logistic regression on the documented
                            hand features of every modality (`astrobio.experiments.tabular`)

and on `id` only:

    unified_matched         the unified system trained for len(MODALITIES) times the steps:
                            the compute of the five only_<m> runs late fusion and isolated
                            training are built from
    without_<m>             the system retrained with modality m withheld
    uncertainty_weighting   the unified system with `loss.uncertainty_weighting=true`

Every network has the same budget (`train.steps`, `train.batch_size`, `train.lr`) but the
compute-matched one. On `id` the unified model is also scored with each modality removed at
evaluation (`astrobio.eval.evaluate.ablation`), and its gradient-flow log is read. Per split,
the unified model's AUROC, average precision and log-loss minus those of the GBT and of late
fusion come with paired-bootstrap intervals over the test planets (`baselines.
paired_over_seeds`), and every model's `id` AUROC is set against the reference ceiling of its
modalities (`astrobio.experiments.references`, shipped in `resources/reference_ceilings.json`).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from astrobio.config import Config
from astrobio.data.format import read_card
from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.eval.evaluate import ablation, predict
from astrobio.experiments import baselines, tabular
from astrobio.experiments.fit import fit
from astrobio.experiments.splits import SPLITS
from astrobio.run import RunFiles, load_run, resolve_device
from astrobio.schema import MODALITIES
from astrobio.train.losses import WEIGHTED_TERMS
from astrobio.train.trainer import train

FLOW_MODULES = [*MODALITIES, "fusion", "heads"]
SPLIT_MODELS = ("unified", *(f"only_{m}" for m in MODALITIES), "late_fusion", "isolated",
                "gbt", "logistic")
ID_MODELS = ("unified_matched", *(f"without_{m}" for m in MODALITIES), "uncertainty_weighting")
CLAIM = ("gbt", "late_fusion")  # the unified model against each, per split
# what an out-of-distribution split may train besides the unified model (single-modality
# runs come with late fusion or isolated training, which are built from them)
OOD_CHOICES = ("late_fusion", "isolated", "gbt", "logistic")
REFERENCE_FILE = "reference_ceilings.json"


def split_models(split: str, ood_models: tuple[str, ...] = OOD_CHOICES) -> tuple[str, ...]:
    """The `SPLIT_MODELS` trained on `split`: all on `id`; elsewhere the unified model,
    `ood_models` and the single-modality runs those need."""
    if split == "id":
        return SPLIT_MODELS
    wanted = {"unified", *ood_models}
    if wanted & {"late_fusion", "isolated"}:
        wanted |= {f"only_{m}" for m in MODALITIES}
    return tuple(name for name in SPLIT_MODELS if name in wanted)


def runs_per_seed(splits: list[str], ood_models: tuple[str, ...], extra_runs: bool) -> int:
    """Timed units of `run_seed` (the progress bar's total; late fusion is arithmetic)."""
    units = sum(len([m for m in split_models(s, ood_models) if m != "late_fusion"])
                for s in splits)
    return units + (len(ID_MODELS) if "id" in splits and extra_runs else 0)


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


def split_problem(data_root: Path, split: str) -> str | None:
    """Why `split` cannot be scored on this dataset (too few planets of a kind), or None."""
    keep = SPLITS[split]
    for part in ("train", "test"):
        labels = [r["labels"]["habitable"] for r in AstroBioDataset(data_root, part, keep=keep)
                  .records if r["labels"]["has_targets"]]
        if len(set(labels)) < 2:
            return f"its {part} planets hold {len(labels)} labelled planets of one class"
    return None


def run_split(config: Config, split: str, runs: Path, data_root: Path, timed,
              models: tuple[str, ...] = SPLIT_MODELS) -> dict:
    """The `models` (of `SPLIT_MODELS`, `split_models`) trained and scored on `split`;
    returns their predictions."""
    keep = SPLITS[split]
    device = resolve_device(config.train.device)
    test = make_loader(AstroBioDataset(data_root, "test", keep=keep), config.train.batch_size,
                       shuffle=False)
    predictions: dict[str, dict] = {}

    def unified():
        train(config, _fresh(runs / "unified"), data_root, progress=False, planets=keep)
        return predict(load_run(runs / "unified", device, config).model, test, device)

    timed("unified", unified, predictions)
    for m in MODALITIES:
        if f"only_{m}" in models:
            timed(f"only_{m}", lambda m=m: fit(config, _fresh(runs / f"only_{m}"), data_root,
                                               keep=(m,), progress=False, planets=keep),
                  predictions)
    if "late_fusion" in models:
        predictions["late_fusion"] = baselines.late_fusion(
            [predictions[f"only_{m}"] for m in MODALITIES])
    if "isolated" in models:
        timed("isolated", lambda: fit(config, _fresh(runs / "isolated"), data_root,
                                      frozen={m: runs / f"only_{m}" for m in MODALITIES},
                                      progress=False, planets=keep), predictions)
    samples = {part: list(AstroBioDataset(data_root, part, keep=keep))
               for part in ("train", "val", "test")}
    for name in ("gbt", "logistic"):
        if name not in models:
            continue
        timed(name, lambda name=name: tabular.fit_predict(
            name, samples["train"], samples["val"], samples["test"], config.train.seed),
            predictions)
    for name, p in predictions.items():  # every model scored on the same planets
        for column in ("habitable", "surface_temperature"):
            if not np.array_equal(p[column], predictions["unified"][column]):
                raise RuntimeError(f"{split}: {name} was scored on other planets than unified")
    return predictions


def run_seed(config: Config, seed: int, out: Path, data_root: Path, splits: list[str],
             bar, ood_models: tuple[str, ...] = OOD_CHOICES,
             extra_runs: bool = True) -> tuple[dict, dict]:
    """Train and score every model of every split for one seed: (results, predictions).
    `extra_runs=False` leaves out the `ID_MODELS` (the costliest third of the study)."""
    cfg = _with(config, seed)
    seconds: dict[str, dict[str, float]] = {}
    predictions: dict[str, dict[str, dict]] = {}
    result: dict = {"metrics": {}}

    for split in splits:
        runs = out / "runs" / f"seed{seed}" / split
        seconds[split] = {}

        def timed(name, function, into, split=split):
            bar.set_description(f"seed {seed} {split}: {name}")
            started = time.perf_counter()
            into[name] = function()
            seconds[split][name] = time.perf_counter() - started
            bar.update(1)

        predictions[split] = run_split(cfg, split, runs, data_root, timed,
                                       split_models(split, ood_models))
        if split == "id":
            result |= _id_only(config, seed, runs, data_root, timed, predictions["id"],
                               extra_runs)
    result["metrics"] = {split: {name: baselines.headline(p) for name, p in found.items()}
                         for split, found in predictions.items()}
    result["seconds"] = seconds
    return result, predictions


def _id_only(config: Config, seed: int, runs: Path, data_root: Path, timed,
             found: dict, extra_runs: bool) -> dict:
    """The unified model's ablation at evaluation, its and the isolated model's gradient
    flow; with `extra_runs` the `ID_MODELS` runs into `found` and the learned loss weights."""
    cfg = _with(config, seed)
    device = resolve_device(cfg.train.device)
    test = make_loader(AstroBioDataset(data_root, "test"), cfg.train.batch_size, shuffle=False)
    unified = load_run(runs / "unified", device, cfg).model
    result = {
        "ablation_eval_auroc": {name: r["auroc"] for name, r in
                                ablation(unified, test, device, found["unified"]).items()},
        "gradient_flow": {name: _read_jsonl(RunFiles(runs / name).gradient_flow)
                          for name in ("unified", "isolated")},
        "unified_run": str(runs / "unified")}
    if not extra_runs:
        return result
    timed("unified_matched", lambda: _matched(config, seed, runs, data_root), found)
    for m in MODALITIES:
        kept = tuple(k for k in MODALITIES if k != m)
        timed(f"without_{m}", lambda m=m, kept=kept: fit(
            cfg, _fresh(runs / f"without_{m}"), data_root, keep=kept, progress=False), found)

    def uncertainty():
        run_config = _with(config, seed, uncertainty=True)
        train(run_config, _fresh(runs / "uncertainty_weighting"), data_root, progress=False)
        return predict(load_run(runs / "uncertainty_weighting", device, run_config).model,
                       test, device)

    timed("uncertainty_weighting", uncertainty, found)
    log_variance = load_run(runs / "uncertainty_weighting", device).state["uncertainty"][
        "log_variance"]
    result["learned_loss_weights"] = dict(zip(WEIGHTED_TERMS,
                                              torch.exp(-log_variance).tolist()))
    return result


def _matched(config: Config, seed: int, runs: Path, data_root: Path) -> dict:
    run_config = _with(config, seed, steps_factor=len(MODALITIES))
    train(run_config, _fresh(runs / "unified_matched"), data_root, progress=False)
    device = resolve_device(run_config.train.device)
    test = make_loader(AstroBioDataset(data_root, "test"), run_config.train.batch_size,
                       shuffle=False)
    return predict(load_run(runs / "unified_matched", device, run_config).model, test, device)


def reference_ceilings(generator_version: str | None) -> dict | None:
    """The shipped ceilings when they were estimated for `generator_version`, else None."""
    path = resources.files("astrobio") / "resources" / REFERENCE_FILE
    ceilings = json.loads(path.read_text())
    return ceilings if ceilings["generator_version"] == generator_version else None


def _ceiling_subset(model: str) -> str:
    """The modality subset whose reference bounds `model` (`references.subsets` names)."""
    if model.startswith("only_"):
        return model[len("only_"):]
    if model.startswith("without_"):
        return f"all but {model[len('without_'):]}"
    return "all"


def gaps(table: dict, ceilings: dict | None) -> dict:
    """Per `id` model: its mean habitable AUROC, the ceiling of its modalities and the gap."""
    if ceilings is None:
        return {}
    out = {}
    for model, row in table.items():
        reference = ceilings["table"][_ceiling_subset(model)]["habitable"]
        out[model] = {"auroc": row["auroc"]["mean"], "subset": _ceiling_subset(model),
                      "ceiling": reference["auroc"], "ceiling_se": reference["se"],
                      "gap": row["auroc"]["mean"] - reference["auroc"]}
    return out


def paired_claims(predictions: list[dict[str, dict]]) -> dict:
    """unified minus each `CLAIM` model, per metric of `baselines.PAIRED_METRICS`, over the
    seeds' predictions of one split's labelled test planets."""
    first = predictions[0]["unified"]
    labelled = first["has_targets"].astype(bool)
    labels = first["habitable"][labelled]
    out = {}
    for other in (name for name in CLAIM if name in predictions[0]):
        a = [p["unified"]["p_habitable"][labelled] for p in predictions]
        b = [p[other]["p_habitable"][labelled] for p in predictions]
        out[f"unified - {other}"] = {
            metric: baselines.paired_over_seeds(labels, a, b, metric)
            for metric in baselines.PAIRED_METRICS}
    return out


def summarise(per_seed: list[dict], predictions: list[dict], ceilings: dict | None) -> dict:
    """Every aggregate the report shows, from the per-seed results and predictions."""
    splits = list(per_seed[0]["metrics"])
    tables = {split: baselines.aggregate([s["metrics"][split] for s in per_seed])
              for split in splits}
    out: dict = {"splits": {}}
    for split in splits:
        first = predictions[0][split]["unified"]
        labelled = first["has_targets"].astype(bool)
        out["splits"][split] = {
            "table": tables[split], "n_test": int(labelled.sum()),
            "prevalence": float(first["habitable"][labelled].mean()),
            "paired": paired_claims([p[split] for p in predictions]),
            "reliability": {name: {"labels": predictions[0][split][name]["habitable"][
                labelled].tolist(), "p_habitable": predictions[0][split][name][
                "p_habitable"][labelled].tolist()} for name in ("unified", *CLAIM)
                if name in predictions[0][split]},
        }
    if "id" not in tables:
        return out
    table = tables["id"]
    out["table"] = table
    out["references"] = {"source": REFERENCE_FILE, "n": ceilings["n"] if ceilings else None,
                         "gaps": gaps(table, ceilings)}
    out["comparisons"] = {
        f"{model} vs {other}": baselines.compare(table[model]["auroc"], table[other]["auroc"])
        for model in ("unified", "unified_matched") if model in table
        for other in ("isolated", "late_fusion", "gbt")
    }
    out["ablation_eval"] = {m: baselines.mean_std([s["ablation_eval_auroc"][m]
                                                   for s in per_seed]) for m in MODALITIES}
    out["gradient_shares"] = {
        name: {module: baselines.mean_std([
            baselines.gradient_shares(s["gradient_flow"][name], FLOW_MODULES)[module]
            for s in per_seed]) for module in FLOW_MODULES}
        for name in ("unified", "isolated")
    }
    if "uncertainty_weighting" not in table:  # run without the extra runs
        return out
    out["ablation_retrain"] = {m: table[f"without_{m}"]["auroc"] for m in MODALITIES}
    weights = {term: baselines.mean_std([s["learned_loss_weights"][term] for s in per_seed])
               for term in WEIGHTED_TERMS}
    out["loss_weighting"] = {
        "fixed": table["unified"], "uncertainty": table["uncertainty_weighting"],
        "comparison": {m: baselines.compare(table["uncertainty_weighting"][m],
                                            table["unified"][m], baselines.HIGHER_IS_BETTER[m])
                       for m in baselines.METRICS},
        "learned_weights": weights,
    }
    return out


def run_study(config: Config, out: Path, seeds: list[int], data_root: Path,
              splits: list[str] | None = None, progress: bool = True,
              ood_models: tuple[str, ...] = OOD_CHOICES, extra_runs: bool = True) -> dict:
    """Every seed's runs on every split (default: all of `SPLITS` the dataset can score),
    then the summary; the per-seed detail is kept in the result, the predictions are not.
    `ood_models` and `extra_runs`: `split_models` and `run_seed`."""
    splits = list(SPLITS) if splits is None else splits
    skipped = {split: why for split in splits if (why := split_problem(data_root, split))}
    splits = [s for s in splits if s not in skipped]
    per_seed, predictions = [], []
    with tqdm(total=len(seeds) * runs_per_seed(splits, ood_models, extra_runs), desc="study",
              unit="run", disable=not progress) as bar:
        for seed in seeds:
            result, found = run_seed(config, seed, out, data_root, splits, bar, ood_models,
                                     extra_runs)
            per_seed.append(result)
            predictions.append(found)
    ceilings = reference_ceilings(read_card(data_root).get("generator_version"))
    summary = summarise(per_seed, predictions, ceilings)
    summary["skipped_splits"] = skipped
    summary["ood_models"], summary["extra_runs"] = list(ood_models), extra_runs
    summary["per_seed"] = per_seed
    summary["seconds_per_run"] = {
        split: {name: float(np.mean([s["seconds"][split][name] for s in per_seed]))
                for name in per_seed[0]["seconds"][split]} for split in splits}
    return summary
