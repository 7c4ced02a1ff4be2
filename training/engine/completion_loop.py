"""The completion-head training loop: resume, one guarded step, the budgeted loop.

Shared by ``training.train_completion`` (the pretraining data) and ``training.adapt`` (a
robot's recording). Only the head trains; the Vanishing Depth model stays frozen. The learning
rate warms up, then follows a cosine over the wall-time budget (counted over resumes). A
non-finite loss or gradient skips the step; too many in a row write a checkpoint and raise
``TrainingDiverged``. Checkpoints are atomic (``training.checkpoint.files``) and of the
completion-head format (``training.checkpoint.completion``).
"""

from dataclasses import dataclass
import logging
import math
import time
from typing import Any, Callable, Dict, Iterable, Optional

import numpy as np
import torch

from training.checkpoint.completion import completion_state, read_head_state
from training.checkpoint.files import CheckpointManager
from training.engine.completion_batch import (
    complete_with_scale, CompletionBatch, log_l1_loss, stream_batch)
from training.engine.completion_val import format_val, validate, ValSet
from training.engine.divergence import NonFiniteGuard
from training.engine.progress import finite_mean, Progress, progress_bar
from training.engine.schedule import budget_learning_rate
from training.losses.laplace_nll import laplace_nll
from training.models import VanishingDepth
from training.models.completion_head import CompletionHead

_logger = logging.getLogger(__name__)


def checkpoint_state(head: CompletionHead, optimizer: torch.optim.Optimizer, progress: Progress,
                     cfg: Dict[str, Any], encoder: Dict[str, Any]) -> Dict[str, Any]:
    """Assemble the checkpoint dict (``training.checkpoint.completion`` reads it)."""
    return completion_state(
        head, progress.step, encoder, progress.val_history, optimizer=optimizer.state_dict(),
        progress=progress.state(), config=cfg)


def resume(path: Optional[str], head: CompletionHead, optimizer: torch.optim.Optimizer,
           encoder: Dict[str, Any], init_from: Optional[str] = None) -> Progress:
    """Restore head, optimiser and progress from ``path``, else start a fresh ``Progress``.

    A fresh run takes the head weights of ``init_from`` (a warm start: new optimiser,
    schedule and step count) when it is given; that head may come from another pretraining
    step of the same architecture (a head carried over to a further-pretrained encoder).

    Raises:
        ValueError: Not a completion checkpoint, or a resume from one trained on another
            pretraining step.
    """
    if not path:
        if init_from:
            state = read_head_state(init_from, encoder, same_step=False)
            fresh = head.load_depth_weights(state['head'])
            if fresh:
                _logger.info('warm start: %s start at their initial values', fresh)
            _logger.info('warm start: head weights of %s (trained on pretraining step %s, '
                         'this run uses step %s), fresh optimiser and schedule', init_from,
                         state['encoder']['step'], encoder['step'])
        return Progress()
    state = read_head_state(path, encoder)
    head.load_state_dict(state['head'])
    optimizer.load_state_dict(state['optimizer'])
    progress = Progress.from_state(state['progress'], state['val_history'])
    _logger.info('resumed %s at step %d (%.1f min trained)', path, progress.step,
                 progress.elapsed_s / 60.0)
    return progress


def train_step(model, head, optimizer, batch: CompletionBatch, ccfg, guard: NonFiniteGuard,
               step: int, inject_nan: bool) -> float:
    """One optimiser step; returns the loss (NaN when skipped as non-finite).

    The loss is the L1 of log depth, plus ``nll_weight`` times the Laplace NLL of the
    uncertainty branch where the head has one (the NLL trains only the scale).
    """
    completed, _, log_scale = complete_with_scale(model, head, batch)
    loss = log_l1_loss(completed, batch.target, batch.held_out)
    if log_scale is not None:
        loss = loss + ccfg['nll_weight'] * laplace_nll(completed, log_scale, batch.target,
                                                       batch.held_out)
    if inject_nan:
        loss = loss * math.nan
    optimizer.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(loss))
    if finite:
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(head.parameters(), ccfg['grad_clip'])
        finite = bool(torch.isfinite(norm))
    if not guard.record(finite, step):
        optimizer.zero_grad(set_to_none=True)
        return math.nan
    optimizer.step()
    return loss.item()


