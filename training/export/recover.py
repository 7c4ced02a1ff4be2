"""Recover PyTorch checkpoints from an exported model file, to warm-start training from it.

``runs/`` is not in git, so a fresh checkout holds no pretraining checkpoint, only the shipped
ONNX file. :func:`recover` rebuilds its modules with its weights and :func:`write_checkpoints`
turns them into the three files training reads, with the writers of ``training.checkpoint``
(``python -m training.onnx_recover`` is the command line):

- ``pretrain.pt``: a pretraining checkpoint (``train.init_from``, ``--checkpoint`` of
  train_heads, train_completion, evaluate and export_onnx), step = the file's pretraining
  steps, so the provenance of what is trained from it continues the count;
- ``completion_head.pt``: the completion head (``completion.init_from``, ``--completion-head``);
- ``<kind>.pt``: the segmentation head (``--heads``).

How: the exporter renames and transforms weights (linear weights are transposed into MatMul
constants, each convolution followed by BatchNorm is fused with it). So the same modules are
built from the file's metadata, every weight is set to a distinct random tag, and that model
is exported with the same exporter, torch and opset; the export has the same constant names as
the shipped file (checked), and each tagged constant is matched to the weight it came from (as
is, transposed, or fused with its BatchNorm). The shipped values then go back to those weights.
A fused BatchNorm's statistics are lost; it comes back with the mean and variance of its input
over the in-repo sample frames (``vd_ros/sample_data``, at three depth densities), and weight
and bias set so that eval mode computes exactly the fused function: so training mode, which
normalises by batch statistics (a warm-started pretraining run), starts close to it too.
Weights the exported graph never reads (the decoder's coarse depth heads) keep their seeded
random initialisation and are listed. Finally the recovered modules are run against ONNX
Runtime on the shipped file on a random input; outputs must agree.
"""

import glob
import logging
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import numpy_helper
import onnxruntime as ort
import torch
from torch import nn

from training.checkpoint.completion import completion_state
from training.checkpoint.files import atomic_save
from training.checkpoint.heads import save_heads_checkpoint
from training.checkpoint.pretrain import pretrain_state
from training.data.label_layouts import LABEL_LAYOUTS
from training.data.shared_paths import report_path
from training.export.exporter import export_onnx, ExportGraph
from training.models import build_model, VanishingDepth
from training.models.completion_head import build_completion_head
from training.models.heads import build_seg_head
from vd_ros import SAMPLE_DIR
from vd_ros.core.contract import METADATA_KEY, ModelContract, parse_metadata
from vd_ros.core.depth_codec import read_depth, read_rgb
from vd_ros.core.preprocess import prepare_inputs

_logger = logging.getLogger(__name__)

FP16_SUFFIX = '__fp16'
DEFAULT_FPN_CHANNELS = 64  # train_heads' heads.fpn_channels when the file does not say
MATCH_RTOL = 1e-5
MAX_OUTPUT_ERROR = 1e-3  # relative to each output's largest magnitude
CALIBRATION_KEPT = (1.0, 0.3, 0.05)  # shares of valid depth pixels kept per sample frame


class RecoveryError(ValueError):
    """The file cannot be mapped back onto the modules this code builds."""


def read_initializers(proto: onnx.ModelProto) -> Dict[str, np.ndarray]:
    """Return the graph's constants as float32 arrays under their pre-float16 names."""
    values = {}
    for tensor in proto.graph.initializer:
        name = tensor.name[:-len(FP16_SUFFIX)] if tensor.name.endswith(FP16_SUFFIX) \
            else tensor.name
        array = numpy_helper.to_array(tensor)
        values[name] = array.astype(np.float32) if array.dtype == np.float16 else array
    return values


def build_modules(contract: ModelContract) -> Tuple[VanishingDepth, Optional[nn.Module],
                                                    Optional[nn.Module]]:
    """Build model, segmentation head and completion head as the file's metadata describes."""
    info = contract.training
    if 'model_config' not in info:
        raise RecoveryError('the file has no training.model_config in its metadata (exported '
                            'before provenance was recorded): its modules cannot be rebuilt')
    torch.manual_seed(0)
    model = build_model(info['model_config']).eval()
    seg_head = None
    if 'seg_logits' in contract.outputs:
        heads = info.get('heads') or {}
        config = heads.get('head_config') or {
            'kind': heads.get('kind', 'linear'), 'feature_dim': model.feature_dim,
            'num_classes': len(contract.class_names)}
        if config['kind'] == 'fpn' and 'channels' not in config:
            config['channels'] = DEFAULT_FPN_CHANNELS
        seg_head = build_seg_head(**config).eval()
    completion = None
    if 'completed_depth' in contract.outputs:
        completion = build_completion_head(
            model, (info.get('completion_head') or {}).get('head_config')).eval()
    return model, seg_head, completion


