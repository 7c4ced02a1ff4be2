"""training.export.recover: an exported file back into checkpoints that re-export to the same file.

A tiny model with an FPN segmentation head (BatchNorm statistics that are not the identity)
and a completion head is exported with float16 weight storage, as the shipped model is. The
recovered checkpoints go through the normal loaders and export again; both files must give the
same outputs on one input (tolerance 1e-5 of each output's magnitude: the same float16-rounded
weights, BatchNorm folded once or twice).
"""

import numpy as np
import onnx
from onnx import helper
import onnxruntime as ort
import pytest
import torch

from training.checkpoint.completion import load_completion_head
from training.checkpoint.files import load_checkpoint
from training.checkpoint.formats import COMPLETION_FORMAT, PRETRAIN_FORMAT
from training.checkpoint.heads import load_heads_checkpoint, save_heads_checkpoint
from training.checkpoint.model import build_checked_model, read_model_checkpoint
from training.data.label_layouts import YCBV_CLASSES
from training.export.recover import calibration_inputs, recover, RecoveryError
from training.export_onnx import main as export_main
from training.models import build_model
from training.models.completion_head import build_completion_head
from training.models.heads import build_seg_head
from training.onnx_recover import main as recover_main
from vd_ros.core.contract import METADATA_KEY, parse_metadata

