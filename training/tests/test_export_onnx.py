"""ONNX export: parity with eager torch on real frames, the contract, refusals.

Parity tolerance (per output): ``max|onnx - torch| <= 1e-4 * max|torch| + 1e-5`` (relative to
the output's range, with a tiny absolute floor for near-zero outputs); fp16 exports against the
fp32 eager model: ``<= 2e-2 * max|torch| + 1e-3`` (float16 has an 11-bit mantissa, ~5e-4
relative per operation, accumulated over the network).
"""

import os

import numpy as np
import pytest
import torch

from training.checkpoint.formats import CheckpointMismatchError, HeadsMismatchError
from training.checkpoint.heads import save_heads_checkpoint
from training.data.label_layouts import YCBV_CLASSES
from training.export.exporter import export_onnx
from training.export_onnx import main as export_main
from training.models import build_model
from training.models.heads import build_seg_head
from vd_ros.core.depth_codec import read_depth, read_rgb
from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel

TINY_KWARGS = {'depth': 2, 'embed_dim': 64, 'num_heads': 2}
TINY_OVERRIDE = 'model.timm_kwargs={depth: 2, embed_dim: 64, num_heads: 2}'
SIZE = (112, 140)  # not 4:3: the letterbox pads the 7-Scenes frame
FRAME = 'frame-000120'


def tiny_model(seed: int = 0, **overrides):
    """Build the 2-block test model (position embedding for 224 x 224, resampled at run time)."""
    torch.manual_seed(seed)
    return build_model({'timm_kwargs': dict(TINY_KWARGS), **overrides}).eval()


def tiny_head(model, kind: str):
    """Build a YCB-Video head with non-trivial BatchNorm statistics."""
    torch.manual_seed(3)
    head = build_seg_head(kind, model.feature_dim, len(YCBV_CLASSES),
                          **({'channels': 16} if kind == 'fpn' else {}))
    for module in head.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return head.eval()


def frame_inputs(shared_data, contract):
    """Real 7-Scenes frame through the node's preprocessing."""
    stem = os.path.join(shared_data, '7scenes_redkitchen', FRAME)
    rgb = read_rgb(stem + '.color.jpg')
    depth = read_depth(stem + '.depth.png', '7scenes')
    rgb_in, pde, _ = prepare_inputs(rgb, depth, contract)
    return rgb_in, pde


def eager_outputs(model, head, rgb_in, pde):
    """Run the eager model through its public forward (an independent path)."""
    rgb, code = torch.from_numpy(rgb_in), torch.from_numpy(pde)
    with torch.no_grad():
        out = model(rgb, code)
        result = {'features': out['features'].numpy(), 'depth': out['depths'][0].numpy()}
        if head is not None:
            result['seg_logits'] = head(model.encode(rgb, code).maps).numpy()
    return result


def assert_close(onnx_out, torch_out, rel, atol):
    """Check every output with max|a - b| <= rel * max|b| + atol."""
    assert sorted(onnx_out) == sorted(torch_out)
    for name, expected in torch_out.items():
        actual = onnx_out[name]
        assert actual.shape == expected.shape, name
        scale = float(np.abs(expected).max())
        assert scale > 0, f'{name} is all zero: parity would be vacuous'
        error = float(np.abs(actual - expected).max())
        assert error <= rel * scale + atol, f'{name}: max error {error:.3g}, scale {scale:.3g}'


@pytest.fixture(scope='module')
def linear_export(tmp_path_factory):
    """Export a tiny model with a linear head once for several tests."""
    torch.set_num_threads(2)
    model = tiny_model()
    head = tiny_head(model, 'linear')
    path = str(tmp_path_factory.mktemp('export') / 'tiny.onnx')
    contract = export_onnx(model, head, path, SIZE, YCBV_CLASSES, trained=False,
                           training_info={'data': 'none', 'steps': 0})
    return model, head, path, contract


def test_linear_export_matches_eager_on_a_real_frame(linear_export, shared_data):
    """Check: linear export matches eager on a real frame."""
    model, head, path, _ = linear_export
    runtime = VDModel(path, providers=['cpu'], intra_op_threads=2)
    rgb_in, pde = frame_inputs(shared_data, runtime.contract)
    assert_close(runtime.run(rgb_in, pde), eager_outputs(model, head, rgb_in, pde), 1e-4, 1e-5)