@dataclass
class HeadRun:
    """Everything one completion-head run trains with.

    Attributes:
        model: The frozen Vanishing Depth model.
        head: The head being trained.
        optimizer: Its optimiser.
        manager: Where checkpoints go.
        cfg: The whole resolved config (``completion`` section, ``train``, ``debug``).
        encoder: What the head trains on (``checkpoint``, ``step``, ``model_config``), saved
            in every checkpoint.
        progress: Where the run stands.
        device: Where the batches go.
    """

    model: VanishingDepth
    head: CompletionHead
    optimizer: torch.optim.Optimizer
    manager: CheckpointManager
    cfg: Dict[str, Any]
    encoder: Dict[str, Any]
    progress: Progress
    device: torch.device

    def save(self) -> None:
        """Write a checkpoint of the current step."""
        self.manager.save(checkpoint_state(self.head, self.optimizer, self.progress, self.cfg,
                                           self.encoder), self.progress.step)


def next_batch(run: HeadRun, sample: Dict[str, Any]) -> Optional[CompletionBatch]:
    """Draw each frame's input pattern from the stream position and build the batch."""
    ccfg = run.cfg['completion']
    first = run.progress.consumed
    run.progress.consumed += ccfg['batch_size']
    return stream_batch(sample, ccfg, first, run.model, run.device)


def fit_head(run: HeadRun, batches: Iterable[Dict[str, Any]], val: ValSet, desc: str,
             on_validation: Optional[Callable[[Dict[str, float]], None]] = None) -> Progress:
    """Train until the time budget (or ``max_steps``) is spent; returns the progress.

    Args:
        run: The run (resumed or fresh).
        batches: Collated samples (``rgb``, ``depth``, ``valid``), as many as needed.
        val: Fixed validation inputs, scored every ``val_every_steps`` steps and at the end.
        desc: Progress bar label.
        on_validation: Called with each validation row (after it is logged).

    Raises:
        TrainingDiverged: Too many non-finite steps in a row (a checkpoint is written first).
    """
    ccfg, progress = run.cfg['completion'], run.progress
    budget_s = 60.0 * ccfg['minutes']
    bar = progress_bar(total=int(budget_s), initial=int(progress.elapsed_s), unit='s', desc=desc)
    inject = set(run.cfg['debug']['inject_nan_steps'])
    guard = NonFiniteGuard(run.cfg['train']['max_consecutive_nonfinite'], progress.counters)
    batches, losses, postfix = iter(batches), [], {}
    while progress.elapsed_s < budget_s and (
            ccfg['max_steps'] is None or progress.step < ccfg['max_steps']):
        started = time.perf_counter()
        batch = next_batch(run, next(batches))
        for group in run.optimizer.param_groups:
            group['lr'] = budget_learning_rate(ccfg, progress.step, progress.elapsed_s)
        losses.append(math.nan if batch is None else train_step(
            run.model, run.head, run.optimizer, batch, ccfg, guard, progress.step,
            progress.step in inject))
        progress.step += 1
        seconds = time.perf_counter() - started
        progress.elapsed_s += seconds
        started = time.perf_counter()
        if guard.diverged:
            run.save()
            raise guard.error(progress.step - 1)
        done = progress.elapsed_s >= budget_s or progress.step == ccfg['max_steps']
        if progress.step % ccfg['log_every_steps'] == 0 or done:
            mean = finite_mean(losses[-ccfg['log_every_steps']:])
            _logger.info('step %d: loss %.4f, lr %.2e, %.2f s/step, %.1f/%.1f min',
                         progress.step, mean, run.optimizer.param_groups[0]['lr'], seconds,
                         progress.elapsed_s / 60.0, ccfg['minutes'])
            postfix['loss'] = f'{mean:.4f}'
            bar.set_postfix(postfix)
        if val.batches and (progress.step % ccfg['val_every_steps'] == 0 or done):
            row = validate(run.model, run.head, val)
            heads = [value for key, value in row.items() if key.endswith(' head')]
            postfix['val_mm'] = f'{np.mean(heads):.1f}'  # mean head RMSE over the patterns
            bar.set_postfix(postfix)
            progress.val_history.append({'step': progress.step, **row})
            _logger.info('step %d %s', progress.step, format_val(row))
            if on_validation is not None:
                on_validation(row)
        if progress.step % ccfg['checkpoint_every_steps'] == 0 or done:
            run.save()
        progress.elapsed_s += time.perf_counter() - started  # validation and checkpoint
        bar.update(int(progress.elapsed_s) - bar.n)
    bar.close()
    _logger.info('done at step %d (%.1f min); checkpoint %s', progress.step,
                 progress.elapsed_s / 60.0, run.manager.latest())
    return progress
