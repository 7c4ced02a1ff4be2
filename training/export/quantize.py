r"""Static int8 quantisation (QDQ) of an exported model, written only when accuracy holds.

Usage::

    python -m training.export.quantize [--model models/vd_cpu.onnx] \
        [--out models/vd_cpu_int8.onnx] [--config training/configs/cpu.yaml] \
        [--calibration-frames 6] [--eval-frames 0] \
        [--keep-float patch_embed completion_head seg_head] \
        [--threads 2]

Steps: the float16-stored weights are restored to float32 initializers
(``training.export.weight_storage.restore_weights_fp32``, the values exactly as stored), the
graph is shape-inferred and folded (``onnxruntime.quantization.quant_pre_process``), then
``quantize_static`` puts QuantizeLinear / DequantizeLinear pairs around every Conv, MatMul and
Gemm (int8 weights per output channel, uint8 activations per tensor, ranges by min / max over the
calibration inputs). Other operators get no Q/DQ pair of their own (LayerNormalization, GELU
and the resizes run in float; ONNX Runtime does run a Softmax between two quantised attention
products as QLinearSoftmax); nor do the node groups named by ``--keep-float``
(``KEEP_FLOAT_GROUPS``).

Calibration reads only TRAINING frames: ``--calibration-frames`` evenly spaced frames of every
``data.sources`` entry of the config, each fed twice as the node would see it: with its whole
measured depth and with one sparse pattern (1500 / 500 / 150 points or Perlin holes, in turn).

The accuracy gates compare the int8 file with its float parent on the config's held-out test
split (``holdout.sources``) with identical inputs (``training.eval.quantization_gates``):
completed-depth RMSE within 2 % at every pattern, segmentation mIoU within 1 point, feature
cosine similarity at least 0.98 (and descriptor cosine similarity for a model with
``descriptors``), and for a model with ``depth_uncertainty`` the sparsification ratio at most
0.02 higher and mean |error| / mean u within 5 % of the parent's (every pattern). When a gate
fails nothing is written and the exit status is 2. The file written keeps the parent's metadata
and adds ``training.quantization`` (precision int8, format, the parent's file name and SHA-256,
calibration, float groups, the gate figures).
"""

import argparse
import json
import logging
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, quant_pre_process,
                                      QuantFormat, quantize_static, QuantType)

from training.data.shared_paths import command_text, report_path, shared_dir
from training.engine.config import load_config, to_plain
from training.eval.completion_protocol import input_mask, InputPattern, pattern_seed
from training.eval.frames import holdout_frames, RGBDFrame
from training.eval.quantization_gates import (GateReport, MAX_HALF_RATIO_INCREASE,
                                              MAX_MIOU_DROP, MAX_RMSE_INCREASE,
                                              MAX_SCALE_CHANGE, MIN_COSINE, run_gates)
from training.export.contract import file_sha256
from training.export.weight_storage import restore_weights_fp32
from vd_ros.core.contract import METADATA_KEY
from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel

_logger = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DATA = os.path.join(shared_dir(), 'data')
CALIBRATION_PATTERNS = (InputPattern('points', 1500), InputPattern('points', 500),
                        InputPattern('points', 150), InputPattern('perlin', 0.5))
# Node groups that can stay float, matched on the node names of the exported graph.
KEEP_FLOAT_GROUPS = {
    'patch_embed': 'the RGB and depth patch embeddings (the PDE input)',
    'completion_head': 'the completion head (metric depth)',
    'decoder': 'the relative-depth FPN decoder',
    'seg_head': 'the segmentation head',
    'attention': 'the attention products q.k and attn.v (activation x activation)',
    'se_gates': 'the squeeze-excitation fusion gates',
    'descriptor_head': 'the descriptor head (contract v4 files)',
}
# The completion head's modules (``training.models.completion_head.CompletionHead``): an export
# that traces the head on its own names its nodes '/stem/...', '/uncertainty/...', not
# '/completion_head/...'.
COMPLETION_HEAD_MODULES = ('project', 'stem', 'down1', 'down2', 'bottom', 'up1', 'up0',
                           'residual', 'uncertainty')
QUANTIZED_OPS = ('Conv', 'MatMul', 'Gemm')  # quant_pre_process fuses MatMul + Add to Gemm
# What measurement kept float (docs/results/int8.md): quantised, the completion head cost up to
# 17 % RMSE on YCB-Video and the segmentation head 2.4 mIoU points.
DEFAULT_KEEP_FLOAT = ('patch_embed', 'completion_head', 'seg_head')


class RefusedError(RuntimeError):
    """The int8 model failed an accuracy gate; no file was written."""