def test_export_carries_the_contract(linear_export):
    """Check: export carries the contract."""
    model, _, path, contract = linear_export
    runtime = VDModel(path, providers=['cpu'])
    found = runtime.contract
    assert found == contract
    assert found.class_names == YCBV_CLASSES and not found.trained
    assert found.input_size == SIZE and found.patch_size == 14 and found.feature_dim == 64
    assert found.pde == model.pde_config and found.encoder == 'vit_small_patch14_dinov2'
    assert found.mean == pytest.approx(model.mean) and found.std == pytest.approx(model.std)
    assert runtime.output_names == ('features', 'depth', 'seg_logits')
    assert {'data', 'steps', 'export', 'model_config'} <= set(found.training)
    assert found.training['model_config']['timm_kwargs'] == TINY_KWARGS
    shapes = {arg.name: arg.shape for arg in runtime.session.get_outputs()}
    assert shapes == {'features': [1, 64, 8, 10], 'depth': [1, 1, 112, 140],
                      'seg_logits': [1, 22, 8, 10]}


def test_fpn_export_matches_eager_on_a_real_frame(shared_data, tmp_path):
    """Check: fpn export matches eager on a real frame."""
    model = tiny_model(seed=5)
    head = tiny_head(model, 'fpn')
    path = str(tmp_path / 'fpn.onnx')
    export_onnx(model, head, path, SIZE, YCBV_CLASSES)
    runtime = VDModel(path, providers=['cpu'], intra_op_threads=2)
    rgb_in, pde = frame_inputs(shared_data, runtime.contract)
    outputs = runtime.run(rgb_in, pde)
    assert outputs['seg_logits'].shape == (1, 22, 32, 40)
    assert_close(outputs, eager_outputs(model, head, rgb_in, pde), 1e-4, 1e-5)


def test_fp16_export_is_close_to_fp32_eager(linear_export, shared_data, tmp_path):
    """Check: fp16 export is close to fp32 eager."""
    model, head, _, _ = linear_export
    path = str(tmp_path / 'tiny_fp16.onnx')
    contract = export_onnx(model, head, path, SIZE, YCBV_CLASSES, fp16=True)
    assert contract.training['export']['precision'] == 'fp16'
    runtime = VDModel(path, providers=['cpu'], intra_op_threads=2)
    rgb_in, pde = frame_inputs(shared_data, runtime.contract)
    outputs = runtime.run(rgb_in, pde)
    expected = eager_outputs(model, head, rgb_in, pde)
    assert_close(outputs, expected, 2e-2, 1e-3)
    # The weights really are float16: not a bit-identical copy of the fp32 graph.
    assert np.abs(outputs['features'] - expected['features']).max() > 1e-6


def test_fp16_weight_storage_keeps_fp32_compute(linear_export, shared_data, tmp_path):
    """Check: --fp16-weights rounds the weights only (file about half, outputs within fp16)."""
    import onnx

    model, head, fp32_path, _ = linear_export
    path = str(tmp_path / 'tiny_fp16_weights.onnx')
    contract = export_onnx(model, head, path, SIZE, YCBV_CLASSES, fp16_weights=True)
    export = contract.training['export']
    assert (export['precision'], export['weights']) == ('fp32', 'fp16')
    assert os.path.getsize(path) < 0.6 * os.path.getsize(fp32_path)
    graph = onnx.load(path).graph
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
    runtime = VDModel(path, providers=['cpu'], intra_op_threads=2)
    rgb_in, pde = frame_inputs(shared_data, runtime.contract)
    outputs = runtime.run(rgb_in, pde)
    expected = eager_outputs(model, head, rgb_in, pde)
    assert_close(outputs, expected, 1e-2, 1e-3)  # only the weights' rounding differs
    assert np.abs(outputs['features'] - expected['features']).max() > 1e-6


@pytest.mark.slow
def test_dynamo_exporter_matches_eager(shared_data, tmp_path):
    """Check: dynamo exporter matches eager."""
    model = tiny_model(seed=2)
    path = str(tmp_path / 'dynamo.onnx')
    contract = export_onnx(model, None, path, SIZE, exporter='dynamo')
    assert contract.training['export']['opset'] == 18
    assert contract.outputs == ('features', 'depth')
    runtime = VDModel(path, providers=['cpu'], intra_op_threads=2)
    rgb_in, pde = frame_inputs(shared_data, runtime.contract)
    assert_close(runtime.run(rgb_in, pde), eager_outputs(model, None, rgb_in, pde), 1e-4, 1e-5)


def test_export_refuses_what_the_contract_cannot_carry(tmp_path):
    """Check: export refuses what the contract cannot carry."""
    model = tiny_model()
    head = tiny_head(model, 'linear')
    path = str(tmp_path / 'x.onnx')
    with pytest.raises(ValueError, match='3 class names for a head with 22 classes'):
        export_onnx(model, head, path, SIZE, ('a', 'b', 'c'))
    with pytest.raises(ValueError, match='class_names must be given exactly'):
        export_onnx(model, head, path, SIZE)
    with pytest.raises(ValueError, match=r'input size \[112, 150\] must be two positive'):
        export_onnx(model, None, path, (112, 150))
    model.drop_decoder()
    with pytest.raises(ValueError, match='contract requires the depth output'):
        export_onnx(model, None, path, SIZE)
    assert not os.path.exists(path)


