r"""Reduce a pretraining checkpoint to its model weights in float16, small enough to travel.

Usage::

    python -m training.weights_checkpoint runs/x/checkpoints/step_00001000.pt weights.pt

A full checkpoint (``training/train.py``) holds AdamW's two moments beside the weights, three
times the weights' size. This copy keeps what every reader of a checkpoint needs to rebuild
the model (``format``, ``step``, ``model``, ``model_config``, ``config``) with floating-point
tensors stored as float16 (integer buffers unchanged): ``train.init_from``, ``--checkpoint``
of train_heads, train_completion, evaluate and export_onnx, and ``total_pretraining_steps``
all take it; a resume does not (no optimiser). The shipped model's weights are float16 already
(``export_onnx --fp16-weights``). ``tools/gpu_train.sh`` uses it in both directions: the
recovered shipped model goes to the GPU machine this way and the trained model comes back.
"""

import argparse
import logging
import os
import sys
from typing import Any, Dict, Optional, Sequence

from training.engine.checkpoint import atomic_save, load_checkpoint
from training.train import CHECKPOINT_FORMAT

_logger = logging.getLogger('training.weights_checkpoint')

KEPT_KEYS = ('format', 'step', 'model', 'model_config', 'config')


def weights_only(state: Dict[str, Any]) -> Dict[str, Any]:
    """Return the kept keys of a pretraining checkpoint, floating tensors as float16.

    Raises:
        ValueError: ``state`` is not a pretraining checkpoint.
    """
    if state.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'not a {CHECKPOINT_FORMAT} checkpoint (format {state.get("format")!r})')
    slim = {key: state[key] for key in KEPT_KEYS if key in state}
    slim['model'] = {name: value.half() if value.is_floating_point() else value
                     for name, value in state['model'].items()}
    return slim


def write_weights_checkpoint(source: str, destination: str) -> int:
    """Write the float16 weights-only copy of ``source``; return its size in bytes."""
    atomic_save(weights_only(load_checkpoint(source)), destination)
    return os.path.getsize(destination)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Convert from the command line; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('source', help='pretraining checkpoint (training/train.py)')
    parser.add_argument('destination', help='weights-only float16 copy to write')
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    size = write_weights_checkpoint(args.source, args.destination)
    _logger.info('wrote %s (%.2f MB) from %s', args.destination, size / 1e6, args.source)
    return 0


if __name__ == '__main__':
    sys.exit(main())
