r"""Export a Vanishing Depth model (+ segmentation head) to ONNX following the model contract.

Usage::

    python -m training.export_onnx [--config extra.yaml] [--checkpoint ckpt.pt] \\
        [--heads heads.pt | --untrained-head ycbv] [--completion-head head.pt] \\
        [--descriptor-head descriptors.pt] [--output models/vd.onnx] \\
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
in metres, 0 on measured pixels, contract version 3, and, with ``--descriptor-head`` (a
``training/train_descriptors.py`` checkpoint), ``descriptors`` (1, dim, 4H/p, 4W/p): dense
matching descriptors, unit L2 norm per pixel, contract version 4; metadata key ``vd_ros`` =
``ModelContract.to_json()``.

Without ``--checkpoint`` the model is exported at random initialisation (``trained: false``,
with a loud warning): enough to run the node end to end, useless for perception.

The size is fixed at export. Before tracing, a copy of the model gets its position embeddings
resampled once to the export grid (timm ``set_input_size``, the same bicubic resampling the
model applies on the fly), so the graph holds no resize of constants and both exporters work:
``torchscript`` (default, opset 17, ~3x faster to export) and ``dynamo`` (``torch.export``,
opset 18). ``--fp16`` stores weights and computes in float16 inside the graph; inputs and
outputs stay float32 as the contract requires. ``--fp16-weights`` only stores the large weights
as float16 (``training.onnx_weight_storage``): half the file, float32 compute, same speed.
"""

import argparse
import copy
import datetime
import logging
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple
import warnings

import onnx
from onnx import helper
import torch
from torch import nn

from training.checkpoint_match import build_checked_model, total_pretraining_steps
from training.completion_checkpoint import load_completion_head
from training.data.label_layouts import get_layout, LABEL_LAYOUTS
from training.data.shared_paths import report_path
from training.descriptor_checkpoint import load_descriptor_head
from training.engine.config import load_config, to_plain
from training.heads_checkpoint import load_heads_checkpoint
from training.models import VanishingDepth
from training.models.completion_head import CompletionHead, depth_uncertainty
from training.models.descriptor_head import DescriptorHead
from training.models.heads import build_seg_head
from training.models.pde import decode_depth
from training.onnx_weight_storage import store_weights_fp16
from vd_ros.core.contract import METADATA_KEY, ModelContract, REQUIRED_OUTPUTS

_logger = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_INPUT_SIZE = (336, 448)
EXPORTERS = {'torchscript': 17, 'dynamo': 18}  # exporter -> default opset
PROTOBUF_LIMIT = 2 ** 31 - 2 ** 24  # stay clear of protobuf's 2 GiB; larger -> external data


