r"""Reduce a pretraining checkpoint to its model weights in float16, small enough to travel.

Usage::

    python -m training.weights_checkpoint runs/x/checkpoints/step_00001000.pt weights.pt

The copy keeps ``format``, ``step``, ``model``, ``model_config`` and ``config`` (no optimiser:
it warm-starts and exports, it does not resume); see ``training.checkpoint.weights``.
"""

import argparse
import logging
import sys
from typing import Optional, Sequence

from training.checkpoint.weights import write_weights_checkpoint

_logger = logging.getLogger('training.weights_checkpoint')


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
