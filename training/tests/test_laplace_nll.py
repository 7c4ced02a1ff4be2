"""The Laplace NLL of log depth: its value by hand, its minimum, where its gradient goes."""

import math

import torch

from training.losses.laplace_nll import laplace_nll


def test_value_matches_the_formula_by_hand_over_the_mask_only():
    pred = torch.tensor([2.0, 1.0, 5.0]).view(1, 1, 1, 3)
    target = torch.tensor([1.0, 1.0, 1.0]).view(1, 1, 1, 3)
    log_scale = torch.tensor([math.log(0.5), math.log(0.1), 0.0]).view(1, 1, 1, 3)
    mask = torch.tensor([True, True, False]).view(1, 1, 1, 3)
    # Pixel 1: |log 2| / 0.5 + log(2 * 0.5); pixel 2: 0 / 0.1 + log(0.2); pixel 3 masked.
    expected = (math.log(2.0) / 0.5 + math.log(1.0) + math.log(0.2)) / 2
    assert math.isclose(float(laplace_nll(pred, log_scale, target, mask)), expected,
                        rel_tol=1e-6)


def test_minimum_is_at_the_absolute_log_error():
    error = 0.3
    pred = torch.full((1, 1, 1, 1), math.exp(error))
    target = torch.ones(1, 1, 1, 1)
    mask = torch.ones(1, 1, 1, 1, dtype=torch.bool)
    values = {b: float(laplace_nll(pred, torch.full_like(pred, math.log(b)), target, mask))
              for b in (0.1, 0.2, 0.3, 0.45, 0.9)}
    assert min(values, key=values.get) == 0.3


def test_gradient_reaches_the_depth_only_when_asked():
    pred = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    log_scale = torch.zeros(1, 1, 2, 2, requires_grad=True)
    target = torch.ones(1, 1, 2, 2)
    mask = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    laplace_nll(pred, log_scale, target, mask).backward()
    assert pred.grad is None and float(log_scale.grad.abs().sum()) > 0
    laplace_nll(pred, log_scale, target, mask, detach_depth=False).backward()
    assert float(pred.grad.abs().sum()) > 0