def save_checkpoint(path, model, step=3, with_config=True):
    """Write a checkpoint in training/train.py's layout (or a bare state dict)."""
    state = {'format': 'test', 'step': step, 'model': model.state_dict(),
             'model_config': model.config} if with_config else model.state_dict()
    torch.save(state, path)


def test_cli_refuses_a_checkpoint_of_another_config(tmp_path):
    """Check: cli refuses a checkpoint of another config."""
    path = str(tmp_path / 'ckpt.pt')
    save_checkpoint(path, tiny_model())
    out = str(tmp_path / 'x.onnx')
    base = ['--checkpoint', path, '--output', out, '--input-size', *map(str, SIZE)]
    with pytest.raises(CheckpointMismatchError, match=r'ckpt\.pt does not match the config: '
                       r'model\.timm_kwargs: config \{.*embed_dim.: 32'):
        export_main(base + ['model.timm_kwargs={depth: 2, embed_dim: 32, num_heads: 2}'])
    with pytest.raises(CheckpointMismatchError, match=r'model\.pde\.temperature: config 0\.001'):
        export_main(base + [TINY_OVERRIDE, 'model.pde.temperature=1e-3'])
    with pytest.raises(CheckpointMismatchError, match=r"model\.encoder: config 'vit_small_patch14"
                       r"_reg4_dinov2', checkpoint 'vit_small_patch14_dinov2'"):
        export_main(base + [TINY_OVERRIDE, 'model.encoder=vit_small_patch14_reg4_dinov2'])
    bare = str(tmp_path / 'bare.pt')
    save_checkpoint(bare, tiny_model(), with_config=False)
    with pytest.raises(CheckpointMismatchError, match=r'bare\.pt does not fit the model .*shape '
                       r'mismatches.*adapter\.vit\.patch_embed\.proj\.weight \(64, 32, 14, 14\) '
                       r'vs model \(64, 16, 14, 14\)'):
        export_main(['--checkpoint', bare, '--output', out, TINY_OVERRIDE,
                     'model.pde.channels=16'])
    assert not os.path.exists(out)


def test_cli_exports_a_checkpoint_with_its_heads(tmp_path, shared_data):
    """Check: cli exports a checkpoint with its heads."""
    trained = tiny_model(seed=7)
    path = str(tmp_path / 'ckpt.pt')
    save_checkpoint(path, trained, step=42)
    head = tiny_head(trained, 'linear')
    heads_path = str(tmp_path / 'linear.pt')
    save_heads_checkpoint(heads_path, head, trained, class_names=list(YCBV_CLASSES),
                          layout='ycbv', training={'steps': 5})
    out = str(tmp_path / 'vd.onnx')
    size = ['--input-size', *map(str, SIZE)]
    with pytest.raises(HeadsMismatchError, match='linear.pt: head was trained on encoder'):
        export_main(['--heads', heads_path, '--output', out, *size, TINY_OVERRIDE])
    assert export_main(['--checkpoint', path, '--heads', heads_path, '--output', out, *size,
                        TINY_OVERRIDE]) == 0
    runtime = VDModel(out, providers=['cpu'], intra_op_threads=2)
    contract = runtime.contract
    assert contract.trained and contract.training['steps'] == 42
    assert contract.class_names == YCBV_CLASSES
    assert contract.training['heads']['layout'] == 'ycbv'
    rgb_in, pde = frame_inputs(shared_data, contract)
    assert_close(runtime.run(rgb_in, pde), eager_outputs(trained, head, rgb_in, pde), 1e-4,
                 1e-5)


def test_cli_untrained_head_exports_every_output(tmp_path):
    """Check: --untrained-head gives seg_logits with the layout's classes, marked untrained."""
    out = str(tmp_path / 'vd.onnx')
    assert export_main(['--untrained-head', 'ycbv', '--output', out,
                        '--input-size', *map(str, SIZE), TINY_OVERRIDE]) == 0
    runtime = VDModel(out, providers=['cpu'])
    contract = runtime.contract
    assert not contract.trained and contract.class_names == YCBV_CLASSES
    assert contract.outputs == ('features', 'depth', 'seg_logits')
    assert contract.training['heads'] == {'kind': 'linear', 'layout': 'ycbv',
                                          'training': 'none (random initialisation)'}
    with pytest.raises(SystemExit):
        export_main(['--untrained-head', 'ycbv', '--heads', 'h.pt', '--output', out])