class ExportGraph(nn.Module):
    """The exported computation: encode once, then decoder depth and the optional heads.

    Attributes:
        model: The ``VanishingDepth`` (with decoder).
        seg_head: Segmentation head on ``VDFeatures.maps``, or None.
        dtype: Compute dtype inside the graph (inputs and outputs stay float32).
        completion_head: Completion head, or None; it always computes in float32 (it decodes
            metric depth from the PDE input, which float16 cannot hold to the millimetre).
    """

    def __init__(self, model: VanishingDepth, seg_head: Optional[nn.Module] = None,
                 dtype: torch.dtype = torch.float32,
                 completion_head: Optional[CompletionHead] = None,
                 descriptor_head: Optional[DescriptorHead] = None):
        """Wrap the model.

        Args:
            model: Model with its pretraining decoder (the contract's ``depth`` output).
            seg_head: Optional head.
            dtype: ``torch.float32`` or ``torch.float16``.
            completion_head: Optional completion head (``completed_depth``).
            descriptor_head: Optional descriptor head (``descriptors``, last output).

        Raises:
            ValueError: The model has no decoder.
        """
        super().__init__()
        if model.decoder is None:
            raise ValueError('the model has no decoder (drop_decoder was called), but the '
                             'contract requires the depth output; export the checkpoint with '
                             'its decoder')
        self.model = model
        self.seg_head = seg_head
        self.dtype = dtype
        self.completion_head = completion_head
        self.descriptor_head = descriptor_head

    def forward(self, rgb: torch.Tensor, pde: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return features, depth, seg_logits, completed_depth, depth_uncertainty, descriptors.

        Each optional output only when its head is present.
        """
        features = self.model.encode(rgb.to(self.dtype), pde.to(self.dtype))
        depth = self.model.decoder(features.maps, tuple(rgb.shape[-2:]))[0]  # (1, 1, H, W)
        outputs = [features.last.float(), depth.float()]  # (1, D, h, w), (1, 1, H, W)
        if self.seg_head is not None:
            outputs.append(self.seg_head(features.maps).float())  # (1, K, h', w')
        if self.completion_head is not None:
            head = self.completion_head
            completed, log_scale = head.complete(rgb, pde, depth.float(),
                                                 features.maps[-1].float())  # (1, 1, H, W)
            outputs.append(completed)
            if log_scale is not None:
                valid = decode_depth(pde, head.pde_config)[1]  # (1, 1, H, W)
                outputs.append(depth_uncertainty(completed, log_scale, valid))
        if self.descriptor_head is not None:
            outputs.append(self.descriptor_head(features.maps, rgb.to(self.dtype)).float())
        return tuple(outputs)  # descriptors: (1, dim, 4h, 4w), unit L2 norm per pixel


def output_names(with_seg: bool, with_completion: bool = False,
                 with_uncertainty: bool = False, with_descriptors: bool = False) -> List[str]:
    """Names of the graph outputs, in the order ``ExportGraph`` returns them."""
    return list(REQUIRED_OUTPUTS) + (['seg_logits'] if with_seg else []) + (
        ['completed_depth'] if with_completion else []) + (
        ['depth_uncertainty'] if with_completion and with_uncertainty else []) + (
        ['descriptors'] if with_descriptors else [])


def check_input_size(input_size: Sequence[int], patch_size: int) -> Tuple[int, int]:
    """Return (H, W) after checking they are positive multiples of the patch size.

    Raises:
        ValueError: Naming the size and the patch size.
    """
    size = tuple(int(v) for v in input_size)
    if len(size) != 2 or min(size) <= 0 or size[0] % patch_size or size[1] % patch_size:
        raise ValueError(f'input size {list(input_size)} must be two positive multiples of the '
                         f'patch size {patch_size}')
    if min(size) < 16:
        raise ValueError(f'input size {list(size)} is below the decoder minimum of 16 pixels')
    return size


def fixed_size_copy(model: VanishingDepth, input_size: Tuple[int, int]) -> VanishingDepth:
    """Deep-copy ``model`` with both ViTs' position embeddings resampled to ``input_size``.

    Raises:
        TypeError: A ViT without ``set_input_size`` (use the dynamo exporter).
    """
    fixed = copy.deepcopy(model).eval()
    for vit in (fixed.encoder.vit, fixed.adapter.vit):
        if not hasattr(vit, 'set_input_size'):
            raise TypeError(f'{type(vit).__name__} has no set_input_size; export it with '
                            '--exporter dynamo')
        vit.set_input_size(img_size=input_size)
    return fixed


def git_revision(root: str = ROOT) -> str:
    """Return ``git describe``-like ``<sha>[-dirty]`` of ``root``, or 'unknown'."""
    try:
        sha = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(
            ['git', '-C', root, 'status', '--porcelain', '--untracked-files=no'],
            capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return sha + ('-dirty' if dirty.strip() else '')


def training_provenance(data: Any, steps: int, **extra: Any) -> Dict[str, Any]:
    """Return the contract's ``training`` object: data, steps, UTC date, git revision, extras."""
    return {'data': data, 'steps': int(steps),
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'git_revision': git_revision(), **extra}


def model_contract(model: VanishingDepth, input_size: Sequence[int],
                   class_names: Sequence[str] = (), trained: bool = False,
                   training_info: Optional[Dict[str, Any]] = None,
                   completion: bool = False,
                   class_colors: Sequence[Sequence[int]] = (),
                   uncertainty: bool = False, descriptors: bool = False) -> ModelContract:
    """Return the contract of ``model`` exported at ``input_size`` (also used to preprocess).

    Args:
        model: The model.
        input_size: (H, W).
        class_names: Segmentation classes (empty without a head).
        trained: Whether encoder adapter and decoder come from a training run.
        training_info: Provenance (see :func:`training_provenance`).
        completion: A completion head is exported (``completed_depth``, contract v2).
        class_colors: ``(r, g, b)`` per class from the user's class list, or empty.
        uncertainty: The completion head predicts its uncertainty (``depth_uncertainty``,
            contract v3).
        descriptors: A descriptor head is exported (``descriptors``, contract v4).
    """
    version = 4 if descriptors else (3 if uncertainty else 2) if completion else 1
    return ModelContract(
        encoder=model.encoder_name, patch_size=int(model.patch_size),
        input_size=check_input_size(input_size, model.patch_size),
        mean=tuple(float(v) for v in model.mean), std=tuple(float(v) for v in model.std),
        pde=model.pde_config, feature_dim=int(model.feature_dim),
        class_names=tuple(str(name) for name in class_names),
        class_colors=tuple(tuple(int(v) for v in colour) for colour in class_colors),
        trained=bool(trained),
        outputs=tuple(output_names(bool(class_names), completion, uncertainty, descriptors)),
        training=dict(training_info or {}), contract_version=version)


def _trace_to_onnx(graph: ExportGraph, example: Tuple[torch.Tensor, torch.Tensor], path: str,
                   names: List[str], exporter: str, opset: int) -> None:
    """Run the chosen torch exporter, writing ``path``."""
    kwargs = {'input_names': ['rgb', 'pde'], 'output_names': names, 'opset_version': opset}
    with warnings.catch_warnings(), torch.no_grad():
        # Shape-dependent Python branches are expected to be frozen: the size is fixed.
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        if exporter == 'dynamo':
            torch.onnx.export(graph, example, path, dynamo=True, external_data=True,
                              optimize=True, verbose=False, **kwargs)
        else:
            torch.onnx.export(graph, example, path, dynamo=False, do_constant_folding=True,
                              **kwargs)


def export_onnx(model: VanishingDepth, seg_head: Optional[nn.Module], output_path: str,
                input_size: Sequence[int] = DEFAULT_INPUT_SIZE, class_names: Sequence[str] = (),
                trained: bool = False, training_info: Optional[Dict[str, Any]] = None,
                fp16: bool = False, exporter: str = 'torchscript',
                opset: Optional[int] = None,
                completion_head: Optional[CompletionHead] = None,
                fp16_weights: bool = False,
                class_colors: Sequence[Sequence[int]] = (),
                descriptor_head: Optional[DescriptorHead] = None) -> ModelContract:
    """Export ``model`` (+ ``seg_head``) to an ONNX file that follows the model contract.

    Args:
        model: ``VanishingDepth`` with decoder (not modified: a fixed-size copy is traced).
        seg_head: Head on ``VDFeatures.maps`` or None; needs ``class_names``.
        output_path: The ``.onnx`` file (parent folders are created; written atomically).
        input_size: (H, W), multiples of the patch size.
        class_names: One name per head class, index = label id (0 = background/unlabelled).
        trained: False for a random-init export (logged as a warning).
        training_info: The contract's ``training`` object (data, steps, date, git revision).
        fp16: Compute in float16 inside the graph (I/O stays float32).
        exporter: ``torchscript`` or ``dynamo``.
        opset: ONNX opset (>= 17; default 17 for torchscript, 18 for dynamo).
        completion_head: Adds ``completed_depth`` (contract v2) and, with an uncertainty
            branch, ``depth_uncertainty`` (v3); computed in float32.
        fp16_weights: Store the large float32 weights as float16 (float32 compute).
        class_colors: Display colour ``(r, g, b)`` per class (the user's class list), or
            empty for the node's palette.
        descriptor_head: Adds ``descriptors`` (contract v4), computed in ``dtype``.

    Returns:
        The contract written into the metadata.

    Raises:
        ValueError: Bad size, exporter or opset, class names that do not fit the head, or a
            model without decoder.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f'unknown exporter {exporter!r}, expected one of {sorted(EXPORTERS)}')
    opset = EXPORTERS[exporter] if opset is None else int(opset)
    if opset < 17:
        raise ValueError(f'opset {opset} < 17: LayerNormalization needs opset 17')
    if (seg_head is None) != (not class_names):
        raise ValueError('class_names must be given exactly when a segmentation head is '
                         f'exported (head: {seg_head is not None}, {len(class_names)} names)')
    if seg_head is not None and len(class_names) != seg_head.num_classes:
        raise ValueError(f'{len(class_names)} class names for a head with '
                         f'{seg_head.num_classes} classes')
    if class_colors and len(class_colors) != len(class_names):
        raise ValueError(f'{len(class_colors)} class colours for {len(class_names)} classes')
    info = dict(training_info or {})
    info.setdefault('model_config', model.config)
    info.setdefault('export', {})
    info['export'] = {**info['export'], 'exporter': exporter, 'opset': opset,
                      'precision': 'fp16' if fp16 else 'fp32', 'torch': torch.__version__,
                      'weights': 'fp16' if fp16 or fp16_weights else 'fp32'}
    contract = model_contract(model, input_size, class_names, trained, info,
                              completion=completion_head is not None, class_colors=class_colors,
                              uncertainty=getattr(completion_head, 'uncertainty',
                                                  None) is not None,
                              descriptors=descriptor_head is not None)
    if not trained:
        _logger.warning('!' * 79)
        _logger.warning('EXPORTING A RANDOMLY INITIALISED MODEL (trained: false) to %s: its '
                        'features, depth and segmentation are meaningless; for the node demo '
                        'and tests only', output_path)
        _logger.warning('!' * 79)
    dtype = torch.float16 if fp16 else torch.float32
    fixed = fixed_size_copy(model, contract.input_size).to(dtype)
    head = copy.deepcopy(seg_head).eval().to(dtype) if seg_head is not None else None
    completion = copy.deepcopy(completion_head).eval().float() \
        if completion_head is not None else None
    descriptor = copy.deepcopy(descriptor_head).eval().to(dtype) \
        if descriptor_head is not None else None
    graph = ExportGraph(fixed, head, dtype, completion, descriptor).eval()
    height, width = contract.input_size
    example = (torch.rand(1, 3, height, width),
               torch.rand(1, contract.pde.channels, height, width) * 2 - 1)
    output_path = os.path.abspath(output_path)
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=os.path.dirname(output_path)) as work:
        traced = os.path.join(work, 'graph.onnx')
        _trace_to_onnx(graph, example, traced, list(contract.outputs), exporter, opset)
        proto = onnx.load(traced)
        if fp16_weights and not fp16:
            _logger.info('%d weights stored as float16', store_weights_fp16(proto))
        helper.set_model_props(proto, {METADATA_KEY: contract.to_json()})
        proto.doc_string = (f'Vanishing Depth {contract.encoder} {height}x{width} '
                            f'(vd_ros model contract v{contract.contract_version})')
        _save_checked(proto, os.path.join(work, 'final.onnx'), output_path)
    _logger.info('exported %s (%s, %s, opset %d, %s) in %.1f s: outputs %s', output_path,
                 contract.encoder, 'fp16' if fp16 else 'fp32', opset, exporter,
                 time.perf_counter() - started, list(contract.outputs))
    return contract


def _save_checked(proto: onnx.ModelProto, staging: str, output_path: str) -> None:
    """Save ``proto`` (external data beyond 2 GiB), run the checker, move it into place."""
    large = proto.ByteSize() > PROTOBUF_LIMIT
    data_name = os.path.basename(output_path) + '.data'
    onnx.save(proto, staging, save_as_external_data=large, location=data_name)
    onnx.checker.check_model(staging, full_check=True)
    if large:
        os.replace(os.path.join(os.path.dirname(staging), data_name),
                   os.path.join(os.path.dirname(output_path), data_name))
    os.replace(staging, output_path)


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
    parser.add_argument('--descriptor-head',
                        help='descriptor head checkpoint (training/train_descriptors.py): adds '
                        'the descriptors output (contract v4)')
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


def _data_description(cfg: Dict[str, Any]) -> List[str]:
    """Describe the pretraining data sources of a config as 'type:root' strings."""
    sources = (cfg.get('data') or {}).get('sources') or []
    return [f'{source.get("type")}:{source.get("root")}' for source in sources]


def build_export_inputs(args: argparse.Namespace) -> Tuple[VanishingDepth, Any, dict]:
    """Build the model (checked checkpoint or random init) and the optional heads.

    Returns:
        ``(model, segmentation head or None, export_onnx keyword arguments)``; the completion
        head (or None) is the keyword ``completion_head``.
    """
    cfg = to_plain(load_config(args.config, args.overrides))
    model, checkpoint = build_checked_model(cfg['model'], args.checkpoint, args.seed)
    if checkpoint is not None:
        steps, chain = total_pretraining_steps(checkpoint)
        info = training_provenance(
            _data_description(checkpoint.config or {}) or 'see checkpoint', steps,
            checkpoint=report_path(args.checkpoint), checkpoint_step=checkpoint.step,
            warm_start_chain=chain[1:])
        if (checkpoint.config or {}).get('recovered_from'):  # training.onnx_recover
            info['recovered_from'] = checkpoint.config['recovered_from']
    else:
        info = training_provenance('none (random initialisation)', 0, checkpoint=None,
                                   seed=args.seed)
    head, class_names, class_colors = None, (), ()
    if args.heads:
        head, heads_info = load_heads_checkpoint(args.heads, model)
        class_names = tuple(heads_info['class_names'])
        class_colors = tuple(heads_info.get('class_colors') or ())
        info['heads'] = {'file': heads_info['path'], 'kind': heads_info['head_config']['kind'],
                         'head_config': heads_info['head_config'],
                         'layout': heads_info.get('layout'),
                         'training': heads_info.get('training'),
                         'metrics': heads_info.get('metrics')}
    elif args.untrained_head:
        class_names = get_layout(args.untrained_head).class_names
        head = build_seg_head('linear', model.feature_dim, len(class_names)).eval()
        info['heads'] = {'kind': 'linear', 'layout': args.untrained_head,
                         'training': 'none (random initialisation)'}
    completion = None
    if args.completion_head:
        completion, completion_info = load_completion_head(
            args.completion_head, model, checkpoint.step if checkpoint else None)
        info['completion_head'] = completion_info
    descriptor = None
    if args.descriptor_head:
        descriptor, state = load_descriptor_head(args.descriptor_head, model)
        info['descriptor_head'] = {'file': report_path(args.descriptor_head),
                                   'step': state['step'], 'head_config': state['head_config'],
                                   'training_sources': state.get('training_sources'),
                                   'val': (state.get('val_history') or [None])[-1]}
    return model, head, {'class_names': class_names, 'class_colors': class_colors,
                         'trained': bool(args.checkpoint),
                         'training_info': info, 'completion_head': completion,
                         'descriptor_head': descriptor}


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
