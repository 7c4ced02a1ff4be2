r"""Add a trained descriptor head to a shipped model file: ``~/descriptors`` without training.

Usage::

    python -m training.descriptor_model [--model models/vd_cpu.onnx] \
        [--head models/descriptor_head.pt] [--output models/vd_cpu_descriptors.onnx]

(``make descriptors``.) The float file's weights are recovered (``python -m
training.onnx_recover``, exact as stored in float16) into a temporary folder and exported again
with the head (``python -m training.export_onnx --descriptor-head``, float16 weight storage,
the file's input size): contract v4, the file's outputs plus ``descriptors``. The head must
have been trained on this encoder (its checkpoint records the encoder's fingerprint; another
encoder is refused). The new file is written only when every output of the source file is
unchanged on the in-repo sample frames (largest difference at most ``TOLERANCE`` of the
output's range), so it is the shipped model plus descriptors and nothing else. Its metadata
names the recovered checkpoints ``onnx_recover(<model>)/pretrain.pt`` (and so on), not the
temporary folder they were in.
"""

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from typing import Optional, Sequence

import numpy as np
import onnx

from training.export.recover import calibration_inputs, read_contract
from vd_ros.core.contract import METADATA_KEY
from vd_ros.inference import VDModel

_logger = logging.getLogger('training.descriptor_model')
TOLERANCE = 1e-4  # of max |output| of the source file, per output


def output_changes(source: str, candidate: str) -> dict:
    """Return the largest relative difference of each source output between two model files.

    Both run on the in-repo sample frames at the densities ``training.onnx_recover`` checks.
    """
    old, new = VDModel(source, ['cpu']), VDModel(candidate, ['cpu'])
    changes = dict.fromkeys(old.output_names, 0.0)
    for rgb_in, pde in calibration_inputs(old.contract):
        expected = old.run(rgb_in.numpy(), pde.numpy())
        found = new.run(rgb_in.numpy(), pde.numpy(), list(expected))
        for name, value in expected.items():
            scale = max(float(np.abs(value).max()), 1e-12)
            change = float(np.abs(found[name] - value).max()) / scale
            changes[name] = max(changes[name], change)
    return changes


def run_module(module: str, *args: str) -> None:
    """Run ``python -m module args`` (entry scripts do not import each other).

    Raises:
        subprocess.CalledProcessError: It failed (its messages went to stderr).
    """
    subprocess.run([sys.executable, '-m', module, *args], check=True)


def export_with_head(args: argparse.Namespace, work: str, candidate: str) -> None:
    """Recover ``args.model`` into ``work`` and export it with ``args.head`` to ``candidate``.

    Raises:
        subprocess.CalledProcessError: The recovery or the export failed.
    """
    run_module('training.onnx_recover', args.model, '--out-dir', work)
    height, width = read_contract(args.model).input_size
    heads = [(flag, os.path.join(work, name)) for flag, name in
             (('--heads', 'fpn.pt'), ('--completion-head', 'completion_head.pt'))]
    run_module('training.export_onnx', '--config', args.config,
               '--checkpoint', os.path.join(work, 'pretrain.pt'),
               *[part for flag, path in heads if os.path.exists(path) for part in (flag, path)],
               '--descriptor-head', args.head, '--input-size', str(height), str(width),
               '--fp16-weights', '--output', candidate)


def name_recovered_files(path: str, work: str, model: str) -> None:
    """Rename the files recovered into ``work`` to ``onnx_recover(model)/...`` in the metadata."""
    proto = onnx.load(path)
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = prop.value.replace(f'{work}{os.sep}', f'onnx_recover({model})/')
    onnx.save(proto, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the model with descriptors from the command line; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=os.path.join('models', 'vd_cpu.onnx'),
                        help='float model file written by training.export_onnx')
    parser.add_argument('--head', default=os.path.join('models', 'descriptor_head.pt'),
                        help='descriptor-head checkpoint (training/train_descriptors.py)')
    parser.add_argument('--output', default=os.path.join('models', 'vd_cpu_descriptors.onnx'))
    parser.add_argument('--config', default=os.path.join('training', 'configs', 'cpu.yaml'))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    candidate = f'{args.output}.partial'  # beside the output: os.replace stays on one disk
    try:
        with tempfile.TemporaryDirectory() as work:
            export_with_head(args, work, candidate)
            name_recovered_files(candidate, work, args.model)
    except subprocess.CalledProcessError as error:
        if os.path.exists(candidate):
            os.remove(candidate)
        _logger.error('not written: python -m %s failed (exit code %d, its messages above)',
                      error.cmd[2], error.returncode)
        return 1
    changes = output_changes(args.model, candidate)
    changed = {name: change for name, change in changes.items() if change > TOLERANCE}
    if changed:
        os.remove(candidate)
        _logger.error('not written: outputs of %s changed by %s (relative; at most %g)',
                      args.model, ', '.join(f'{k} {v:.1e}' for k, v in changed.items()),
                      TOLERANCE)
        return 1
    os.replace(candidate, args.output)
    _logger.info('wrote %s: the outputs of %s (largest relative change %s) and descriptors',
                 args.output, args.model,
                 ', '.join(f'{k} {v:.1e}' for k, v in changes.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
