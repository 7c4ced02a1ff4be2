"""Reduce a pretraining checkpoint to its model weights in float16, small enough to travel.

A full checkpoint (``training/train.py``) holds AdamW's two moments beside the weights, three
times the weights' size. This copy keeps what every reader of a checkpoint needs to rebuild
the model (``format``, ``step``, ``model``, ``model_config``, ``config``) with floating-point
tensors stored as float16 (integer buffers unchanged): ``train.init_from``, ``--checkpoint``
of train_heads, train_completion, evaluate and export_onnx, and ``total_pretraining_steps``
all take it; a resume does not (no optimiser). The shipped model's weights are float16 already
(``export_onnx --fp16-weights``). ``tools/gpu_train.sh`` uses it in both directions (``python
-m training.weights_checkpoint``): the recovered shipped model goes to the GPU machine this way
and the trained model comes back.

A descriptor-head checkpoint (``training/train_descriptors.py``) is copied without its
optimiser, the head's weights kept in float32 as trained (they are small), so that
``export_onnx --descriptor-head`` and ``evaluate --descriptor-head`` give what the full file
gives; ``models/descriptor_head.pt`` is such a copy.
"""

import os
from typing import Any, Dict

from training.checkpoint.files import atomic_save, load_checkpoint
from training.checkpoint.formats import check_format, DESCRIPTOR, PRETRAIN

KEPT_KEYS = ('format', 'step', 'model', 'model_config', 'config')
DROPPED_DESCRIPTOR_KEYS = ('optimizer',)


def weights_only(state: Dict[str, Any], path: str = 'checkpoint') -> Dict[str, Any]:
    """Return the kept keys of a pretraining checkpoint, floating tensors as float16.

    Args:
        state: A loaded pretraining checkpoint.
        path: Its file, for the message.

    Raises:
        CheckpointFormatError: ``state`` is not a pretraining checkpoint.
    """
    check_format(state, path, PRETRAIN)
    slim = {key: state[key] for key in KEPT_KEYS if key in state}
    slim['model'] = {name: value.half() if value.is_floating_point() else value
                     for name, value in state['model'].items()}
    return slim


def write_weights_checkpoint(source: str, destination: str) -> int:
    """Write the weights-only copy of ``source``; return its size in bytes.

    Raises:
        CheckpointFormatError: ``source`` is neither a pretraining nor a descriptor-head
            checkpoint.
    """
    state = load_checkpoint(source)
    if isinstance(state, dict) and state.get('format') == DESCRIPTOR.name:
        slim = {key: value for key, value in state.items()
                if key not in DROPPED_DESCRIPTOR_KEYS}
    else:
        slim = weights_only(state, source)
    atomic_save(slim, destination)
    return os.path.getsize(destination)
