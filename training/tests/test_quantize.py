"""Static int8 quantisation: a tiny exported model quantised, gated, written or refused."""

import hashlib
import json
import os

import numpy as np
import onnx
from onnx import numpy_helper, TensorProto
import pytest
import torch

from training.data.label_layouts import YCBV_CLASSES
from training.eval.quantization_gates import GateReport
from training.export.exporter import export_onnx
from training.export.quantize import COMPLETION_HEAD_MODULES, group_of
from training.export.quantize import main as quantize_main
from training.export.weight_storage import restore_weights_fp32, store_weights_fp16
from training.models import build_model
from training.models.completion_head import build_completion_head
from training.models.descriptor_head import DescriptorHead
from training.models.heads import build_seg_head
from vd_ros.core.depth_codec import read_depth, read_rgb
from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel

SIZE = (56, 70)
# Two training frames calibrate; two 7-Scenes and two YCB-Video frames (labelled) are held out.
SPLIT = ['data.sources=[{type: 7scenes, root: 7scenes_redkitchen, select: [0, 200, 100]}]',
         'holdout.sources=[{type: 7scenes, root: 7scenes_redkitchen, select: [350, 400, 49]},'
         ' {type: ycbv, root: ycbv/frames/0002, select: [10, 12]}]']


@pytest.fixture(scope='module')
def tiny_export(tmp_path_factory):
    """Export a 2-block model with a linear YCB-Video head, weights stored as float16."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model({'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}}).eval()
    head = build_seg_head('linear', model.feature_dim, len(YCBV_CLASSES)).eval()
    path = str(tmp_path_factory.mktemp('quantize') / 'tiny.onnx')
    export_onnx(model, head, path, SIZE, YCBV_CLASSES, training_info={'data': 'none'},
                fp16_weights=True)
    return path


@pytest.fixture(scope='module')
def tiny_uncertain_export(tmp_path_factory):
    """Export a 2-block model with a completion head that has an uncertainty branch."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model({'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}}).eval()
    head = build_completion_head(model, {'uncertainty': True, 'channels': [8, 8, 8],
                                         'feature_channels': 4}).eval()
    path = str(tmp_path_factory.mktemp('quantize_unc') / 'tiny_unc.onnx')
    export_onnx(model, None, path, SIZE, training_info={'data': 'none'}, completion_head=head)
    return path


