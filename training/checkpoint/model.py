"""Load a Vanishing Depth checkpoint into a model built from a config, refusing any mismatch.

A checkpoint is a ``torch.save`` file holding either a bare state dict or a dict with the state
dict under ``model`` and the resolved model config under ``model_config`` (a pretraining
checkpoint, ``training.checkpoint.pretrain``) or under ``config['model']``. A file of another
vd_ros format (a completion head, a heads file) is refused with the format error of
``training.checkpoint.formats``. Before any weight is copied, the checkpoint's model config is
compared with the configured one (every key except ``pretrained`` and ``weights_path``, which
only choose initial weights) and its state dict keys and shapes with the model's; a mismatch
raises :class:`CheckpointMismatchError` naming the file and the offending keys. A silently
half-loaded or wrongly encoded model would export without error and produce garbage.
"""

import dataclasses
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from training.checkpoint.files import load_checkpoint
from training.checkpoint.formats import (check_format, CheckpointMismatchError,
                                         COMPLETION_FORMAT, HEADS_FORMAT, PRETRAIN)
from training.engine.config import to_plain
from training.models import build_model, resolve_model_config

_logger = logging.getLogger(__name__)

INIT_ONLY_KEYS = ('pretrained', 'weights_path', 'rgb_trainable')
MAX_LISTED = 12


@dataclasses.dataclass
class ModelCheckpoint:
    """The parts of a checkpoint file a model needs.

    Attributes:
        path: The file.
        state_dict: Model weights.
        model_config: Resolved model config stored with the weights, or None (bare state dict).
        step: Optimiser step of the checkpoint, or None.
        config: The whole training config stored with it (data sources...), or None.
    """

    path: str
    state_dict: Dict[str, Any]
    model_config: Optional[Dict[str, Any]] = None
    step: Optional[int] = None
    config: Optional[Dict[str, Any]] = None


def read_model_checkpoint(path: str) -> ModelCheckpoint:
    """Read a checkpoint file (``torch.load(weights_only=True)``).

    Args:
        path: Checkpoint file.

    Returns:
        Its weights, model config and step.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointMismatchError: The file holds no state dict.
        CheckpointFormatError: The file is of another vd_ros format.
    """
    state = load_checkpoint(path)
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(f'{path}: not a checkpoint dict (got {type(state)})')
    if state.get('format') in (COMPLETION_FORMAT, HEADS_FORMAT):
        check_format(state, path, PRETRAIN)
    weights = state.get('model', state)
    if not isinstance(weights, Mapping) or not weights:
        raise CheckpointMismatchError(f'{path}: no model state dict found (keys '
                                      f'{sorted(state)[:MAX_LISTED]})')
    config = state.get('model_config')
    if config is None and isinstance(state.get('config'), Mapping):
        config = state['config'].get('model')
    step = state.get('step')
    return ModelCheckpoint(path, dict(weights),
                           resolve_model_config(config) if config is not None else None,
                           int(step) if step is not None else None,
                           dict(state['config']) if isinstance(state.get('config'), Mapping)
                           else None)


def total_pretraining_steps(checkpoint: ModelCheckpoint) -> Tuple[int, List[str]]:
    """Return the optimiser steps behind a checkpoint, warm starts included, and their files.

    A run warm-started with ``train.init_from`` continues the steps of that checkpoint, which
    may itself be warm-started: the chain is followed while its files exist.

    Returns:
        ``(steps, chain)``: the step sum, and the files of the chain (this one first). A
        missing file ends the chain; its steps are then not counted (and its path is listed
        with ``' (missing)'``).
    """
    steps, chain, current = checkpoint.step or 0, [checkpoint.path], checkpoint
    while True:
        source = ((current.config or {}).get('train') or {}).get('init_from')
        if not source:
            return steps, chain
        if not os.path.isfile(source):
            return steps, chain + [f'{source} (missing)']
        current = read_model_checkpoint(source)
        steps += current.step or 0
        chain.append(source)


