"""Laplace negative log-likelihood of the log depth error, with a predicted scale.

Per pixel, with e = log pred - log target and s = log b the predicted log scale::

    NLL = |e| / b + log(2 b) = |e| * exp(-s) + s + log 2

It is minimal at b = |e|, so b learns the expected absolute log error: a per-pixel uncertainty
that a planner can threshold. The depth itself can be held out of this loss (``detach_depth``)
so that the likelihood trains only the scale and never trades depth accuracy for a lower NLL
where the scale is large.
"""

import math

import torch

_MIN_DEPTH_M = 1e-3


def laplace_nll(pred: torch.Tensor, log_scale: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor, detach_depth: bool = True) -> torch.Tensor:
    """Mean Laplace NLL of log depth over ``mask`` (NaN when the mask is empty).

    Args:
        pred: (B, 1, H, W) predicted depth, metres.
        log_scale: (B, 1, H, W) predicted log Laplace scale of the log depth error.
        target: (B, 1, H, W) true depth, metres.
        mask: (B, 1, H, W) bool, the pixels that count.
        detach_depth: The gradient reaches only ``log_scale``.

    Returns:
        The scalar loss.
    """
    log_pred = torch.log(pred.clamp_min(_MIN_DEPTH_M))
    if detach_depth:
        log_pred = log_pred.detach()
    error = (log_pred - torch.log(target.clamp_min(_MIN_DEPTH_M))).abs()  # (B, 1, H, W)
    nll = error * torch.exp(-log_scale) + log_scale + math.log(2.0)
    return nll[mask].mean()
