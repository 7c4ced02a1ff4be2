"""Completion-head checkpoints (``training/train_completion.py``): format and loading.

A checkpoint holds the head's weights and config, the run's optimiser and progress, and which
pretraining checkpoint the frozen model came from (``encoder``: path, step, model config). The
head only fits that model: loading checks the model config and the feature width.
"""

from typing import Any, Dict, Optional, Tuple

from training.checkpoint_match import config_differences
from training.data.shared_paths import report_path
from training.engine.checkpoint import load_checkpoint
from training.models import VanishingDepth
from training.models.completion_head import build_completion_head, CompletionHead

CHECKPOINT_FORMAT = 'vd_ros.completion/1'


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
        (the pretraining checkpoint's path and step), ``val`` (the last validation row) and,
        for a calibrated uncertainty, ``calibration`` (``training.calibrate_uncertainty``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Not a completion checkpoint, or trained on a model of another config or
            another pretraining step.
    """
    state = load_checkpoint(path)
    if state.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path}: not a {CHECKPOINT_FORMAT} checkpoint '
                         f'(format {state.get("format")!r})')
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
    if state.get('calibration'):
        info['calibration'] = state['calibration']
    return head.eval(), info