def config_differences(expected: Mapping, found: Mapping, prefix: str = 'model') -> List[str]:
    """List the keys whose values differ between two resolved model configs.

    Args:
        expected: The configured model config.
        found: The checkpoint's model config.
        prefix: Name of the section, for the messages.

    Returns:
        Lines ``'model.key: config X, checkpoint Y'``; init-only keys are skipped.
    """
    lines = []
    for key in sorted(set(expected) | set(found)):
        if prefix == 'model' and key in INIT_ONLY_KEYS:
            continue
        mine, theirs = expected.get(key), found.get(key)
        if isinstance(mine, Mapping) and isinstance(theirs, Mapping) and key != 'timm_kwargs':
            lines += config_differences(mine, theirs, f'{prefix}.{key}')
        elif to_plain(mine) != to_plain(theirs):
            lines.append(f'{prefix}.{key}: config {mine!r}, checkpoint {theirs!r}')
    return lines


def state_dict_differences(model: nn.Module, weights: Mapping) -> List[str]:
    """List missing, unexpected and shape-mismatched state dict keys.

    Args:
        model: The model built from the config.
        weights: The checkpoint's state dict.

    Returns:
        One line per problem kind, each naming up to ``MAX_LISTED`` keys.
    """
    own = model.state_dict()
    missing = [key for key in own if key not in weights]
    unexpected = [key for key in weights if key not in own]
    shapes = [f'{key} {tuple(weights[key].shape)} vs model {tuple(own[key].shape)}'
              for key in own if key in weights and hasattr(weights[key], 'shape')
              and tuple(weights[key].shape) != tuple(own[key].shape)]
    lines = []
    for label, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                        ('shape mismatches (checkpoint vs model)', shapes)):
        if keys:
            more = f' (+{len(keys) - MAX_LISTED} more)' if len(keys) > MAX_LISTED else ''
            lines.append(f'{len(keys)} {label}: {", ".join(keys[:MAX_LISTED])}{more}')
    return lines


def load_matching_checkpoint(model: nn.Module, checkpoint: ModelCheckpoint) -> None:
    """Copy a checkpoint's weights into ``model`` after checking config, keys and shapes.

    Args:
        model: A ``VanishingDepth`` built by ``build_model`` (``model.config`` is compared).
        checkpoint: From :func:`read_model_checkpoint`.

    Raises:
        CheckpointMismatchError: Naming the file and every differing config key, or the
            missing / unexpected / mis-shaped state dict keys.
    """
    if checkpoint.model_config is None:
        _logger.warning('%s holds a bare state dict: encoder name and PDE parameters cannot be '
                        'checked against the config, only keys and shapes', checkpoint.path)
    else:
        differences = config_differences(model.config, checkpoint.model_config)
        if differences:
            raise CheckpointMismatchError(
                f'{checkpoint.path} does not match the config: ' + '; '.join(differences)
                + '. Pass the config the checkpoint was trained with (--config / key=value).')
    differences = state_dict_differences(model, checkpoint.state_dict)
    if differences:
        raise CheckpointMismatchError(
            f'{checkpoint.path} does not fit the model built from the config '
            f'({model.config.get("encoder")}): ' + '; '.join(differences))
    model.load_state_dict(checkpoint.state_dict, strict=True)


def build_checked_model(model_cfg: Mapping, checkpoint_path: Optional[str] = None,
                        seed: int = 0) -> Tuple[nn.Module, Optional[ModelCheckpoint]]:
    """Build ``VanishingDepth`` from a config, seeded, and load a checked checkpoint into it.

    Args:
        model_cfg: The ``model:`` config section.
        checkpoint_path: Checkpoint file, or None to keep the (seeded) random initialisation.
        seed: ``torch.manual_seed`` before building: the same seed and config give the same
            random weights (the heads file's fingerprint relies on it).

    Returns:
        ``(model in eval mode, checkpoint or None)``.

    Raises:
        CheckpointMismatchError: See :func:`load_matching_checkpoint`.
    """
    torch.manual_seed(seed)
    model = build_model(model_cfg).eval()
    if checkpoint_path is None:
        return model, None
    checkpoint = read_model_checkpoint(checkpoint_path)
    load_matching_checkpoint(model, checkpoint)
    return model, checkpoint