def _conv_bn_pairs(graph: nn.Module) -> Iterator[Tuple[str, nn.Conv2d, str, nn.BatchNorm2d]]:
    """Yield (conv name, conv, bn name, bn) for each Conv2d directly followed by BatchNorm2d."""
    for prefix, module in graph.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                yield f'{prefix}.{conv_name}', conv, f'{prefix}.{bn_name}', bn


def tag_weights(graph: nn.Module, seed: int = 1) -> None:
    """Give every float weight and statistic of ``graph`` distinct random values, in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in graph.state_dict().items():
            if not tensor.is_floating_point():
                continue
            tag = torch.rand(tensor.shape, generator=generator) + 0.5 if \
                name.endswith('running_var') else torch.randn(tensor.shape, generator=generator)
            tensor.copy_(tag)


def candidates(graph: nn.Module) -> List[Tuple[str, str, torch.Tensor]]:
    """Return (state dict key, how, tensor) for every form a weight can take in the export.

    ``how`` is ``same``, ``transposed`` (2-D weights used by MatMul), ``fused weight`` or
    ``fused bias`` (a Conv2d folded with the BatchNorm2d after it; the key is the conv's).
    """
    found = []
    for key, tensor in graph.state_dict().items():
        if not tensor.is_floating_point():
            continue
        found.append((key, 'same', tensor))
        if tensor.dim() == 2:
            found.append((key, 'transposed', tensor.t()))
    for conv_name, conv, _, bn in _conv_bn_pairs(graph):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C,)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        found.append((conv_name, 'fused weight', conv.weight * scale.view(-1, 1, 1, 1)))
        found.append((conv_name, 'fused bias', (bias - bn.running_mean) * scale + bn.bias))
    return [(key, how, tensor.detach().numpy()) for key, how, tensor in found]


def match_constants(tagged: Dict[str, np.ndarray], graph: nn.Module,
                    shipped: Dict[str, np.ndarray]) -> Dict[str, Tuple[str, str]]:
    """Map each constant of the tagged export to the weight (and form) it came from.

    Args:
        tagged: Constants of the export of the tagged ``graph``.
        graph: The tagged modules.
        shipped: Constants of the file being recovered (same names expected).

    Returns:
        Constant name -> (state dict key, how); constants that are no weight are left out
        (they must then be equal in both files).

    Raises:
        RecoveryError: The two exports differ in names or shapes, or a constant matches no
            weight and differs between the files.
    """
    if set(tagged) != set(shipped):
        extra, missing = sorted(set(tagged) - set(shipped)), sorted(set(shipped) - set(tagged))
        raise RecoveryError(
            f'this code exports other constants than the file: {len(missing)} only in the '
            f'file ({missing[:5]}), {len(extra)} only in the re-export ({extra[:5]}); recover '
            'with the revision and torch version the file records (training.git_revision, '
            'training.export.torch)')
    forms = candidates(graph)
    matched = {}
    for name, value in tagged.items():
        if value.shape != shipped[name].shape:
            raise RecoveryError(f'constant {name}: shape {value.shape} in the re-export, '
                                f'{shipped[name].shape} in the file')
        hits = [(key, how) for key, how, form in forms if form.shape == value.shape
                and np.allclose(form, value, rtol=MATCH_RTOL, atol=MATCH_RTOL)]
        if len(hits) > 1:
            raise RecoveryError(f'constant {name} matches several weights: {hits}')
        if hits:
            matched[name] = hits[0]
        elif value.dtype.kind == 'f' and not np.array_equal(value, shipped[name]):
            raise RecoveryError(f'constant {name} {value.shape} comes from no single weight '
                                '(a folded combination this tool does not invert) and differs '
                                'between the files')
    return matched


def assign_weights(graph: nn.Module, matched: Dict[str, Tuple[str, str]],
                   shipped: Dict[str, np.ndarray]) -> Tuple[List[str], List[str]]:
    """Write the shipped constants into ``graph``'s weights.

    Returns:
        ``(keys left unset, names of the BatchNorm2d modules that were folded)``.

    Raises:
        RecoveryError: Two constants claim one weight with different values.
    """
    state = graph.state_dict()
    batch_norms = {conv: (bn_name, bn) for conv, _, bn_name, bn in _conv_bn_pairs(graph)}
    written: Dict[str, np.ndarray] = {}

    def write(key: str, value: np.ndarray) -> None:
        if key in written and not np.array_equal(written[key], value):
            raise RecoveryError(f'weight {key} is read by two constants with different values')
        written[key] = value
        state[key].copy_(torch.from_numpy(np.array(value, np.float32)))

    with torch.no_grad():
        for name, (key, how) in sorted(matched.items()):
            value = shipped[name]
            if how == 'same':
                write(key, value)
            elif how == 'transposed':
                write(key, value.T)
            else:
                bn, module = batch_norms[key]
                for stat, neutral in (('running_mean', 0.0), ('running_var', 1.0 - module.eps),
                                      ('weight', 1.0)):
                    write(f'{bn}.{stat}', np.full(state[f'{bn}.{stat}'].shape, neutral,
                                                  np.float32))
                if how == 'fused weight':
                    write(f'{key}.weight', value)
                elif f'{key}.bias' in state:
                    write(f'{key}.bias', value)
                    write(f'{bn}.bias', np.zeros_like(value))
                else:
                    write(f'{bn}.bias', value)
    unset = [key for key, tensor in state.items()
             if tensor.is_floating_point() and key not in written]
    folded = sorted({batch_norms[key][0] for key, how in matched.values()
                     if how.startswith('fused')})
    return unset, folded


def calibration_inputs(contract: ModelContract,
                       seed: int = 0) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Return (rgb, pde) model inputs of the in-repo sample frames at a few depth densities."""
    generator = np.random.default_rng(seed)
    inputs = []
    for color in sorted(glob.glob(os.path.join(SAMPLE_DIR, 'color', '*.jpg'))):
        rgb = read_rgb(color)
        depth = read_depth(color.replace('color', 'depth').replace('.jpg', '.png'), 'mm')
        for kept in CALIBRATION_KEPT:
            sparse = np.where(generator.random(depth.shape) < kept, depth, 0.0)
            rgb_in, pde, _ = prepare_inputs(rgb, sparse.astype(np.float32), contract)
            inputs.append((torch.from_numpy(rgb_in), torch.from_numpy(pde)))
    return inputs


def calibrate_batchnorm(graph: ExportGraph, fused: Sequence[str],
                        inputs: Sequence[Tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Give folded BatchNorms statistics measured on ``inputs``, keeping eval outputs equal.

    A folded BatchNorm comes back as the identity plus a bias; in training mode it would
    normalise with batch statistics, far from that. Each one gets the mean ``m`` and variance
    ``v`` of its input over ``inputs``, weight ``sqrt(v + eps)`` and bias ``bias + m``: the
    same function in eval mode, and close to it in training mode.

    Args:
        graph: Recovered modules.
        fused: Names of the BatchNorm2d modules that were folded.
        inputs: (rgb, pde) pairs, as :func:`calibration_inputs` makes.
    """
    modules = dict(graph.named_modules())
    sums: Dict[str, List[torch.Tensor]] = {name: [] for name in fused}
    hooks = [modules[name].register_forward_hook(
        lambda module, args, out, name=name: sums[name].append(args[0].transpose(0, 1).reshape(
            args[0].shape[1], -1)))  # (C, B * h * w)
        for name in fused]
    with torch.no_grad():
        for rgb, pde in inputs:
            graph.eval()(rgb, pde)
        for hook in hooks:
            hook.remove()
        for name in fused:
            values = torch.cat(sums[name], dim=1)  # (C, N)
            mean, var = values.mean(dim=1), values.var(dim=1)
            bn = modules[name]
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.add_(mean)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def check_outputs(graph: ExportGraph, onnx_path: str, contract: ModelContract,
                  seed: int = 0) -> Dict[str, float]:
    """Run recovered modules and ONNX Runtime on one random input; return relative errors.

    Raises:
        RecoveryError: An output differs by more than ``MAX_OUTPUT_ERROR`` of its magnitude.
    """
    height, width = contract.input_size
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.rand(1, 3, height, width, generator=generator)  # (1, 3, H, W)
    pde = torch.rand(1, contract.pde.channels, height, width, generator=generator) * 2 - 1
    with torch.no_grad():
        mine = [t.numpy() for t in graph.eval()(rgb, pde)]
    session = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    theirs = session.run(list(contract.outputs), {'rgb': rgb.numpy(), 'pde': pde.numpy()})
    errors = {}
    for name, a, b in zip(contract.outputs, mine, theirs):
        errors[name] = float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-6))
        if errors[name] > MAX_OUTPUT_ERROR:
            raise RecoveryError(f'output {name} of the recovered modules differs from the '
                                f'file by {errors[name]:.2e} of its magnitude')
    return errors


def read_contract(onnx_path: str, proto: Optional[onnx.ModelProto] = None) -> ModelContract:
    """Return the model contract in the metadata of ``onnx_path`` (``proto`` if already read).

    Raises:
        RecoveryError: A file without vd_ros metadata.
    """
    proto = onnx.load(onnx_path, load_external_data=False) if proto is None else proto
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise RecoveryError(f'{onnx_path} has no {METADATA_KEY!r} metadata: not a vd_ros model')
    return parse_metadata(props[METADATA_KEY], onnx_path)


def recover(onnx_path: str, work_dir: str) -> Tuple[ExportGraph, ModelContract, Dict[str, Any]]:
    """Rebuild the exported modules of ``onnx_path`` with its weights (module docstring).

    Args:
        onnx_path: A file written by ``training.export_onnx``.
        work_dir: Folder for the temporary re-export.

    Returns:
        ``(modules as an ExportGraph in eval mode, the file's contract, report)``; the report
        has ``unset`` (weights not in the file), ``folded`` (the BatchNorms that were
        folded, now calibrated) and ``output_errors``.

    Raises:
        RecoveryError: See :func:`match_constants`, :func:`assign_weights`,
            :func:`check_outputs`; also a file without vd_ros metadata.
    """
    proto = onnx.load(onnx_path)
    contract = read_contract(onnx_path, proto)
    export = contract.training.get('export') or {}
    if export.get('precision', 'fp32') != 'fp32':
        raise RecoveryError(f'{onnx_path} computes in {export["precision"]}: only float32 '
                            'graphs (optionally with float16 weight storage) are recovered')
    model, seg_head, completion = build_modules(contract)
    graph = ExportGraph(model, seg_head, torch.float32, completion)
    initial = {key: value.clone() for key, value in graph.state_dict().items()}  # seeded init
    tag_weights(graph)
    reexport = os.path.join(work_dir, 'tagged.onnx')
    export_onnx(model, seg_head, reexport, contract.input_size, contract.class_names,
                trained=True, exporter=export.get('exporter', 'torchscript'),
                opset=export.get('opset'), completion_head=completion,
                class_colors=contract.class_colors)
    shipped = read_initializers(proto)
    matched = match_constants(read_initializers(onnx.load(reexport)), graph, shipped)
    unset, folded = assign_weights(graph, matched, shipped)
    state = graph.state_dict()
    with torch.no_grad():
        for key in unset:  # never read by the export: back to the seeded initialisation
            state[key].copy_(initial[key])
    calibrate_batchnorm(graph, folded, calibration_inputs(contract))
    errors = check_outputs(graph, onnx_path, contract)
    return graph.eval(), contract, {'unset': unset, 'folded': folded, 'output_errors': errors}


def write_checkpoints(graph: ExportGraph, contract: ModelContract, onnx_path: str,
                      out_dir: str) -> Dict[str, str]:
    """Write pretrain.pt and, where present, completion_head.pt and the segmentation head file.

    Returns:
        Part name -> path written.
    """
    info = contract.training
    steps = int(info.get('steps', 0))
    model_config = graph.model.config
    source = {'onnx': report_path(onnx_path), 'steps': steps,
              'checkpoint': info.get('checkpoint'), 'date': info.get('date'),
              'git_revision': info.get('git_revision')}
    paths = {'pretrain': os.path.join(out_dir, 'pretrain.pt')}
    data = info.get('data') if isinstance(info.get('data'), list) else []
    sources = [dict(zip(('type', 'root'), item.split(':', 1))) for item in data]  # 'type:root'
    atomic_save(pretrain_state(graph.model, steps, {
        'model': model_config, 'data': {'sources': sources}, 'recovered_from': source}),
        paths['pretrain'])
    if graph.completion_head is not None:
        head_info = info.get('completion_head') or {}
        paths['completion'] = os.path.join(out_dir, 'completion_head.pt')
        encoder = {'checkpoint': report_path(paths['pretrain']), 'step': steps,
                   'model_config': model_config}
        atomic_save(completion_state(
            graph.completion_head, head_info.get('step', 0), encoder,
            [head_info['val']] if head_info.get('val') else [], recovered_from=source),
            paths['completion'])
    if graph.seg_head is not None:
        heads = info.get('heads') or {}
        layout = LABEL_LAYOUTS.get(heads.get('layout'))  # None for a user's class list
        paths['segmentation'] = os.path.join(out_dir, f'{graph.seg_head.config["kind"]}.pt')
        save_heads_checkpoint(
            paths['segmentation'], graph.seg_head, graph.model,
            class_names=list(contract.class_names), layout=heads.get('layout'),
            class_colors=[list(c) for c in contract.class_colors],
            ignore_id=layout.ignore_id if layout else None,
            input_size=list(contract.input_size),
            encoder_checkpoint=report_path(paths['pretrain']),
            training=heads.get('training'), metrics=heads.get('metrics'),
            recovered_from=source)
    return paths