def group_of(node: onnx.NodeProto, weights: set[str]) -> str | None:
    """Return the ``KEEP_FLOAT_GROUPS`` key of a Conv / MatMul / Gemm node, or None."""
    name = node.name
    if 'patch_embed' in name:
        return 'patch_embed'
    for group in ('completion_head', 'decoder', 'seg_head', 'descriptor_head'):
        if f'/{group}/' in f'/{name}':
            return group
    if name.lstrip('/').split('/')[0] in COMPLETION_HEAD_MODULES:
        return 'completion_head'
    if '_se/' in name:
        return 'se_gates'
    if node.op_type in ('MatMul', 'Gemm') and not any(value in weights for value in node.input):
        return 'attention'
    return None


def nodes_in_groups(proto: onnx.ModelProto, groups: list[str]) -> list[str]:
    """Return the names of the Conv / MatMul / Gemm nodes of ``proto`` in any of ``groups``.

    Raises:
        ValueError: An unknown group name.
    """
    unknown = [group for group in groups if group not in KEEP_FLOAT_GROUPS]
    if unknown:
        raise ValueError(f'unknown --keep-float groups {unknown}; known: '
                         f'{sorted(KEEP_FLOAT_GROUPS)}')
    weights = {tensor.name for tensor in proto.graph.initializer}
    return [node.name for node in proto.graph.node
            if node.op_type in QUANTIZED_OPS and group_of(node, weights) in groups]


def float_graph(model_path: str, folder: str) -> str:
    """Write the parent as a float32-weight, shape-inferred graph in ``folder``; return it."""
    proto = onnx.load(model_path)
    restored = restore_weights_fp32(proto)
    _logger.info('%s: %d float16-stored weights restored to float32', model_path, restored)
    plain = os.path.join(folder, 'float32.onnx')
    onnx.save(proto, plain)
    prepared = os.path.join(folder, 'float32_prepared.onnx')
    # Symbolic shape inference fails on the traced graph's shape arithmetic; ONNX shape
    # inference and ORT's basic folding (constants, shape ops) do what quantisation needs.
    quant_pre_process(plain, prepared, skip_symbolic_shape=True)
    return prepared


class FrameCalibration(CalibrationDataReader):
    """Model inputs of calibration frames: the whole depth and one sparse pattern each."""

    def __init__(self, frames: list[RGBDFrame], contract, seed: int = 0):
        """Prepare every input now, as the node would (``prepare_inputs``)."""
        self.feeds = []
        for index, frame in enumerate(frames):
            pattern = CALIBRATION_PATTERNS[index % len(CALIBRATION_PATTERNS)]
            mask = input_mask(frame.depth_m, pattern, pattern_seed(seed, index, 0))
            for depth in (frame.depth_m, np.where(mask, frame.depth_m, 0.0)):
                rgb_in, pde, _ = prepare_inputs(frame.rgb, depth.astype(np.float32), contract)
                self.feeds.append({'rgb': rgb_in, 'pde': pde})
        self._next = iter(self.feeds)

    def get_next(self) -> dict | None:
        """Return the next feed, None at the end."""
        return next(self._next, None)

    def rewind(self) -> None:
        """Start again from the first feed."""
        self._next = iter(self.feeds)


def quantize_model(model_path: str, out_path: str, calibration: FrameCalibration,
                   keep_float: list[str]) -> list[str]:
    """Write the QDQ int8 model of ``model_path`` to ``out_path`` (no metadata yet).

    Returns:
        The names of the Conv / MatMul / Gemm nodes kept float.
    """
    with tempfile.TemporaryDirectory() as folder:
        prepared = float_graph(model_path, folder)
        excluded = nodes_in_groups(onnx.load(prepared), keep_float)
        _logger.info('quantising with %d Conv / MatMul / Gemm nodes kept float (%s)',
                     len(excluded),
                     ', '.join(keep_float) or 'none')
        quantize_static(prepared, out_path, calibration, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=excluded, calibrate_method=CalibrationMethod.MinMax)
    return excluded


