"""Export a Vanishing Depth model (+ heads) to an ONNX file that follows the model contract.

``export_onnx`` traces ``ExportGraph`` (encode once, then the decoder depth and the optional
segmentation and completion heads) at a fixed size and writes the contract
(``training.export.contract``) into the file's metadata; ``python -m training.export_onnx`` is
its command line (module docstring there: outputs, exporters, precisions). Before tracing, a
copy of the model gets its position embeddings resampled once to the export grid (timm
``set_input_size``), so the graph holds no resize of constants and both exporters work.
``fp16_weights`` stores the large weights as float16 (``training.export.weight_storage``).
"""

import copy
import logging
import os
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple
import warnings

import onnx
from onnx import helper
import torch
from torch import nn

from training.export.contract import model_contract
from training.export.weight_storage import store_weights_fp16
from training.models import VanishingDepth
from training.models.completion_head import CompletionHead, depth_uncertainty
from training.models.descriptor_head import DescriptorHead
from training.models.pde import decode_depth
from vd_ros.core.contract import METADATA_KEY, ModelContract

_logger = logging.getLogger(__name__)

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
        descriptor_head: Descriptor head, or None (``descriptors``, the last output).
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


def _checked_opset(exporter: str, opset: Optional[int]) -> int:
    """Return the opset to export with; raise ValueError for a bad exporter or opset."""
    if exporter not in EXPORTERS:
        raise ValueError(f'unknown exporter {exporter!r}, expected one of {sorted(EXPORTERS)}')
    opset = EXPORTERS[exporter] if opset is None else int(opset)
    if opset < 17:
        raise ValueError(f'opset {opset} < 17: LayerNormalization needs opset 17')
    return opset


def _check_classes(seg_head: Optional[nn.Module], class_names: Sequence[str],
                   class_colors: Sequence[Sequence[int]]) -> None:
    """Raise ValueError when the class names or colours do not fit the segmentation head."""
    if (seg_head is None) != (not class_names):
        raise ValueError('class_names must be given exactly when a segmentation head is '
                         f'exported (head: {seg_head is not None}, {len(class_names)} names)')
    if seg_head is not None and len(class_names) != seg_head.num_classes:
        raise ValueError(f'{len(class_names)} class names for a head with '
                         f'{seg_head.num_classes} classes')
    if class_colors and len(class_colors) != len(class_names):
        raise ValueError(f'{len(class_colors)} class colours for {len(class_names)} classes')


def _warn_untrained(output_path: str) -> None:
    """Log, loudly, that a randomly initialised model is being exported."""
    _logger.warning('!' * 79)
    _logger.warning('EXPORTING A RANDOMLY INITIALISED MODEL (trained: false) to %s: its '
                    'features, depth and segmentation are meaningless; for the node demo '
                    'and tests only', output_path)
    _logger.warning('!' * 79)


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
    opset = _checked_opset(exporter, opset)
    _check_classes(seg_head, class_names, class_colors)
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
        _warn_untrained(output_path)
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
