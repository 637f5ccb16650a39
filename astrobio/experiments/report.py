"""`report.md` and its PNG plots from the study's `results.json` dict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from astrobio.eval import plots  # noqa: E402
from astrobio.eval.metrics import reliability_curve  # noqa: E402
from astrobio.experiments.baselines import METRICS  # noqa: E402
from astrobio.experiments.study import CLAIM, FLOW_MODULES, SPLIT_MODELS  # noqa: E402
from astrobio.schema import MODALITIES  # noqa: E402

BASELINES = ("unified", "unified_matched", "isolated", "late_fusion", "gbt", "logistic",
             *(f"only_{m}" for m in MODALITIES))
METRIC_TITLES = {"accuracy": "accuracy", "auroc": "AUROC", "average_precision": "AP",
                 "log_loss": "log-loss", "f1": "F1", "ece": "ECE",
                 "surface_temperature_mae_k": "T_s MAE (K)"}
SPLIT_METRICS = ("auroc", "average_precision", "log_loss", "ece")
DESCRIPTIONS = {
    "unified": "unified, end to end",
    "unified_matched": f"unified, {len(MODALITIES)}× the steps (compute-matched)",
    "isolated": "isolated training (frozen encoders + fusion head)",
    "late_fusion": "late fusion (mean of single-modality probabilities)",
    "gbt": "gradient-boosted trees, hand features",
    "logistic": "logistic regression, hand features",
    **{f"only_{m}": f"{m} alone" for m in MODALITIES},
}
SPLIT_TITLES = {
    "id": "in distribution (the dataset's own test planets)",
    "m_dwarfs": "train on FGK hosts, test on M dwarfs",
    "radius_valley": "train outside the radius valley, test inside it",
    "insolation": "train outside 0.6-1.2 S_earth, test inside",
}


def fmt(stat: dict, digits: int = 3, kind: str = "f") -> str:
    """'mean ± std' (`kind` "f" fixed or "e" scientific), the mean alone for one seed, 'n/a'
    when undefined."""
    if math.isnan(stat["mean"]):
        return "n/a"
    if math.isnan(stat["std"]):
        return f"{stat['mean']:.{digits}{kind}}"
    return f"{stat['mean']:.{digits}{kind}} ± {stat['std']:.{digits}{kind}}"


def _bars(ax, labels, groups: dict[str, list[dict]]):
    width = 0.8 / len(groups)
    x = np.arange(len(labels))
    for i, (name, stats) in enumerate(groups.items()):
        means = [s["mean"] for s in stats]
        errors = [0.0 if math.isnan(s["std"]) else s["std"] for s in stats]
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, means, width, yerr=errors, capsize=3,
               label=name)
    ax.set_xticks(x, labels, rotation=30, ha="right")


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def make_plots(results: dict, out: Path) -> dict[str, str]:
    study, files = results["study"], {}
    table = study["table"]
    shown = [v for v in BASELINES if v in table]
    fig, ax = plt.subplots(figsize=(8, 4))
    _bars(ax, shown, {"test AUROC (habitable)": [table[v]["auroc"] for v in shown]})
    ax.set(ylabel="AUROC", title="Baselines at the same training budget", ylim=(0, 1))
    files["baselines"] = _save(fig, out / "baselines_auroc.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    groups = {"removed at evaluation": [study["ablation_eval"][m] for m in MODALITIES]}
    if "ablation_retrain" in study:
        groups["retrained without"] = [study["ablation_retrain"][m] for m in MODALITIES]
    _bars(ax, MODALITIES, groups)
    full = table["unified"]["auroc"]["mean"]
    ax.axhline(full, color="gray", ls="--", label=f"all modalities ({full:.3f})")
    ax.set(ylabel="test AUROC (habitable)", title="Ablation", ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=8)
    files["ablation"] = _save(fig, out / "ablation.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    _bars(ax, FLOW_MODULES, {name: [study["gradient_shares"][name][m] for m in FLOW_MODULES]
                             for name in ("unified", "isolated")})
    ax.set(ylabel="share of ‖∂L_habitable/∂θ‖²", title="Where the habitability gradient goes")
    ax.legend(fontsize=8)
    files["gradient_share"] = _save(fig, out / "gradient_share.png")

    first = study["per_seed"][0]
    flow = first["gradient_flow"]["unified"]
    if flow:
        files["gradient_flow"] = plots.plot_gradient_flow(
            flow, out / "gradient_flow.png").name
    metrics_path = Path(first["unified_run"]) / "metrics.jsonl"
    if metrics_path.exists():
        records = [json.loads(line) for line in metrics_path.read_text().splitlines()]
        losses = [r for r in records if any(k.startswith("loss/") for k in r)]
        files["loss_curves"] = plots.plot_loss_curves(losses, out / "loss_curves.png").name

    for split, found in study["splits"].items():
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], color="gray", ls="--", label="perfect calibration")
        for name, curve in found["reliability"].items():
            _, confidence, frequency, counts = reliability_curve(
                np.array(curve["labels"]), np.array(curve["p_habitable"]))
            used = counts > 0
            ax.plot(confidence[used], frequency[used], marker="o", label=DESCRIPTIONS[name])
        ax.set(xlabel="predicted P(habitable)", ylabel="observed frequency", xlim=(0, 1),
               ylim=(0, 1), title=f"Reliability, {split} ({found['n_test']} planets)")
        ax.legend(loc="upper left", fontsize=7)
        files[f"reliability_{split}"] = _save(fig, out / f"reliability_{split}.png")

    planets = results["physics"]["catalogue"]["planets"]
    colours = {"conservative": "tab:green", "optimistic": "tab:olive", "outside": "tab:red",
               None: "tab:gray"}
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar([p["planet"] for p in planets], [p["p_habitable"] for p in planets],
           color=[colours[p["lit_hz"]] for p in planets])
    ax.axhline(0.5, color="gray", ls="--")
    ax.set(ylabel="P(habitable), params + text only", title="Real planets", ylim=(0, 1))
    ax.tick_params(axis="x", rotation=60)
    ax.legend(handles=[Patch(color=c, label=f"literature: {s}") for s, c in colours.items()
                       if s is not None], fontsize=8)
    files["catalogue"] = _save(fig, out / "catalogue.png")
    return files


def _verdict_sentence(model: str, name: str, comparison: dict) -> str:
    verdict = comparison["verdict"]
    numbers = (f"(difference in mean AUROC {comparison['difference']:+.3f}, spread "
               f"{comparison['spread']:.3f})")
    if verdict == "better":
        return f"- {model} **beats** {name} on AUROC by more than the seeds' spread {numbers}."
    if verdict == "worse":
        return f"- {model} is **worse** than {name} on AUROC by more than the seeds' spread " \
               f"{numbers}."
    if verdict == "within spread":
        return f"- {model} does **not** beat {name} on AUROC by more than the seeds' spread " \
               f"{numbers}."
    return f"- Whether {model[0].lower()}{model[1:]} beats {name} on AUROC by more than the " \
           f"seeds' spread is **undetermined**: fewer than two seeds with a defined AUROC " \
           f"{numbers}."


def render(results: dict, files: dict[str, str]) -> str:
    setup, study, physics = results["setup"], results["study"], results["physics"]
    table = study["table"]
    lines = [
        "# AstroBio study",
        "",
        f"Preset `{setup['preset']}`{' (quick)' if setup['quick'] else ''}, seeds "
        f"{setup['seeds']}, {setup['steps']} steps per run at batch {setup['batch_size']} and "
        f"learning rate {setup['lr']}; {setup['n_train']} training and {setup['n_test']} test "
        f"planets. Total time {setup['seconds'] / 60:.1f} min. Every number is in "
        "`results.json`.",
        "",
        "**Read this first.** The training and test data are synthetic: every planet, its "
        "climate datacube, metabolic network, spectrum, text and labels are generated from "
        "physics by `astrobio.data.synthetic`, so these scores measure how well the models "
        "recover that generator, not real habitability. Real planets lack most modalities: a "
        "catalogue planet has its parameters and a text description, never a climate datacube "
        "or a metabolic network, and only a few have transmission spectra.",
        "",
        "## 1. Baselines (same steps, batch and learning rate, but for the compute-matched "
        "model)",
        "",
        "Mean ± standard deviation over the seeds, test split, `habitable` target; surface "
        "temperature MAE in kelvin.",
        "",
        "| model | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for variant in (v for v in BASELINES if v in table):
        lines.append(f"| {DESCRIPTIONS[variant]} | "
                     + " | ".join(fmt(table[variant][m]) for m in METRICS) + " |")
    lines += [
        "",
        "A difference counts when it exceeds the seeds' spread, the sum of the two standard "
        "deviations:",
        "",
        *(_verdict_sentence(subject, name, study["comparisons"][f"{model} vs {other}"])
          for model, subject in (("unified", "The unified model"),
                                 ("unified_matched", "The compute-matched unified model"))
          if model in table
          for other, name in (("isolated", "isolated training"),
                              ("late_fusion", "late fusion"),
                              ("gbt", "gradient-boosted trees"))),
        "",
        f"Late fusion and isolated training are built from the five single-modality runs, about "
        f"{len(MODALITIES)}× the steps of one unified run; the compute-matched unified model "
        "is trained for as many steps (same batch and learning rate, its schedule stretched).",
        "",
        "Isolated training: each encoder is the one trained in its single-modality run (alone, "
        "with its own fusion and head, on its own modality), frozen; only a fresh fusion layer "
        "and heads are trained on all modalities. Its encoders never see the habitability "
        "loss of the joint model, and the LLM's numerical and spectral prefix inputs, never "
        "present when it was trained alone, reach it through untrained projections.",
        "",
        f"![baselines]({files['baselines']})",
        "",
        *_claim_section(study, files),
        *_reference_section(study),
        "## 2. Ablation",
        "",
        "Test AUROC of the unified model with one modality removed at evaluation (marked absent "
        "through `present`), and of the system retrained without it.",
        "",
        "| modality | removed at evaluation | retrained without |",
        "|---|---|---|",
        *(f"| {m} | {fmt(study['ablation_eval'][m])} | "
          f"{fmt(study['ablation_retrain'][m]) if 'ablation_retrain' in study else 'not run'} |"
          for m in MODALITIES),
        f"| (none removed) | {fmt(table['unified']['auroc'])} | |",
        "",
        f"![ablation]({files['ablation']})",
        "",
        "## 3. Gradient flow",
        "",
        "Share of the habitability loss's squared gradient norm, ‖∂L_habitable/∂θ_m‖² over the "
        "sum across modules, averaged over the logged steps (`gradient_flow.jsonl`). In the "
        "isolated model the encoders are frozen, so their share is zero by construction.",
        "",
        "| module | unified | isolated |",
        "|---|---|---|",
        *(f"| {m} | {fmt(study['gradient_shares']['unified'][m], 2, 'e')} | "
          f"{fmt(study['gradient_shares']['isolated'][m], 2, 'e')} |" for m in FLOW_MODULES),
        "",
        f"![gradient share]({files['gradient_share']})",
    ]
    if "gradient_flow" in files:
        lines += ["", "Per-module gradient norms across training (first seed's unified run):",
                  "", f"![gradient flow]({files['gradient_flow']})"]
    if "loss_curves" in files:
        lines += ["", f"![loss curves]({files['loss_curves']})"]
    lines += [
        "",
        "## 4. Physics validation",
        "",
        "Kopparapu et al. (2014) habitable zone of the Sun (5780 K, 1 Lsun, 1 Earth mass):",
        "",
        "| limit | paper (AU) | computed (AU) | agrees to 3 decimals |",
        "|---|---|---|---|",
        *(f"| {r['limit']} | {r['paper_au']:.3f} | {r['computed_au']:.5f} | "
          f"{'yes' if r['match'] else '**no**'} |" for r in physics["kopparapu"]),
        "",
        "Real planets from the curated catalogue (`astrobio/resources/exoplanets.csv`, every "
        "value with its source in the file), predicted by the first seed's unified model from "
        "their parameters and text only. `physics` is the Kopparapu et al. 2014 status at the "
        "planet's insolation (* Teff below the fits' 2600 K, evaluated at 2600 K); "
        "`literature` the status the cited papers give.",
        "",
        "| planet | S (Earth) | physics | literature | P(habitable) | class | T_s (K) | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in physics["catalogue"]["planets"]:
        lines.append(
            f"| {p['planet']} | {p['pl_insol']:.3g} | {p['physics_hz']}"
            f"{'*' if p['physics_hz_teff_clamped'] else ''} | {p['lit_hz'] or '-'} | "
            f"{p['p_habitable']:.3f} | {p['predicted_class']} | "
            f"{p['predicted_surface_temperature_k']:.0f} | {p['lit_hz_ref'] or '-'} |")
    agree = physics["catalogue"]["agreement"]
    lines += [
        "",
        f"Against the literature ({agree['n']} planets): the physics status agrees exactly "
        f"for {agree['physics_exact_status_agreement']:.0%} and on in-zone/outside for "
        f"{agree['physics_in_zone_agreement']:.0%}; the model's call (P(habitable) ≥ 0.5) "
        f"agrees on in-zone/outside for {agree['model_in_zone_agreement']:.0%}. The model saw "
        f"parameters and text alone, all these planets have, in "
        f"{setup['config']['train']['catalogue_only']:.0%} of its training samples "
        "(`train.catalogue_only`); its `habitable` label is a temperate rocky surface, not "
        "habitable-zone membership.",
        "",
        f"![catalogue]({files['catalogue']})",
        "",
        *_loss_weighting_section(study),
        "## Timings",
        "",
        *(f"Mean wall time per run on `{split}` (s): " + ", ".join(
            f"{name} {seconds:.0f}" for name, seconds in per_run.items()) + "."
          for split, per_run in study["seconds_per_run"].items()),
        "",
    ]
    return "\n".join(lines)


def _loss_weighting_section(study: dict) -> list[str]:
    if "loss_weighting" not in study:
        return ["## 5. Loss weighting", "", "Not run (`--no-extra-runs`).", ""]
    return [
        "## 5. Loss weighting",
        "",
        "Fixed weights (`LossConfig`) against learned uncertainty weighting (Kendall, Gal & "
        "Cipolla 2018, `loss.uncertainty_weighting=true`), same budget:",
        "",
        "| weighting | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
        "| fixed | " + " | ".join(fmt(study["loss_weighting"]["fixed"][m]) for m in METRICS)
        + " |",
        "| uncertainty | " + " | ".join(fmt(study["loss_weighting"]["uncertainty"][m])
                                       for m in METRICS) + " |",
        "| uncertainty vs fixed | " + " | ".join(
            study["loss_weighting"]["comparison"][m]["verdict"] for m in METRICS) + " |",
        "",
        "Learned multipliers exp(−s_i) at the end of training: " + ", ".join(
            f"{term} {fmt(stat, 2)}"
            for term, stat in study["loss_weighting"]["learned_weights"].items()) + ".",
        "",
    ]


def _interval(d: dict) -> str:
    return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def _claim_section(study: dict, files: dict[str, str]) -> list[str]:
    """Every model on every split, and the unified model minus the GBT and late fusion."""
    lines = [
        "## 1b. Splits: in and out of distribution",
        "",
        "`habitable` on each split's labelled test planets (mean ± std over the seeds). An "
        "out-of-distribution split trains and validates on one population and tests on another "
        "(`astrobio/experiments/splits.py`). Log-loss and ECE: lower is better.",
        "",
    ]
    for split, why in study["skipped_splits"].items():
        lines += [f"- `{split}` skipped: {why}.", ""]
    for split, found in study["splits"].items():
        lines += [
            f"### `{split}`: {SPLIT_TITLES[split]}",
            "",
            f"{found['n_test']} test planets, {found['prevalence']:.0%} habitable.",
            "",
            "| model | " + " | ".join(METRIC_TITLES[m] for m in SPLIT_METRICS) + " |",
            "|---|" + "---|" * len(SPLIT_METRICS),
            *(f"| {DESCRIPTIONS[name]} | " + " | ".join(
                fmt(found["table"][name][m]) for m in SPLIT_METRICS) + " |"
              for name in SPLIT_MODELS if name in found["table"]),
            "",
            "Unified minus each rival, the seeds' mean, with the 95 % interval of a paired "
            "bootstrap over the test planets (2,000 resamples):",
            "",
            "| difference | AUROC | AP | log-loss |",
            "|---|---|---|---|",
            *(f"| {pair} | " + " | ".join(_interval(paired[m]) for m in
                                          ("auroc", "average_precision", "log_loss")) + " |"
              for pair, paired in found["paired"].items()),
            "",
            f"![reliability {split}]({files[f'reliability_{split}']})",
            "",
        ]
    holds = {split: all(found["paired"][f"unified - {other}"]["auroc"]["low"] > 0
                        for other in CLAIM if f"unified - {other}" in found["paired"])
             for split, found in study["splits"].items()}
    verdict = ("holds on every split" if all(holds.values()) else
               "does **not** hold on " + ", ".join(f"`{s}`" for s, ok in holds.items()
                                                   if not ok))
    absent = {split: [o for o in CLAIM if f"unified - {o}" not in found["paired"]]
              for split, found in study["splits"].items()}
    missing = [f"`{split}` ({', '.join(rivals)})" for split, rivals in absent.items() if rivals]
    if missing:
        verdict += "; not measured against " + "; ".join(missing)
    lines += [
        f"**The claim** (the unified model's AUROC above both the gradient-boosted trees' and "
        f"late fusion's, the paired interval's lower end above zero) {verdict}.",
        "",
    ]
    return lines


def _reference_section(study: dict) -> list[str]:
    references = study["references"]
    if not references["gaps"]:
        return ["No reference ceilings were estimated for this generator version "
                "(`python -m astrobio.experiments.references`).", ""]
    return [
        "### Gap to the reference ceilings (`id`)",
        "",
        f"The best AUROC reachable from each model's modalities, estimated from the "
        f"generator's latent observables of {references['n']:,} planets "
        f"(`astrobio/resources/{references['source']}`; "
        "`python -m astrobio.experiments.references`). A gap near zero means the model uses "
        "what its inputs hold.",
        "",
        "| model | modalities | AUROC | ceiling | gap |",
        "|---|---|---|---|---|",
        *(f"| {DESCRIPTIONS.get(name, name)} | {g['subset']} | {g['auroc']:.3f} | "
          f"{g['ceiling']:.3f} ± {g['ceiling_se']:.3f} | {g['gap']:+.3f} |"
          for name, g in references["gaps"].items() if name in DESCRIPTIONS
          or name.startswith("without_")),
        "",
    ]


def write_report(results: dict, out: Path) -> Path:
    files = make_plots(results, out)
    path = out / "report.md"
    path.write_text(render(results, files))
    return path