def write_metadata(path: str, parent_path: str, provenance: dict) -> None:
    """Copy the parent's ``vd_ros`` metadata into ``path``, adding ``training.quantization``."""
    parent = VDModel(parent_path, providers=['cpu'])
    text = parent.session.get_modelmeta().custom_metadata_map[METADATA_KEY]
    meta = json.loads(text)
    meta.setdefault('training', {})['quantization'] = provenance
    proto = onnx.load(path)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(meta, sort_keys=True)})
    onnx.save(proto, path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=os.path.join(ROOT, 'models', 'vd_cpu.onnx'))
    parser.add_argument('--out', default=os.path.join(ROOT, 'models', 'vd_cpu_int8.onnx'))
    parser.add_argument('--config', action='append',
                        default=[os.path.join(ROOT, 'training', 'configs', 'cpu.yaml')],
                        help='YAML merged over default.yaml: data.sources calibrate, '
                        'holdout.sources test')
    parser.add_argument('--data', default=DEFAULT_DATA, help='the ../shared/data folder')
    parser.add_argument('--calibration-frames', type=int, default=6,
                        help='evenly spaced frames per training source (0: all)')
    parser.add_argument('--eval-frames', type=int, default=0,
                        help='evenly spaced frames per held-out source (0: all)')
    parser.add_argument('--keep-float', nargs='*', default=list(DEFAULT_KEEP_FLOAT),
                        help=f'node groups kept float: {", ".join(sorted(KEEP_FLOAT_GROUPS))}')
    parser.add_argument('--threads', type=int, default=2, help='ORT intra-op threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-rmse-increase', type=float, default=MAX_RMSE_INCREASE,
                        help='completed-depth RMSE growth allowed at every pattern (relative)')
    parser.add_argument('--max-miou-drop', type=float, default=MAX_MIOU_DROP,
                        help='segmentation mIoU drop allowed (points)')
    parser.add_argument('--min-cosine', type=float, default=MIN_COSINE,
                        help='lowest mean feature (and descriptor) cosine similarity to the '
                        'parent')
    parser.add_argument('--max-half-ratio-increase', type=float,
                        default=MAX_HALF_RATIO_INCREASE,
                        help='growth allowed of the sparsification ratio (RMSE of the most '
                        'confident half / all filled; depth_uncertainty models)')
    parser.add_argument('--max-scale-change', type=float, default=MAX_SCALE_CHANGE,
                        help='relative change allowed of mean |error| / mean uncertainty')
    parser.add_argument('overrides', nargs='*', help='config overrides key=value')
    return parser.parse_args(argv)


def quantize_and_gate(args: argparse.Namespace, cfg: dict, command: str) -> GateReport:
    """Quantise, score against the parent and write ``args.out`` only if the gates pass.

    Raises:
        RefusedError: A gate failed (the report is in the message).
        ValueError: The config names no training or held-out sources.
    """
    sources = (cfg.get('data') or {}).get('sources')
    holdout = (cfg.get('holdout') or {}).get('sources')
    if not sources or not holdout:
        raise ValueError('the config must name data.sources (calibration) and '
                         'holdout.sources (the accuracy gates)')
    contract = VDModel(args.model, providers=['cpu']).contract
    frames = holdout_frames(sources, args.data, args.calibration_frames)
    calibration = FrameCalibration(frames, contract, args.seed)
    _logger.info('calibration: %d training frames, %d inputs', len(frames),
                 len(calibration.feeds))
    folder = os.path.dirname(os.path.abspath(args.out))
    with tempfile.NamedTemporaryFile(suffix='.onnx', dir=folder, delete=False) as stream:
        candidate = stream.name
    try:
        excluded = quantize_model(args.model, candidate, calibration, args.keep_float)
        test_frames = holdout_frames(holdout, args.data, args.eval_frames)
        report = run_gates(args.model, candidate, test_frames, args.threads, args.seed,
                           holdout, args.data, limits={'rmse': args.max_rmse_increase,
                                                       'miou': args.max_miou_drop,
                                                       'cosine': args.min_cosine,
                                                       'half_ratio':
                                                           args.max_half_ratio_increase,
                                                       'scale': args.max_scale_change})
        _logger.info('gates:\n%s', report.text())
        if not report.passed:
            raise RefusedError(f'{args.out} not written: the int8 model fails '
                               f'{", ".join(report.failures())}\n{report.text()}')
        write_metadata(candidate, args.model, {
            'precision': 'int8', 'format': 'QDQ',
            'weights': 'int8 symmetric, per output channel',
            'activations': 'uint8 per tensor, min/max calibration',
            'parent': report_path(args.model), 'parent_sha256': file_sha256(args.model),
            'calibration': f'{len(calibration.feeds)} inputs of {len(frames)} training frames '
                           f'(data.sources, {args.calibration_frames} per source)',
            'kept_float_groups': list(args.keep_float), 'kept_float_nodes': len(excluded),
            'gates': report.to_dict(), 'onnxruntime': onnxruntime.__version__,
            'command': command})
        os.chmod(candidate, 0o644)  # a temporary file is created private (0600)
        os.replace(candidate, args.out)
    finally:
        if os.path.exists(candidate):
            os.remove(candidate)
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the tool; return 0 when written, 2 when refused."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    cfg = to_plain(load_config(args.config, args.overrides))
    try:
        quantize_and_gate(args, cfg, command_text('python -m training.export.quantize', argv))
    except RefusedError as error:
        _logger.error('%s', error)
        return 2
    _logger.info('wrote %s', args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