SIZE = (42, 56)
MODEL = {'img_size': list(SIZE), 'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}}
OVERRIDES = ['model.timm_kwargs={depth: 2, embed_dim: 64, num_heads: 2}',
             f'model.img_size=[{SIZE[0]},{SIZE[1]}]']
STEP = 7
COLOURS = [[i, 2 * i, 3 * i] for i in range(len(YCBV_CLASSES))]


@pytest.fixture(scope='module')
def exported(tmp_path_factory, randomise_weights):
    """Checkpoint + FPN head + completion head files, and their fp16-weight export."""
    folder = tmp_path_factory.mktemp('recover')
    torch.manual_seed(0)
    model = build_model(MODEL).eval()
    randomise_weights(model, 1)
    torch.save({'step': STEP, 'model': model.state_dict(), 'model_config': model.config,
                'config': {'data': {'sources': [{'type': 'open3d', 'root': 'open3d_rgbd'}]}}},
               folder / 'pretrain.pt')
    seg = build_seg_head('fpn', model.feature_dim, len(YCBV_CLASSES), channels=16)
    randomise_weights(seg, 2)
    save_heads_checkpoint(str(folder / 'fpn.pt'), seg, model, class_names=list(YCBV_CLASSES),
                          class_colors=COLOURS, layout='ycbv', ignore_id=None,
                          input_size=list(SIZE),
                          encoder_checkpoint='pretrain.pt', training={'steps': 4},
                          metrics={'miou': 0.5})
    completion = build_completion_head(model, {'channels': [8, 8, 8], 'feature_channels': 8})
    randomise_weights(completion, 3)
    torch.save({'format': COMPLETION_FORMAT, 'step': 5, 'head': completion.state_dict(),
                'head_config': dict(completion.config), 'val_history': [{'step': 5}],
                'encoder': {'checkpoint': 'pretrain.pt', 'step': STEP,
                            'model_config': model.config}}, folder / 'completion.pt')
    onnx_path = str(folder / 'vd.onnx')
    assert export_main(['--checkpoint', str(folder / 'pretrain.pt'), '--heads',
                        str(folder / 'fpn.pt'), '--completion-head', str(folder / 'completion.pt'),
                        '--output', onnx_path, '--input-size', *map(str, SIZE), '--fp16-weights',
                        *OVERRIDES]) == 0
    return folder, onnx_path, model


def _outputs(path: str) -> dict:
    """Run a file on a fixed random input."""
    generator = np.random.default_rng(0)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    feeds = {'rgb': generator.random((1, 3, *SIZE), dtype=np.float32),
             'pde': generator.uniform(-1, 1, (1, 32, *SIZE)).astype(np.float32)}
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def test_recovered_checkpoints_export_the_same_model(exported):
    """pretrain.pt, completion_head.pt and fpn.pt load as usual and re-export equal outputs."""
    folder, onnx_path, original = exported
    out = folder / 'recovered'
    assert recover_main([onnx_path, '--out-dir', str(out)]) == 0
    checkpoint = read_model_checkpoint(str(out / 'pretrain.pt'))
    assert checkpoint.step == STEP
    state = load_checkpoint(str(out / 'pretrain.pt'))  # what train.init_from reads
    assert state['format'] == PRETRAIN_FORMAT
    build_model(state['model_config']).load_state_dict(state['model'], strict=True)
    assert checkpoint.config['recovered_from']['steps'] == STEP
    model, _ = build_checked_model(MODEL, str(out / 'pretrain.pt'))
    for key, value in original.encoder.state_dict().items():  # float16-rounded, else equal
        if key.startswith('vit.norm.'):  # the RGB ViT's final norm: no output reads it
            continue
        assert torch.equal(model.encoder.state_dict()[key], value.half().float()) or \
            value.numel() < 1024 and torch.equal(model.encoder.state_dict()[key], value), key
    head, info = load_completion_head(str(out / 'completion_head.pt'), model, STEP)
    assert info['step'] == 5 and info['head_config']['channels'] == [8, 8, 8]
    seg, seg_info = load_heads_checkpoint(str(out / 'fpn.pt'), model)
    assert seg.config['channels'] == 16 and seg_info['layout'] == 'ycbv'
    assert seg_info['class_colors'] == COLOURS  # the user's class colours survive recovery
    again = str(folder / 'again.onnx')
    assert export_main(['--checkpoint', str(out / 'pretrain.pt'), '--heads', str(out / 'fpn.pt'),
                        '--completion-head', str(out / 'completion_head.pt'), '--output', again,
                        '--input-size', *map(str, SIZE), '--fp16-weights', *OVERRIDES]) == 0
    props = {p.key: p.value for p in onnx.load(again).metadata_props}
    recorded = parse_metadata(props[METADATA_KEY]).training
    assert recorded['steps'] == STEP and recorded['recovered_from']['steps'] == STEP
    assert recorded['data'] == ['open3d:open3d_rgbd']  # passed through the recovery
    first, second = _outputs(onnx_path), _outputs(again)
    assert sorted(first) == ['completed_depth', 'depth', 'features', 'seg_logits']
    for name, value in first.items():
        scale = float(np.abs(value).max())
        assert scale > 0, name
        assert np.abs(second[name] - value).max() <= 1e-5 * scale, name


def test_folded_batchnorm_is_calibrated_and_unread_weights_are_listed(exported, tmp_path):
    """Folded BatchNorms are calibrated: training mode on the sample frames = eval mode.

    The eval output is checked against ONNX Runtime inside ``recover``; the coarse decoder
    heads, never read by the export, are reported unset.
    """
    _, onnx_path, _ = exported
    graph, contract, report = recover(onnx_path, str(tmp_path))
    lateral = graph.seg_head.lateral[0][1]  # Conv2d(bias=False) + BatchNorm2d, fused at export
    assert 'seg_head.lateral.0.1' in report['folded']
    assert torch.count_nonzero(lateral.running_mean) == lateral.num_features
    assert torch.allclose(lateral.weight, torch.sqrt(lateral.running_var + lateral.eps))
    inputs = calibration_inputs(contract)
    rgb = torch.cat([pair[0] for pair in inputs])  # (N, 3, H, W)
    pde = torch.cat([pair[1] for pair in inputs])  # (N, C, H, W)
    with torch.no_grad():
        frozen = graph.eval()(rgb, pde)[2]  # seg_logits
        batch = graph.train()(rgb, pde)[2]  # normalised by these frames' own statistics
    assert (batch - frozen).abs().max() <= 1e-3 * frozen.abs().max()
    assert 'model.decoder.heads.0.conv.weight' in report['unset']
    assert not any(key.startswith('model.adapter.') for key in report['unset'])
    assert max(report['output_errors'].values()) < 1e-5


def _rewrite(path: str, out: str, change) -> str:
    """Copy an ONNX file with ``change(proto)`` applied."""
    proto = onnx.load(path)
    change(proto)
    onnx.save(proto, out)
    return out


def test_refusals_name_the_problem(exported, tmp_path):
    """No vd_ros metadata, a metadata model that does not build this graph, fp16 compute."""
    _, onnx_path, _ = exported
    bare = _rewrite(onnx_path, str(tmp_path / 'bare.onnx'),
                    lambda proto: proto.ClearField('metadata_props'))
    with pytest.raises(RecoveryError, match='no .vd_ros. metadata'):
        recover(bare, str(tmp_path))

    def edit(proto, change):
        props = {p.key: p.value for p in proto.metadata_props}
        helper.set_model_props(proto, {METADATA_KEY: change(props[METADATA_KEY])})

    deeper = _rewrite(onnx_path, str(tmp_path / 'deeper.onnx'), lambda proto: edit(
        proto, lambda text: text.replace('"depth": 2', '"depth": 3')))
    with pytest.raises(RecoveryError, match='other constants than the file'):
        recover(deeper, str(tmp_path))
    half = _rewrite(onnx_path, str(tmp_path / 'half.onnx'), lambda proto: edit(
        proto, lambda text: text.replace('"precision": "fp32"', '"precision": "fp16"')))
    with pytest.raises(RecoveryError, match='computes in fp16'):
        recover(half, str(tmp_path))


def test_recovered_head_checkpoint_records_its_encoder(exported):
    """completion_head.pt names pretrain.pt and its step, as train_completion's files do."""
    folder, _, _ = exported
    state = load_checkpoint(str(folder / 'recovered' / 'completion_head.pt'))
    assert state['encoder']['step'] == STEP
    assert state['encoder']['checkpoint'].endswith('pretrain.pt')
    assert state['recovered_from']['onnx'].endswith('vd.onnx')