@pytest.fixture(scope='module')
def tiny_descriptor_export(tmp_path_factory):
    """Export a 2-block model with a small descriptor head (contract v4)."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model({'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}}).eval()
    head = DescriptorHead(model.feature_dim, dim=16, channels=8, stem_channels=4).eval()
    path = str(tmp_path_factory.mktemp('quantize_desc') / 'tiny_desc.onnx')
    export_onnx(model, None, path, SIZE, training_info={'data': 'none'}, descriptor_head=head)
    return path


def quantize_args(parent: str, out: str, data: str, *extra: str) -> list[str]:
    """Return the command line of the tool for the tiny split."""
    return ['--model', parent, '--out', out, '--data', data, '--calibration-frames', '0',
            '--eval-frames', '0', '--threads', '1', *extra, *SPLIT]


def real_frame_inputs(data: str, contract):
    """Return a 7-Scenes frame outside calibration and gates, prepared as the node does."""
    stem = os.path.join(data, '7scenes_redkitchen', 'frame-000300')
    rgb, depth = read_rgb(stem + '.color.jpg'), read_depth(stem + '.depth.png', '7scenes')
    return prepare_inputs(rgb, depth, contract)[:2]


def test_int8_file_is_quantised_keeps_the_contract_and_stays_close(
        tiny_export, shared_data, tmp_path):
    """Check: gates pass, QDQ int8 weights, parent metadata + provenance, outputs close."""
    out = str(tmp_path / 'tiny_int8.onnx')
    assert quantize_main(quantize_args(tiny_export, out, shared_data)) == 0
    proto = onnx.load(out)
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count('QuantizeLinear') > 0 and ops.count('DequantizeLinear') > 0
    int8_weights = [tensor for tensor in proto.graph.initializer
                    if tensor.data_type == TensorProto.INT8 and len(tensor.dims) >= 2]
    assert int8_weights, 'no int8 weight tensor in the quantised graph'
    parent, child = VDModel(tiny_export, ['cpu']), VDModel(out, ['cpu'])
    parent_meta = json.loads(parent.session.get_modelmeta().custom_metadata_map['vd_ros'])
    child_meta = json.loads(child.session.get_modelmeta().custom_metadata_map['vd_ros'])
    quantization = child_meta['training'].pop('quantization')
    assert child_meta == parent_meta
    with open(tiny_export, 'rb') as stream:
        assert quantization['parent_sha256'] == hashlib.sha256(stream.read()).hexdigest()
    assert quantization['precision'] == 'int8' and quantization['format'] == 'QDQ'
    assert quantization['gates']['passed'] and quantization['gates']['seg_frames'] == 2
    rgb_in, pde = real_frame_inputs(shared_data, parent.contract)
    ours, theirs = parent.run(rgb_in, pde), child.run(rgb_in, pde)
    features, quantised = ours['features'][0], theirs['features'][0]  # (D, h, w)
    cosine = (features * quantised).sum(0) / (
        np.linalg.norm(features, axis=0) * np.linalg.norm(quantised, axis=0))  # (h, w)
    assert cosine.mean() >= 0.98
    assert np.abs(features - quantised).max() > 0, 'int8 outputs equal the float ones exactly'
    depth_error = np.abs(ours['depth'] - theirs['depth']).max()
    assert depth_error <= 0.05 * np.abs(ours['depth']).max()


def test_failed_gate_writes_nothing_and_exits_2(tiny_export, shared_data, tmp_path, caplog):
    """Check: a cosine gate no int8 model meets refuses with status 2 and a clear reason."""
    out = tmp_path / 'refused.onnx'
    status = quantize_main(quantize_args(tiny_export, str(out), shared_data,
                                         '--min-cosine', '1.0'))
    assert status == 2
    assert not out.exists()
    assert os.listdir(tmp_path) == [], 'the refused candidate was left behind'
    assert 'not written: the int8 model fails feature cosine similarity' in caplog.text


def test_unknown_float_group_is_refused(tiny_export, shared_data, tmp_path):
    """Check: a misspelt --keep-float group is an error naming the known groups."""
    with pytest.raises(ValueError, match='unknown --keep-float groups'):
        quantize_main(quantize_args(tiny_export, str(tmp_path / 'x.onnx'), shared_data,
                                    '--keep-float', 'patch_embeds'))


def test_restore_weights_fp32_undoes_fp16_storage():
    """Check: float16-stored weights come back as float32 initializers, casts gone."""
    weight = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node('MatMul', ['x', 'w'], ['y'])], 'g',
        [onnx.helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 64])],
        [onnx.helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 32])],
        [numpy_helper.from_array(weight, 'w')])
    proto = onnx.helper.make_model(graph)
    assert store_weights_fp16(proto) == 1
    assert restore_weights_fp32(proto) == 1
    assert [node.op_type for node in proto.graph.node] == ['MatMul']
    (restored,) = proto.graph.initializer
    assert restored.name == 'w' and restored.data_type == TensorProto.FLOAT
    np.testing.assert_array_equal(numpy_helper.to_array(restored),
                                  weight.astype(np.float16).astype(np.float32))


def test_gate_report_gates_every_pattern_and_only_the_overall_rmse():
    """Check: +2.5 % at one pattern fails, +1.9 % passes, a per-dataset row is not gated."""
    limits = {'rmse': 0.02, 'miou': 1.0, 'cosine': 0.98}
    rows = {'1500 pts': (100.0, 101.9), 'ycbv / 1500 pts': (10.0, 11.0)}
    assert GateReport(rows, (60.0, 59.1), (0.99, 0.985), 3, 2, limits).failures() == []
    rows['150 pts'] = (200.0, 205.0)
    failed = GateReport(rows, (60.0, 58.9), (0.97, 0.96), 3, 2, limits).failures()
    assert len(failed) == 3
    assert failed[0].startswith('completion RMSE at 150 pts (205.0 mm vs 200.0 mm, +2.50 %')
    assert failed[1].startswith('segmentation mIoU (58.90 % vs 60.00 %')
    assert failed[2].startswith('feature cosine similarity (0.970000 < 0.98')


def test_gate_report_gates_the_descriptors_of_a_file_that_has_them():
    """Check: descriptor cosine 0.97 fails with the features' limit; none without the output."""
    limits = {'rmse': 0.02, 'miou': 1.0, 'cosine': 0.98}
    plain = GateReport({}, None, (0.99, 0.99), 3, 0, limits)
    assert plain.passed and 'descriptor' not in plain.text()
    assert plain.to_dict()['descriptor_cosine'] is None
    report = GateReport({}, None, (0.99, 0.99), 3, 0, limits, None, (0.97, 0.95))
    assert report.failures() == ['descriptor cosine similarity (0.970000 < 0.98)']
    assert '| descriptor cosine, mean (lowest frame) | 1 | 0.97000 (0.95000) |' in report.text()
    assert report.to_dict()['descriptor_cosine'] == [0.97, 0.95]


