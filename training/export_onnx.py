r"""Export a Vanishing Depth model (+ segmentation head) to ONNX following the model contract.

Usage::

    python -m training.export_onnx [--config extra.yaml] [--checkpoint ckpt.pt] \\
        [--heads heads.pt | --untrained-head ycbv] [--completion-head head.pt] \\
        [--output models/vd.onnx] \\
        [--input-size 336 448] [--fp16 | --fp16-weights] \\
        [--exporter torchscript|dynamo] [--seed 0] [key=value ...]

The file follows ``shared/docs/model-contract.md``: inputs ``rgb`` (1, 3, H, W) float32 RGB in
[0, 1] (mean/std normalisation inside the graph) and ``pde`` (1, C, H, W); outputs
``features`` (1, D, H/p, W/p), ``depth`` (1, 1, H, W) (the pretraining decoder's full-resolution
depth in metres, before alignment to the measured depth) and, with ``--heads``, ``seg_logits``
(1, K, h, w) on the head's own grid (``--untrained-head LAYOUT`` attaches a random linear head
instead, so that every node output can be exercised), and, with ``--completion-head`` (a
``training/train_completion.py`` checkpoint), ``completed_depth`` (1, 1, H, W): metric depth
from the completion head, contract version 2 (files without it stay version 1), and, when that
head has an uncertainty branch, ``depth_uncertainty`` (1, 1, H, W): its expected absolute error
in metres, 0 on measured pixels, contract version 3; metadata key ``vd_ros`` =
``ModelContract.to_json()``.

Without ``--checkpoint`` the model is exported at random initialisation (``trained: false``,
with a loud warning): enough to run the node end to end, useless for perception.

The size is fixed at export. Before tracing, a copy of the model gets its position embeddings
resampled once to the export grid (timm ``set_input_size``, the same bicubic resampling the
model applies on the fly), so the graph holds no resize of constants and both exporters work:
``torchscript`` (default, opset 17, ~3x faster to export) and ``dynamo`` (``torch.export``,
opset 18). ``--fp16`` stores weights and computes in float16 inside the graph; inputs and
outputs stay float32 as the contract requires. ``--fp16-weights`` only stores the large weights
as float16 (``training.export.weight_storage``): half the file, float32 compute, same speed.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

from training.data.label_layouts import LABEL_LAYOUTS
from training.export.exporter import DEFAULT_INPUT_SIZE, export_onnx, EXPORTERS
from training.export.inputs import build_export_inputs


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', action='append', default=[],
                        help='YAML merged over training/configs/default.yaml (repeatable)')
    parser.add_argument('--checkpoint', help='pretraining checkpoint (training/train.py)')
    heads = parser.add_mutually_exclusive_group()
    heads.add_argument('--heads', help='segmentation head file (training/train_heads.py)')
    heads.add_argument('--untrained-head', choices=sorted(LABEL_LAYOUTS), metavar='LAYOUT',
                       help='attach a randomly initialised linear head with the classes of '
                       'LAYOUT (exercises every output of the node; its labels mean nothing)')
    parser.add_argument('--completion-head',
                        help='completion head checkpoint (training/train_completion.py): adds '
                        'the completed_depth output (contract v2)')
    parser.add_argument('--output', default=os.path.join('models', 'vd.onnx'))
    parser.add_argument('--input-size', type=int, nargs=2, default=list(DEFAULT_INPUT_SIZE),
                        metavar=('H', 'W'))
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--fp16', action='store_true', help='float16 weights and compute')
    precision.add_argument('--fp16-weights', action='store_true',
                           help='float16 storage of the weights, float32 compute')
    parser.add_argument('--exporter', choices=sorted(EXPORTERS), default='torchscript')
    parser.add_argument('--opset', type=int, help='ONNX opset (default per exporter)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random initialisation (must match train_heads)')
    parser.add_argument('overrides', nargs='*', help='config overrides key=value')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Export from the command line; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    args = parse_args(sys.argv[1:] if argv is None else argv)
    model, head, kwargs = build_export_inputs(args)
    export_onnx(model, head, args.output, args.input_size, fp16=args.fp16,
                exporter=args.exporter, opset=args.opset, fp16_weights=args.fp16_weights,
                **kwargs)
    return 0


if __name__ == '__main__':
    sys.exit(main())
