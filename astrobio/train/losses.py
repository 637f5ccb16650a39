"""The one training loss of the unified system, as named terms.

Terms (each returned unweighted, detached, for logging; `total` carries the gradient):

    habitable            BCE(habitable_logit, habitable)                over samples knowing it
    habitability_class   CE(class logits, habitability_class)           over samples knowing it
    surface_temperature  MSE in normalised space: (z_pred - z(T_true))^2, z as in
                         `astrobio.models.normalisation`                over samples knowing it
    biosignature         BCE(biosignature_logit, biosignature)          over samples knowing it
                         (labels may be partial: each term is masked to the samples with
                         `has_targets` whose own target is known, `data.sample.target_known`)
    lm                   the LLM's next-token cross-entropy over the text tokens
    vae_reconstruction   the graph VAE's edge BCE
    vae_kl               the graph VAE's KL per node
    physics              greenhouse warming is non-negative: the predicted surface temperature
                         may not fall below the equilibrium temperature
                         `astrobio.physics.equilibrium_temperature(Teff, R*, a, A_max, e)` of
                         the planet's own parameters at the highest plausible Bond albedo
                         A_max = 0.8 (above any solar-system body's; Venus 0.76), hinge
                         `relu(z(Teq) - z_pred)` over samples whose params are present and
                         physical. It needs no label, so unlabelled planets contribute too.

    total = sum_i w_i L_i + kl_weight(step) * vae_kl

with `w_i` from `LossConfig` (`lm` for lm, `vae_reconstruction`, `physics`, the four target
weights) and `kl_weight(step) = vae_kl_beta * min(1, step / kl_warmup_steps)` (linear warm-up).
With `LossConfig.uncertainty_weighting` an `UncertaintyWeighting` module replaces the fixed sum
over the weighted terms by Kendall, Gal & Cipolla (2018), `sum_i exp(-s_i) w_i L_i + s_i`, with
learned log-variances `s_i`; the KL stays on its warm-up schedule. A batch with no labelled
sample gives exact zeros (still differentiable) for the four supervised terms, and a term no
sample of the batch knows is zero alike: such planets train only the label-free terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from astrobio.config import LossConfig
from astrobio.data.sample import target_known
from astrobio.models.normalisation import normalise_temperature
from astrobio.physics import equilibrium_temperature
from astrobio.schema import MODALITIES, PARAM_NAMES

PHYSICS_MAX_ALBEDO = 0.8

SUPERVISED_TERMS = ("habitable", "habitability_class", "surface_temperature", "biosignature")
WEIGHTED_TERMS = (*SUPERVISED_TERMS, "lm", "vae_reconstruction", "physics")

_PARAMS = MODALITIES.index("params")
_TEFF, _ST_RAD = PARAM_NAMES.index("st_teff"), PARAM_NAMES.index("st_rad")
_A, _ECC = PARAM_NAMES.index("pl_orbsmax"), PARAM_NAMES.index("pl_orbeccen")


def kl_weight(config: LossConfig, step: int) -> float:
    """`vae_kl_beta`, ramped linearly from 0 at step 0 to full at `kl_warmup_steps`."""
    if config.kl_warmup_steps <= 0:
        return config.vae_kl_beta
    return config.vae_kl_beta * min(1.0, step / config.kl_warmup_steps)


class UncertaintyWeighting(nn.Module):
    """Kendall, Gal & Cipolla 2018: `L = sum_i exp(-s_i) L_i + s_i`, `s_i = log sigma_i^2`
    learned (initialised at 0, i.e. weight 1). Its parameters must be given to the optimizer."""

    def __init__(self, names: tuple[str, ...] = WEIGHTED_TERMS):
        super().__init__()
        self.names = tuple(names)
        self.log_variance = nn.Parameter(torch.zeros(len(self.names)))

    def forward(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        losses = torch.stack([terms[name] for name in self.names])
        return (torch.exp(-self.log_variance) * losses + self.log_variance).sum()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1).to(values.dtype)


def physics_penalty(surface_temperature_z: torch.Tensor, params: torch.Tensor,
                    params_present: torch.Tensor) -> torch.Tensor:
    """Mean of `relu(z(Teq at A_max) - z_pred)` over samples with physical params present."""
    teff, radius = params[:, _TEFF], params[:, _ST_RAD]
    a, ecc = params[:, _A], params[:, _ECC]
    usable = params_present & (teff > 0) & (radius > 0) & (a > 0) & (ecc >= 0) & (ecc < 1)
    safe = [torch.where(usable, value, fallback) for value, fallback in
            ((teff, 5772.0), (radius, 1.0), (a, 1.0), (ecc, 0.0))]
    # `safe` holds only valid values, so the physics' range checks (host syncs) are skipped.
    t_eq = equilibrium_temperature(safe[0], safe[1], safe[2], albedo=PHYSICS_MAX_ALBEDO,
                                   eccentricity=safe[3], check=False)
    hinge = F.relu(normalise_temperature(t_eq) - surface_temperature_z)
    return _masked_mean(hinge, usable)


def supervised_terms(output, batch) -> dict[str, torch.Tensor]:
    """The four target losses, each a mean over the samples that know that target."""
    labelled = batch.has_targets.bool()
    known = {name: labelled & target_known(name, getattr(batch, name)) for name in
             SUPERVISED_TERMS}
    habitable = torch.where(known["habitable"], batch.habitable, 0).float()
    biosignature = torch.where(known["biosignature"], batch.biosignature, 0).float()
    klass = torch.where(known["habitability_class"], batch.habitability_class, 0)
    temperature = torch.where(known["surface_temperature"], batch.surface_temperature.float(),
                              288.0)
    per_sample = {
        "habitable": F.binary_cross_entropy_with_logits(
            output.habitable_logit.float(), habitable, reduction="none"),
        "habitability_class": F.cross_entropy(
            output.habitability_class_logits.float(), klass, reduction="none"),
        "surface_temperature": (output.surface_temperature_z.float()
                                - normalise_temperature(temperature)).square(),
        "biosignature": F.binary_cross_entropy_with_logits(
            output.biosignature_logit.float(), biosignature, reduction="none"),
    }
    return {name: _masked_mean(value, known[name]) for name, value in per_sample.items()}


def compute_losses(output, batch, loss_config: LossConfig, step: int,
                   uncertainty: UncertaintyWeighting | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total, terms): `output` a `SystemOutput`, `batch` its `MultiModalBatch`.

    `terms` holds every named term unweighted and detached, plus `kl_weight` and `total`.
    Pass `uncertainty` when `loss_config.uncertainty_weighting` is set.
    """
    if loss_config.uncertainty_weighting and uncertainty is None:
        raise ValueError("compute_losses: loss.uncertainty_weighting is set; pass the "
                         "UncertaintyWeighting module (and give its parameters to the optimizer)")
    terms = supervised_terms(output, batch)
    terms["lm"] = output.lm_loss
    terms["vae_reconstruction"] = output.vae_reconstruction
    terms["physics"] = physics_penalty(output.surface_temperature_z, batch.params.float(),
                                       batch.present[:, _PARAMS].bool())
    weighted = {name: getattr(loss_config, name) * terms[name]
                for name in WEIGHTED_TERMS}
    beta = kl_weight(loss_config, step)
    if loss_config.uncertainty_weighting:
        total = uncertainty(weighted)
    else:
        total = torch.stack(list(weighted.values())).sum()
    total = total + beta * output.vae_kl
    logged = {name: value.detach() for name, value in terms.items()}
    logged["vae_kl"] = output.vae_kl.detach()
    logged["kl_weight"] = torch.tensor(beta)
    logged["total"] = total.detach()
    return total, logged