def test_uncertainty_model_is_gated_on_its_confidence(tiny_uncertain_export, shared_data,
                                                      tmp_path, caplog):
    """Check: depth_uncertainty gets the sparsification / calibration gates; impossible refuses."""
    out = str(tmp_path / 'unc_int8.onnx')
    assert quantize_main(quantize_args(tiny_uncertain_export, out, shared_data)) == 0
    meta = json.loads(VDModel(out, ['cpu']).session.get_modelmeta().custom_metadata_map['vd_ros'])
    gates = meta['training']['quantization']['gates']
    assert gates['passed'] and len(gates['confidence']) == 4  # every completion pattern
    for figures in gates['confidence'].values():
        assert set(figures) == {'half_ratio', 'scale'} and all(
            np.isfinite(value).all() for value in figures.values())
    refused = tmp_path / 'refused.onnx'
    assert quantize_main(quantize_args(tiny_uncertain_export, str(refused), shared_data,
                                       '--max-scale-change', '-1')) == 2
    assert not refused.exists()
    assert 'fails calibration ratio at' in caplog.text


def head_conv_weights(path: str) -> set:
    """Return the op types that feed the weights of the descriptor head's Conv nodes."""
    proto = onnx.load(path)
    producers = {name: node.op_type for node in proto.graph.node for name in node.output}
    producers.update((tensor.name, 'float initializer') for tensor in proto.graph.initializer
                     if tensor.data_type == TensorProto.FLOAT)
    return {producers.get(node.input[1]) for node in proto.graph.node
            if node.op_type == 'Conv' and '/descriptor_head/' in node.name}


def test_descriptor_model_is_gated_on_its_descriptors(tiny_descriptor_export, shared_data,
                                                      tmp_path, caplog):
    """Check: a v4 file gets the descriptor gate; its head is quantised or kept float."""
    for keep, weights in ((['patch_embed', 'descriptor_head'], {'float initializer'}),
                          (['patch_embed'], {'DequantizeLinear'})):
        out = str(tmp_path / f'desc_int8_{len(keep)}.onnx')
        args = quantize_args(tiny_descriptor_export, out, shared_data)
        assert quantize_main([*args, '--keep-float', *keep]) == 0
        meta = json.loads(
            VDModel(out, ['cpu']).session.get_modelmeta().custom_metadata_map['vd_ros'])
        gates = meta['training']['quantization']['gates']
        assert gates['passed'] and min(gates['descriptor_cosine']) >= 0.98
        assert head_conv_weights(out) == weights
    refused = tmp_path / 'refused.onnx'
    assert quantize_main([*quantize_args(tiny_descriptor_export, str(refused), shared_data),
                          '--min-cosine', '1.01']) == 2
    assert not refused.exists() and 'descriptor cosine similarity' in caplog.text


def test_gate_report_gates_the_confidence_ratios():
    """Check: sparsification ratio +0.03 fails, +0.01 passes; scale: relative, two-sided."""
    limits = {'rmse': 0.02, 'miou': 1.0, 'cosine': 0.98, 'half_ratio': 0.02, 'scale': 0.05}
    confidence = {'150 pts': {'half_ratio': (0.50, 0.51), 'scale': (1.00, 0.96)},
                  '1500 pts': {'half_ratio': (0.60, 0.55), 'scale': (1.00, 1.04)}}
    report = GateReport({}, None, (0.99, 0.99), 3, 0, limits, confidence)
    assert report.passed and 'sparsification ratio 150 pts | 0.500 | 0.510' in report.text()
    confidence['500 pts'] = {'half_ratio': (0.48, 0.47), 'scale': (2.925, 2.823)}  # -3.5 %
    assert GateReport({}, None, (0.99, 0.99), 3, 0, limits, confidence).passed
    confidence['150 pts'] = {'half_ratio': (0.50, 0.53), 'scale': (2.00, 1.88)}
    failed = GateReport({}, None, (0.99, 0.99), 3, 0, limits, confidence).failures()
    assert failed == ['sparsification ratio at 150 pts (0.530 vs 0.500, more than +0.02)',
                      'calibration ratio at 150 pts (1.880 vs 2.000, -6.00 %, more than 5 % '
                      'apart)']


def test_completion_head_nodes_are_found_by_their_module_names():
    """Check: every CompletionHead module is listed; '/stem/...' nodes are the head's."""
    model = build_model({'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}})
    head = build_completion_head(model, {'uncertainty': True})
    assert {name for name, _ in head.named_children()} <= set(COMPLETION_HEAD_MODULES)
    for name in ('/stem/stem.0/stem.0.0/Conv', '/uncertainty/uncertainty.1/Conv',
                 '/completion_head/residual/Conv'):
        assert group_of(onnx.helper.make_node('Conv', ['x', 'w'], ['y'], name=name),
                        {'w'}) == 'completion_head'
    assert group_of(onnx.helper.make_node('MatMul', ['x', 'w'], ['y'],
                                          name='/blocks.0/mlp/fc1/MatMul'), {'w'}) is None
    assert group_of(onnx.helper.make_node('Conv', ['x', 'w'], ['y'],
                                          name='/descriptor_head/stem/stem.0/stem.0.0/Conv'),
                    {'w'}) == 'descriptor_head'  # not the completion head's 'stem'
