r"""Reduce a checkpoint to its weights, small enough to travel or to ship.

Usage::

    python -m training.weights_checkpoint runs/x/checkpoints/step_00001000.pt weights.pt

Of a pretraining checkpoint the copy keeps ``format``, ``step``, ``model``, ``model_config``
and ``config`` in float16 (no optimiser: it warm-starts and exports, it does not resume); of a
descriptor-head checkpoint everything but the optimiser; see ``training.checkpoint.weights``.
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
    parser.add_argument('source',
                        help='pretraining (training/train.py) or descriptor-head checkpoint')
    parser.add_argument('destination', help='weights-only copy to write')
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    size = write_weights_checkpoint(args.source, args.destination)
    _logger.info('wrote %s (%.2f MB) from %s', args.destination, size / 1e6, args.source)
    return 0


if __name__ == '__main__':
    sys.exit(main())
