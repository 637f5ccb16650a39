"""astrobio.train.losses against hand-computed values on tiny inputs."""

import math
from types import SimpleNamespace

import pytest
import torch

from astrobio.config import LossConfig
from astrobio.train.losses import (
    PHYSICS_MAX_ALBEDO,
    WEIGHTED_TERMS,
    UncertaintyWeighting,
    compute_losses,
    kl_weight,
    physics_penalty,
)

SUN_TEQ_ZERO_ALBEDO = 5772.0 * math.sqrt(6.957e8 / (2 * 1.495978707e11))  # 278.3 K at 1 AU


def z_of(kelvin):
    return (math.log(kelvin) - math.log(280.0)) / 0.5


def tiny_case():
    """Two planets, only the first labelled; params of the Sun-Earth system for both."""
    earth = [5772.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    batch = SimpleNamespace(
        habitable=torch.tensor([1, -1]),
        habitability_class=torch.tensor([3, -1]),
        surface_temperature=torch.tensor([280.0 * math.e**0.5, 0.0]),
        biosignature=torch.tensor([0, -1]),
        has_targets=torch.tensor([True, False]),
        params=torch.tensor([earth, earth]),
        present=torch.ones(2, 5, dtype=torch.bool),
    )
    output = SimpleNamespace(
        habitable_logit=torch.tensor([0.0, 5.0], requires_grad=True),
        habitability_class_logits=torch.tensor([[0.0, 0.0, 0.0, math.log(2.0), 0.0],
                                                [9.0, 0.0, 0.0, 0.0, 0.0]], requires_grad=True),
        surface_temperature_z=torch.tensor([0.0, z_of(150.0)], requires_grad=True),
        biosignature_logit=torch.tensor([math.log(3.0), -2.0], requires_grad=True),
        lm_loss=torch.tensor(2.5, requires_grad=True),
        vae_reconstruction=torch.tensor(0.7, requires_grad=True),
        vae_kl=torch.tensor(4.0, requires_grad=True),
    )
    return output, batch


def test_terms_match_hand_computation():
    output, batch = tiny_case()
    config = LossConfig(kl_warmup_steps=100, vae_kl_beta=0.01)
    total, terms = compute_losses(output, batch, config, step=25)
    # only planet 0 is labelled
    assert terms["habitable"].item() == pytest.approx(math.log(2.0))  # logit 0, label 1
    assert terms["habitability_class"].item() == pytest.approx(-math.log(2 / 6))
    assert terms["surface_temperature"].item() == pytest.approx(1.0)  # z_true = 1, z_pred = 0
    assert terms["biosignature"].item() == pytest.approx(math.log(4.0))  # -log(1 - 3/4)
    assert terms["lm"].item() == pytest.approx(2.5)
    assert terms["vae_reconstruction"].item() == pytest.approx(0.7)
    assert terms["vae_kl"].item() == pytest.approx(4.0)
    # physics: Teq(A=0.8) = 278.3 K * 0.2^(1/4) = 186.1 K; planet 0 predicts 280 K (no
    # penalty), planet 1 (unlabelled, still counted) predicts 150 K
    t_eq = SUN_TEQ_ZERO_ALBEDO * (1 - PHYSICS_MAX_ALBEDO) ** 0.25
    assert terms["physics"].item() == pytest.approx(0.5 * (z_of(t_eq) - z_of(150.0)), rel=1e-4)
    assert terms["kl_weight"].item() == pytest.approx(0.0025)
    expected = sum(getattr(config, name) * terms[name].item() for name in WEIGHTED_TERMS)
    expected += 0.0025 * 4.0
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert terms["total"].item() == pytest.approx(expected, rel=1e-6)
    total.backward()
    # unlabelled planet 1 gets gradient only from physics (its temperature), none from labels
    assert output.habitable_logit.grad[1] == 0 and output.biosignature_logit.grad[1] == 0
    assert (output.habitability_class_logits.grad[1] == 0).all()
    assert output.surface_temperature_z.grad[1] < 0


def test_no_labelled_sample_gives_zero_supervised_terms():
    output, batch = tiny_case()
    batch.has_targets[:] = False
    total, terms = compute_losses(output, batch, LossConfig(), step=0)
    for name in ("habitable", "habitability_class", "surface_temperature", "biosignature"):
        assert terms[name] == 0
    total.backward()
    assert output.lm_loss.grad == LossConfig().lm


def test_physics_penalty_ignores_absent_and_unphysical_params():
    z_pred = torch.tensor([z_of(100.0)] * 3)
    params = torch.tensor([[5772.0, 1, 1, 1, 1, 1, 1, 0, 1],
                           [0.0, 0, 0, 0, 0, 0, 0, 0, 0],
                           [5772.0, 1, 1, 1, 1, 1, -1.0, 0, 1]])
    present = torch.tensor([False, True, True])
    assert physics_penalty(z_pred, params, present) == 0
    present[0] = True
    t_eq = SUN_TEQ_ZERO_ALBEDO * (1 - PHYSICS_MAX_ALBEDO) ** 0.25
    assert physics_penalty(z_pred, params, present).item() == pytest.approx(
        z_of(t_eq) - z_of(100.0), rel=1e-4)


def test_kl_warmup_schedule():
    config = LossConfig(vae_kl_beta=1e-3, kl_warmup_steps=200)
    assert [kl_weight(config, s) for s in (0, 50, 200, 1000)] == pytest.approx(
        [0.0, 2.5e-4, 1e-3, 1e-3])
    assert kl_weight(LossConfig(vae_kl_beta=0.2, kl_warmup_steps=0), 0) == 0.2


def test_uncertainty_weighting_formula():
    weighting = UncertaintyWeighting(("a", "b"))
    with torch.no_grad():
        weighting.log_variance.copy_(torch.tensor([0.5, -1.0]))
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    value = weighting(losses)
    expected = math.exp(-0.5) * 2.0 + 0.5 + math.exp(1.0) * 3.0 - 1.0
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    # dL/ds_i = 1 - exp(-s_i) L_i
    assert weighting.log_variance.grad.tolist() == pytest.approx(
        [1 - math.exp(-0.5) * 2.0, 1 - math.exp(1.0) * 3.0], rel=1e-6)


def test_compute_losses_with_uncertainty_weighting():
    output, batch = tiny_case()
    config = LossConfig(uncertainty_weighting=True, kl_warmup_steps=0, vae_kl_beta=0.5)
    with pytest.raises(ValueError, match="UncertaintyWeighting"):
        compute_losses(output, batch, config, step=0)
    weighting = UncertaintyWeighting()
    with torch.no_grad():
        weighting.log_variance.fill_(math.log(2.0))
    total, terms = compute_losses(output, batch, config, step=0, uncertainty=weighting)
    expected = sum(0.5 * getattr(config, n) * terms[n].item() + math.log(2.0)
                   for n in WEIGHTED_TERMS) + 0.5 * 4.0
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_the_loss_reads_no_tensor_values():
    """No host sync per step on a GPU: the loss runs on fake tensors, which have no values to
    read (a `bool()`, `float()` or `.item()` of one raises). The eager physics functions do
    check their inputs, so they would fail here with unphysical parameters."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    output, batch = tiny_case()
    batch.params[1, 0] = -5.0  # an unphysical Teff: masked, never checked by reading it
    with FakeTensorMode() as mode:
        fake = lambda ns: SimpleNamespace(**{k: mode.from_tensor(v) for k, v in vars(ns).items()})
        total, terms = compute_losses(fake(output), fake(batch), LossConfig(), step=3)
        total.backward()
    assert total.shape == () and set(terms) >= set(WEIGHTED_TERMS)


def test_partial_labels_mask_each_target_on_its_own():
    """Planet 0 knows only `habitable`, planet 1 only its temperature: each term is the mean
    over the planets that know it, and no term reaches a planet that does not."""
    output, batch = tiny_case()
    batch.habitable = torch.tensor([1, -1])
    batch.habitability_class = torch.tensor([-1, -1])
    batch.surface_temperature = torch.tensor([0.0, 280.0 * math.e])  # z_true = 2 for planet 1
    batch.biosignature = torch.tensor([-1, -1])
    batch.has_targets = torch.tensor([True, True])
    total, terms = compute_losses(output, batch, LossConfig(), step=0)
    assert terms["habitable"].item() == pytest.approx(math.log(2.0))  # planet 0: logit 0
    assert terms["surface_temperature"].item() == pytest.approx((z_of(150.0) - 2.0) ** 2)
    assert terms["habitability_class"] == 0 and terms["biosignature"] == 0
    total.backward()
    assert output.habitable_logit.grad[1] == 0 and output.habitable_logit.grad[0] != 0
    assert (output.habitability_class_logits.grad == 0).all()
    assert (output.biosignature_logit.grad == 0).all()
