"""Learning-rate schedules, stepped once per optimiser step (skipped steps included).

``onecycle`` is what the paper's implementation uses (paper.md section 5): PyTorch's
``OneCycleLR`` with cosine annealing, a warm-up over ``warmup_fraction`` of the steps from
``lr / div_factor`` up to ``lr``, then down to ``lr / div_factor / final_div_factor``.
``warmup_cosine`` is the nanoGPT form with the same three levels: a *linear* warm-up from
``lr / div_factor`` to ``lr``, then a cosine decay to the same final value. ``constant`` keeps
``lr``. AdamW's betas stay constant (``cycle_momentum`` off by default: the paper does not say
whether its one-cycle cycled beta1, which is PyTorch's default).

The warm-up + cosine family has one cosine (``cosine_factor``) and two faces: step-based
(``warmup_cosine_factor``: the pretraining ``warmup_cosine`` kind, and ``cosine_lambda`` for a
plain decay over a fixed number of steps) and time-budgeted (``budget_learning_rate``: warm-up
over steps, cosine over a wall-time budget counted over resumes, for the head trainers).
"""

import math
from typing import Callable, Mapping

import torch

SCHEDULES = ('onecycle', 'warmup_cosine', 'constant')


def cosine_factor(progress: float, final: float) -> float:
    """Return the cosine multiplier ``1 -> final`` at ``progress`` in [0, 1] (clamped above)."""
    progress = min(1.0, progress)
    return final + 0.5 * (1.0 - final) * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, start: float,
                         final: float) -> float:
    """Return the lr multiplier at ``step``: linear ``start -> 1``, then cosine ``1 -> final``.

    Args:
        step: Optimiser step, 0-based.
        total_steps: Steps of the run.
        warmup_steps: Steps of the linear warm-up.
        start: Multiplier at step 0.
        final: Multiplier at the last step.
    """
    if step < warmup_steps:
        return start + (1.0 - start) * step / warmup_steps
    decay = max(1, total_steps - 1 - warmup_steps)
    return cosine_factor((step - warmup_steps) / decay, final)


def cosine_lambda(total_steps: int) -> Callable[[int], float]:
    """Return a ``LambdaLR`` multiplier: cosine ``1 -> 0`` over ``total_steps`` (no warm-up).

    The closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)``.
    """
    return lambda step: cosine_factor(step / max(1, total_steps), 0.0)


def budget_learning_rate(sched: Mapping, step: int, elapsed_s: float) -> float:
    """Return the time-budgeted rate: warm-up over steps, then cosine over the wall-time budget.

    Args:
        sched: ``lr`` (peak), ``warmup_steps``, ``minutes`` (the budget) and
            ``final_lr_fraction`` (the multiplier the cosine ends at).
        step: Optimiser step, 0-based.
        elapsed_s: Training wall time so far (over resumes).
    """
    warm = min(1.0, (step + 1) / max(1, sched['warmup_steps']))
    cosine = cosine_factor(elapsed_s / (60.0 * sched['minutes']), sched['final_lr_fraction'])
    return sched['lr'] * warm * cosine


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping,
                    total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Create the schedule of the ``optim.schedule`` config section.

    Args:
        optimizer: The optimiser; its ``lr`` is the peak learning rate.
        cfg: ``kind`` (one of ``SCHEDULES``), ``warmup_fraction``, ``div_factor``,
            ``final_div_factor``, ``cycle_momentum``.
        total_steps: Optimiser steps of the whole run.

    Returns:
        A scheduler whose ``state_dict`` holds only tensors and python scalars.

    Raises:
        ValueError: Unknown kind or bad parameters.
    """
    kind = cfg['kind']
    if kind not in SCHEDULES:
        raise ValueError(f'optim.schedule.kind must be one of {SCHEDULES}, got {kind!r}')
    if total_steps < 2 or not 0.0 <= cfg['warmup_fraction'] < 1.0:
        raise ValueError(f'need total_steps >= 2 and 0 <= warmup_fraction < 1, got '
                         f'{total_steps}, {cfg["warmup_fraction"]}')
    peak = optimizer.param_groups[0]['lr']
    if kind == 'onecycle':
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peak, total_steps=total_steps,
            # OneCycleLR's phases end at pct_start * total_steps - 1 and total_steps - 1 and it
            # divides by their lengths: 1.5 steps keeps both non-zero for runs of 2 steps on.
            pct_start=max(cfg['warmup_fraction'], 1.5 / total_steps),
            div_factor=cfg['div_factor'], final_div_factor=cfg['final_div_factor'],
            anneal_strategy='cos', cycle_momentum=bool(cfg['cycle_momentum']))
    if kind == 'constant':
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    start = 1.0 / cfg['div_factor']
    final = start / cfg['final_div_factor']
    warmup = int(round(cfg['warmup_fraction'] * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup, start, final))
