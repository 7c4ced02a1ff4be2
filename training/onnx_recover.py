r"""Recover PyTorch checkpoints from an exported model file, to warm-start training from it.

Usage::

    python -m training.onnx_recover models/vd_cpu.onnx --out-dir runs/recovered

``runs/`` is not in git, so a fresh checkout holds no pretraining checkpoint, only the shipped
ONNX file. This tool turns that file back into the three files training reads:

- ``pretrain.pt``: a pretraining checkpoint (``train.init_from``, ``--checkpoint`` of
  train_heads, train_completion, evaluate and export_onnx), step = the file's pretraining
  steps, so the provenance of what is trained from it continues the count;
- ``completion_head.pt``: the completion head (``completion.init_from``, ``--completion-head``);
- ``<kind>.pt``: the segmentation head (``--heads``).

How the weights are found in the file, and how folded BatchNorms come back:
``training.export.recover``. The recovered modules are checked against ONNX Runtime on the
file before anything is written.
"""

import argparse
import logging
import os
import sys
import tempfile
from typing import Optional, Sequence

from training.export.recover import recover, write_checkpoints

_logger = logging.getLogger(__name__)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('onnx', help='model file written by training.export_onnx')
    parser.add_argument('--out-dir', default=os.path.join('runs', 'recovered'))
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Recover from the command line; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as work:
        graph, contract, report = recover(args.onnx, work)
    paths = write_checkpoints(graph, contract, args.onnx, args.out_dir)
    if report['unset']:
        _logger.warning('%d weights are not in the file (the export never reads them) and '
                        'start from a random initialisation: %s', len(report['unset']),
                        ', '.join(report['unset']))
    _logger.info('outputs agree with ONNX Runtime (largest relative error %s)',
                 ', '.join(f'{k} {v:.1e}' for k, v in report['output_errors'].items()))
    for part, path in paths.items():
        _logger.info('wrote %s: %s', part, path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
