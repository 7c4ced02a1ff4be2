"""Multi-scale balanced scale-invariant log loss against hand-computed values."""

import math

import pytest
import torch

from training.data.masking import multiscale
from training.losses import MultiScaleSILogLoss, NonFiniteLossError, silog_per_sample


def _pyramid(depth):
    """Predictions at the four levels (B, 1, h, w) from a (B, H, W) map."""
    return [level[:, None] for level in multiscale(depth, 4)]


def _scene(batch=2, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = 0.5 + 4.0 * torch.rand((batch, size, size), generator=generator)
    removed = torch.rand((batch, size, size), generator=generator) < 0.4
    return target, removed


def test_zero_for_exact_prediction_and_hand_value_for_scaled():
    target, removed = _scene()
    loss = MultiScaleSILogLoss()
    assert loss(_pyramid(target), target, removed).loss.item() == pytest.approx(0.0, abs=1e-3)
    # pred = c * gt: g = log c everywhere -> alpha * sqrt((1 - lambda) * log(c)^2)
    scaled = loss(_pyramid(2.0 * target), target, removed).loss.item()
    assert scaled == pytest.approx(10.0 * math.sqrt(0.15) * math.log(2.0), rel=1e-4)
    # with lambda = 1 the loss is fully scale invariant
    invariant = MultiScaleSILogLoss(lam=1.0)(_pyramid(2.0 * target), target, removed)
    assert invariant.loss.item() == pytest.approx(0.0, abs=1e-3)


def test_positive_for_wrong_structure_and_single_level_hand_value():
    pred = torch.tensor([[[1.0, 2.0], [4.0, 1.0]]])
    target = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])
    select = torch.ones_like(target, dtype=torch.bool)
    value, has = silog_per_sample(pred, target, select)
    g = [0.0, math.log(2), math.log(4), 0.0]
    expected = 10 * math.sqrt(sum(x * x for x in g) / 4 - 0.85 * (sum(g) / 4) ** 2)
    assert has.tolist() == [True] and value.item() == pytest.approx(expected, rel=1e-5)
    target4, removed = _scene()
    noisy = target4 * torch.exp(0.2 * torch.randn(target4.shape))
    assert MultiScaleSILogLoss()(_pyramid(noisy), target4, removed).loss.item() > 0.5


def test_invalid_pixels_are_ignored():
    target, removed = _scene()
    pred = target.clone()
    target[:, ::3, ::3] = 0.0  # invalid target: the prediction there must not matter
    pred[:, ::3, ::3] = 123.0
    pred[:, 1, :] = 0.0  # prediction below 1 mm: excluded as well
    out = MultiScaleSILogLoss()(_pyramid(pred), target, removed)
    assert out.loss.item() == pytest.approx(0.0, abs=1e-3)


def test_balanced_halves_and_single_set():
    target, _ = _scene(batch=1, size=8)
    removed = torch.zeros_like(target, dtype=torch.bool)
    removed[:, :, :4] = True
    pred = target.clone()
    pred[:, :, :4] *= torch.linspace(1.0, 3.0, 4)  # error only in the removed half
    pred_levels = [pred[:, None]] * 1
    both = MultiScaleSILogLoss()(pred_levels, target, removed)
    removed_only = silog_per_sample(pred, target, removed)[0].item()
    assert both.loss.item() == pytest.approx(0.5 * removed_only, rel=1e-5)
    assert both.kept.item() == pytest.approx(0.0, abs=1e-3)
    # no kept pixels: the removed term alone, with full weight
    everything = torch.ones_like(removed)
    alone = MultiScaleSILogLoss()(pred_levels, target, everything).loss.item()
    assert alone == pytest.approx(silog_per_sample(pred, target, everything)[0].item(),
                                  rel=1e-5)


def test_none_without_valid_pixels_and_error_on_non_finite():
    target, removed = _scene()
    assert MultiScaleSILogLoss()(_pyramid(target), torch.zeros_like(target), removed) is None
    pred = _pyramid(target)
    pred[0] = pred[0].clone()
    pred[0][0, 0, 0, 0] = math.inf
    with pytest.raises(NonFiniteLossError, match='inf|nan'):
        MultiScaleSILogLoss()(pred, target, removed)


def test_gradient_is_finite_at_a_perfect_prediction():
    target, removed = _scene()
    pred = [p.clone().requires_grad_(True) for p in _pyramid(target)]
    MultiScaleSILogLoss()(pred, target, removed).loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in pred)


def test_nan_predictions_raise_instead_of_leaving_the_pixel_sets():
    # NaN >= 1 mm is False, so NaN pixels must not be silently dropped as "invalid".
    target, removed = _scene()
    sample_nan = _pyramid(target.clone())
    sample_nan[0] = sample_nan[0].clone()
    sample_nan[0][1] = math.nan  # one whole sample: the other alone would give a finite loss
    with pytest.raises(NonFiniteLossError, match='nan'):
        MultiScaleSILogLoss()(sample_nan, target, removed)
    all_nan = [torch.full_like(p, math.nan) for p in _pyramid(target)]
    with pytest.raises(NonFiniteLossError, match='nan'):  # not None (an "empty" batch)
        MultiScaleSILogLoss()(all_nan, target, removed)
