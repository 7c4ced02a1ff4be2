"""Pretraining checkpoints (``vd_ros.pretrain/1``): the writer and the checked reader.

Every pretraining checkpoint holds ``format``, ``step`` (optimiser steps done), ``model``
(state dict), ``model_config`` (the resolved model config) and ``config`` (the whole training
config). One that ``training/train.py`` writes to resume from adds ``optimizer``,
``scheduler``, ``scaler``, ``noise_shift``, ``sampler``, ``rng``, ``counters``, ``val_loss``
and (``CheckpointManager``) ``best_metric``; the keys are documented in ``training/README.md``.
A weights-only copy (``training.checkpoint.weights``) and the checkpoint recovered from a model
file (``training.export.recover``, with ``config.recovered_from``) hold the first five keys
only. To build a model from any of them with its config checked, see
``training.checkpoint.model``.
"""

from typing import Any, Dict

from torch import nn

from training.checkpoint.formats import load_checked, PRETRAIN, PRETRAIN_FORMAT


def pretrain_state(model: nn.Module, step: int, config: Dict[str, Any],
                   **fields: Any) -> Dict[str, Any]:
    """Return the dict of a pretraining checkpoint (to ``torch.save``).

    Args:
        model: The ``VanishingDepth`` (its state dict and ``config`` are stored).
        step: Optimiser steps behind its weights.
        config: The whole (plain) training config.
        **fields: The training state of a resumable checkpoint (module docstring).
    """
    return {'format': PRETRAIN_FORMAT, 'step': step, 'model': model.state_dict(),
            'model_config': model.config, 'config': config, **fields}


def read_pretrain(path: str) -> Dict[str, Any]:
    """Load a pretraining checkpoint (to resume or warm-start from).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointFormatError: The file is of another format.
    """
    return load_checked(path, PRETRAIN)
