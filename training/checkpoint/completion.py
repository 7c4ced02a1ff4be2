"""Completion-head checkpoints (``vd_ros.completion/1``): the writer and the checked readers.

A checkpoint holds ``format``, ``step``, the head's weights (``head``) and config
(``head_config``), the validation rows (``val_history``) and which pretraining checkpoint the
frozen model came from (``encoder``: ``checkpoint`` path, ``step``, ``model_config``). One
that ``training/train_completion.py`` or ``training/adapt.py`` writes to resume from adds
``optimizer``, ``progress``, ``config`` and (``CheckpointManager``) ``best_metric``; one
recovered from a model file adds ``recovered_from``. The head only fits that model: loading it
for export or evaluation checks the model config and the pretraining step.

``training/adapt.py`` also keeps the best head so far in ``best_head.pt`` (``step``, ``ratio``,
``row``, ``head``; no ``format`` key, as ever): :func:`best_head_state`, :func:`read_best_head`.
"""

import copy
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from torch import nn

from training.checkpoint.files import load_checkpoint
from training.checkpoint.formats import (CheckpointFormatError, COMPLETION, COMPLETION_FORMAT,
                                         describe, load_checked)
from training.checkpoint.model import config_differences
from training.data.shared_paths import report_path
from training.models import VanishingDepth
from training.models.completion_head import build_completion_head, CompletionHead


def completion_state(head: CompletionHead, step: int, encoder: Dict[str, Any],
                     val_history: Sequence[Dict[str, float]] = (),
                     **fields: Any) -> Dict[str, Any]:
    """Return the dict of a completion-head checkpoint (to ``torch.save``).

    Args:
        head: The head (its state dict and ``config`` are stored).
        step: Optimiser steps behind its weights.
        encoder: The pretraining checkpoint it trained on (``checkpoint``, ``step``,
            ``model_config``).
        val_history: Validation rows with their step.
        **fields: ``optimizer``, ``progress`` and ``config`` of a resumable checkpoint, or
            ``recovered_from`` (module docstring).
    """
    return {'format': COMPLETION_FORMAT, 'step': int(step), 'head': head.state_dict(),
            'head_config': dict(head.config), 'val_history': list(val_history),
            'encoder': encoder, **fields}


def read_head_state(path: str, encoder: Dict[str, Any],
                    same_step: bool = True) -> Dict[str, Any]:
    """Load a completion checkpoint, made on this run's pretraining step if ``same_step``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointFormatError: Not a completion checkpoint.
        ValueError: (``same_step``) One trained on another pretraining step.
    """
    state = load_checked(path, COMPLETION)
    if same_step and state['encoder']['step'] != encoder['step']:
        raise ValueError(f'{path} trained the head on pretraining step '
                         f'{state["encoder"]["step"]}, this run uses step {encoder["step"]}; '
                         'use a new completion.out_dir')
    return state


def load_completion_head(path: str, model: VanishingDepth,
                         encoder_step: Optional[int]) -> Tuple[CompletionHead, Dict[str, Any]]:
    """Load a trained completion head for ``model``.

    Args:
        path: A checkpoint of ``training/train_completion.py``.
        model: The (frozen) model the head was trained on.
        encoder_step: Step of the pretraining checkpoint loaded into ``model`` (None: random
            init); it must be the one the head was trained on.

    Returns:
        ``(head in eval mode, info)``: info has ``path``, ``step``, ``head_config``,
        ``init_from`` (the head checkpoint a warm start began with, or None), ``encoder``
        (the pretraining checkpoint's path and step) and ``val`` (the last validation row).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointFormatError: Not a completion checkpoint.
        ValueError: Trained on a model of another config or another pretraining step.
    """
    state = load_checked(path, COMPLETION)
    differences = config_differences(model.config, state['encoder']['model_config'])
    if differences:
        raise ValueError(f'{path}: the head was trained on another model: '
                         + '; '.join(differences))
    if state['encoder']['step'] != encoder_step:
        raise ValueError(f'{path}: the head was trained on pretraining step '
                         f'{state["encoder"]["step"]} ({state["encoder"]["checkpoint"]}), the '
                         f'model is at step {encoder_step}')
    head = build_completion_head(model, state['head_config'])
    head.load_state_dict(state['head'])
    info = {'path': report_path(path), 'step': int(state['step']),
            'head_config': dict(state['head_config']),
            'init_from': ((state.get('config') or {}).get('completion') or {}).get('init_from'),
            'encoder': {key: state['encoder'][key] for key in ('checkpoint', 'step')},
            'val': (state.get('val_history') or [None])[-1]}
    return head.eval(), info


BEST_HEAD_KEYS = ('step', 'ratio', 'row', 'head')


def best_head_state(step: int, ratio: float, row: Dict[str, float],
                    head: nn.Module) -> Dict[str, Any]:
    """Return the dict of an adaptation's best head so far (``best_head.pt``).

    Args:
        step: Optimiser step of the head.
        ratio: Its mean RMSE ratio to the input model on the held-back part.
        row: Its validation row.
        head: The head (a copy of its state dict is stored).
    """
    return {'step': step, 'ratio': ratio, 'row': row,
            'head': copy.deepcopy(head.state_dict())}


def read_best_head(path: str) -> Optional[Dict[str, Any]]:
    """Load the ``best_head.pt`` of an earlier invocation, or return None where there is none.

    Raises:
        CheckpointFormatError: The file lacks one of ``BEST_HEAD_KEYS``.
    """
    if not os.path.isfile(path):
        return None
    state = load_checkpoint(path)
    if isinstance(state, Mapping) and all(key in state for key in BEST_HEAD_KEYS):
        return state
    raise CheckpointFormatError(f'{path}: not an adaptation best-head file (keys '
                                f'{", ".join(BEST_HEAD_KEYS)}): found {describe(state)}; write '
                                'one with training/adapt.py')
