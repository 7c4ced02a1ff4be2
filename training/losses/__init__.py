"""Losses of Vanishing Depth pretraining.

``MultiScaleSILogLoss()(depths, target, removed) -> SILogOutput | None`` (raises
``NonFiniteLossError`` on NaN/Inf); ``silog_per_sample`` is the single-level building block.
"""

from training.losses.scale_invariant import (  # noqa: F401
    MultiScaleSILogLoss, NonFiniteLossError, silog_per_sample, SILogOutput)
