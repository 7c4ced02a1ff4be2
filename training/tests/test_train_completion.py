"""train_completion on real frames with a tiny frozen model.

Steps, checkpoints, resume, the NaN guard, and the export of the trained head (ONNX Runtime
against eager torch).
"""

import math
import os

import numpy as np
import pytest
import torch

from training.calibrate_uncertainty import main as calibrate_main
from training.checkpoint.completion import load_completion_head
from training.checkpoint.files import load_checkpoint
from training.evaluate import main as evaluate_main
from training.export_onnx import main as export_main
from training.models import build_model
from training.models.pde import decode_depth
from training.train_completion import parse_args, run
from vd_ros.core.depth_codec import read_depth, read_rgb
from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel

TINY = 'model.timm_kwargs={depth: 2, embed_dim: 64, num_heads: 2}'
SIZE = (42, 56)


def _tiny_checkpoint(path, step=9):
    """Write a pretraining checkpoint of the 2-block model (training/train.py's keys)."""
    torch.manual_seed(4)
    model = build_model({'img_size': list(SIZE), 'timm_kwargs': {
        'depth': 2, 'embed_dim': 64, 'num_heads': 2}})
    torch.save({'format': 'test', 'step': step, 'model': model.state_dict(),
                'model_config': model.config}, path)
    return model.eval()


def _args(shared_data, checkpoint, out_dir, *extra):
    return parse_args([
        '--checkpoint', checkpoint, '--out-dir', out_dir, '--minutes', '10', TINY,
        f'model.img_size=[{SIZE[0]},{SIZE[1]}]', f'data.base_dir={shared_data}',
        f'data.transform={{size: [{SIZE[0]}, {SIZE[1]}]}}',
        'data.sources=[{type: open3d, root: open3d_rgbd}, {type: ycbv, root: ycbv/frames/0000}]',
        'data.num_workers=0', 'data.samples_per_epoch=64', 'completion.batch_size=2',
        'completion.val_frames=2', 'completion.val_points=[150]', 'completion.val_every_steps=3',
        'completion.checkpoint_every_steps=3', 'completion.log_every_steps=1',
        'completion.lr=1e-2', 'completion.warmup_steps=1', *extra])


@pytest.fixture(scope='module')
def trained(shared_data, tmp_path_factory):
    """3 steps, then a resume to 5: the run folder, checkpoint and model."""
    folder = tmp_path_factory.mktemp('completion')
    checkpoint = str(folder / 'pretrain.pt')
    model = _tiny_checkpoint(checkpoint)
    out = str(folder / 'run')
    first = run(_args(shared_data, checkpoint, out, 'completion.max_steps=3'))
    second = run(_args(shared_data, checkpoint, out, 'completion.max_steps=5'))
    return folder, checkpoint, model, first, second


def test_three_steps_write_a_checkpoint_and_a_resume_continues(trained):
    """Steps 1-3 then 4-5 from the checkpoint: the head moved, progress carried over."""
    folder, _, model, first, second = trained
    assert (first.step, second.step) == (3, 5)
    assert second.consumed == 10 and second.elapsed_s > first.elapsed_s
    assert [row['step'] for row in second.val_history] == [3, 5]
    files = sorted(os.listdir(folder / 'run' / 'checkpoints'))
    assert files == ['step_00000003.pt', 'step_00000005.pt']
    three = load_checkpoint(str(folder / 'run' / 'checkpoints' / 'step_00000003.pt'))
    five = load_checkpoint(str(folder / 'run' / 'checkpoints' / 'step_00000005.pt'))
    assert three['encoder']['step'] == five['encoder']['step'] == 9
    moved = [not torch.equal(three['head'][k], five['head'][k]) for k in three['head']]
    assert any(moved)
    assert torch.count_nonzero(five['head']['residual.weight']) > 0  # left its zero init
    row = second.val_history[-1]
    assert all(math.isfinite(row[f'150 pts {m}']) for m in ('head', 'local', 'linear fill'))
    head, info = load_completion_head(str(folder / 'run' / 'checkpoints' / 'step_00000005.pt'),
                                      model, 9)
    assert info['step'] == 5 and info['val']['step'] == 5
    with pytest.raises(ValueError, match='trained on pretraining step 9'):
        load_completion_head(str(folder / 'run' / 'checkpoints' / 'step_00000005.pt'), model, 8)


def test_init_from_warm_starts_a_fresh_run(trained, shared_data):
    """completion.init_from: the head's weights, a new optimiser and step count."""
    folder, checkpoint, _, _, _ = trained
    source = str(folder / 'run' / 'checkpoints' / 'step_00000005.pt')
    progress = run(_args(shared_data, checkpoint, str(folder / 'warm'), 'completion.max_steps=1',
                         f'completion.init_from={source}', 'completion.lr=0'))
    assert progress.step == 1 and progress.consumed == 2
    warm = load_checkpoint(str(folder / 'warm' / 'checkpoints' / 'step_00000001.pt'))
    five = load_checkpoint(source)
    assert all(torch.equal(warm['head'][k], five['head'][k]) for k in five['head'])  # lr 0
    assert all(state['step'] == 1 for state in warm['optimizer']['state'].values())
    # A head carried over to another pretraining step (an encoder trained further) starts
    # from the same weights; its checkpoints then name the new step.
    other = str(folder / 'pretrain_step8.pt')
    _tiny_checkpoint(other, step=8)
    run(_args(shared_data, other, str(folder / 'warm8'), 'completion.max_steps=1',
              f'completion.init_from={source}', 'completion.lr=0'))
    carried = load_checkpoint(str(folder / 'warm8' / 'checkpoints' / 'step_00000001.pt'))
    assert carried['encoder']['step'] == 8
    assert all(torch.equal(carried['head'][k], five['head'][k]) for k in five['head'])


def test_non_finite_loss_skips_the_step(trained, shared_data):
    """An injected NaN loss at step 1 is skipped and counted; the head stays finite."""
    folder, checkpoint, _, _, _ = trained
    progress = run(_args(shared_data, checkpoint, str(folder / 'nan'), 'completion.max_steps=3',
                         'debug.inject_nan_steps=[1]'))
    assert progress.step == 3 and progress.counters['nonfinite_total'] == 1
    state = load_checkpoint(str(folder / 'nan' / 'checkpoints' / 'step_00000003.pt'))
    assert all(torch.isfinite(value).all() for value in state['head'].values())


def test_exported_completed_depth_matches_eager(trained, shared_data):
    """--completion-head adds completed_depth (contract v2), equal to eager within 1e-4."""
    folder, checkpoint, model, _, _ = trained
    head_file = str(folder / 'run' / 'checkpoints' / 'step_00000005.pt')
    out = str(folder / 'vd.onnx')
    assert export_main(['--checkpoint', checkpoint, '--completion-head', head_file,
                        '--output', out, '--input-size', *map(str, SIZE), TINY,
                        f'model.img_size=[{SIZE[0]},{SIZE[1]}]']) == 0
    runtime = VDModel(out, providers=['cpu'], intra_op_threads=1)
    contract = runtime.contract
    assert contract.contract_version == 2 and contract.outputs[-1] == 'completed_depth'
    assert contract.training['completion_head']['step'] == 5
    stem = os.path.join(shared_data, '7scenes_redkitchen', 'frame-000120')
    depth = read_depth(stem + '.depth.png', '7scenes')
    depth[np.random.default_rng(0).random(depth.shape) > 0.01] = 0.0  # ~3000 points
    rgb_in, pde, _ = prepare_inputs(read_rgb(stem + '.color.jpg'), depth, contract)
    onnx_out = runtime.run(rgb_in, pde)['completed_depth']
    head, _ = load_completion_head(head_file, model, 9)
    rgb, code = torch.from_numpy(rgb_in), torch.from_numpy(pde)
    with torch.no_grad():
        features = model.encode(rgb, code)
        eager = head(rgb, code, model.decoder(features.maps, SIZE)[0], features.maps[-1])
    assert onnx_out.shape == (1, 1, *SIZE)
    assert np.abs(onnx_out - eager.numpy()).max() <= 1e-4 * float(eager.max())


def test_evaluate_scores_the_head_beside_the_decoder_rows(trained, shared_data, tmp_path):
    """training.evaluate --completion-head adds 'vd head' rows next to 'vd local'."""
    _, checkpoint, _, _, _ = trained
    head_file = os.path.join(os.path.dirname(checkpoint), 'run', 'checkpoints',
                             'step_00000005.pt')
    assert evaluate_main(['--task', 'completion', '--data', shared_data, '--frames', '1',
                          '--points', '150', '--perlin', '--checkpoint', checkpoint,
                          '--completion-head', head_file, '--input-size', *map(str, SIZE),
                          '--out', str(tmp_path), TINY,
                          f'model.img_size=[{SIZE[0]},{SIZE[1]}]']) == 0
    with open(tmp_path / 'completion.md') as stream:
        markdown = stream.read()
    rows = [line for line in markdown.splitlines() if line.startswith('| 150 pts')]
    methods = {line.split('|')[2].strip() for line in rows}
    assert {'linear', 'vd local', 'vd head', 'vd head + local'} <= methods
    assert 'completion head' in markdown and '(step 5)' in markdown


@pytest.fixture(scope='module')
def uncertainty_head(trained, shared_data):
    """Two freeze_depth steps of an uncertainty branch on the 5-step head: its checkpoint."""
    folder, checkpoint, _, _, _ = trained
    source = str(folder / 'run' / 'checkpoints' / 'step_00000005.pt')
    run(_args(shared_data, checkpoint, str(folder / 'unc'), 'completion.max_steps=2',
              f'completion.init_from={source}', 'completion.head.uncertainty=true',
              'completion.freeze_depth=true'))
    return str(folder / 'unc' / 'checkpoints' / 'step_00000002.pt')


def test_uncertainty_warm_start_keeps_the_depth_and_exports_depth_uncertainty(
        trained, uncertainty_head, shared_data, tmp_path):
    """freeze_depth: only the uncertainty branch moves; export (v3) = eager; calibration."""
    folder, checkpoint, model, _, _ = trained
    source = str(folder / 'run' / 'checkpoints' / 'step_00000005.pt')
    head_file = uncertainty_head
    unc, five = load_checkpoint(head_file)['head'], load_checkpoint(source)['head']
    assert all(torch.equal(unc[k], five[k]) for k in five)
    assert torch.count_nonzero(unc['uncertainty.1.weight']) > 0
    out = str(folder / 'vd_unc.onnx')
    assert export_main(['--checkpoint', checkpoint, '--completion-head', head_file,
                        '--output', out, '--input-size', *map(str, SIZE), TINY,
                        f'model.img_size=[{SIZE[0]},{SIZE[1]}]']) == 0
    runtime = VDModel(out, providers=['cpu'], intra_op_threads=1)
    assert runtime.contract.contract_version == 3
    assert runtime.contract.outputs[-2:] == ('completed_depth', 'depth_uncertainty')
    stem = os.path.join(shared_data, '7scenes_redkitchen', 'frame-000120')
    depth = read_depth(stem + '.depth.png', '7scenes')
    depth[np.random.default_rng(0).random(depth.shape) > 0.01] = 0.0
    rgb_in, pde, _ = prepare_inputs(read_rgb(stem + '.color.jpg'), depth, runtime.contract)
    result = runtime.run(rgb_in, pde)
    head, _ = load_completion_head(head_file, model, 9)
    rgb, code = torch.from_numpy(rgb_in), torch.from_numpy(pde)
    with torch.no_grad():
        features = model.encode(rgb, code)
        completed, log_scale = head.complete(rgb, code, model.decoder(features.maps, SIZE)[0],
                                             features.maps[-1])
    measured = decode_depth(torch.from_numpy(pde), head.pde_config)[1].numpy() > 0
    eager = np.where(measured, 0.0, (completed * torch.exp(log_scale)).numpy())
    uncertainty = result['depth_uncertainty']
    assert np.isfinite(uncertainty).all() and (uncertainty >= 0).all()
    assert float(uncertainty[measured].max()) == 0.0 and uncertainty[~measured].min() > 0
    assert np.abs(uncertainty - eager).max() <= 1e-4 * float(eager.max())

    assert evaluate_main(['--task', 'confidence', '--data', shared_data, '--frames', '1',
                          '--points', '150', '--perlin', '0.5', '--checkpoint', checkpoint,
                          '--completion-head', head_file, '--input-size', *map(str, SIZE),
                          '--out', str(tmp_path), TINY,
                          f'model.img_size=[{SIZE[0]},{SIZE[1]}]']) == 0
    with open(tmp_path / 'confidence.md') as stream:
        markdown = stream.read()
    rows = [line.split('|') for line in markdown.splitlines() if line.startswith('| 150 pts |')]
    assert rows and (tmp_path / 'confidence_sparsification.png').exists()
    assert 'finite wherever the depth is finite, on every frame and input: yes' in markdown
    ratio, oracle, distance = float(rows[0][5]), float(rows[0][7]), float(rows[0][8])
    assert 0.0 < oracle <= min(ratio, distance)  # no ranking beats sorting by the true error


def test_calibration_scales_the_uncertainty_on_the_validation_split(
        trained, uncertainty_head, shared_data, tmp_path):
    """Fit k on val.sources, folded into the last bias; the export and evaluate carry it."""
    folder, checkpoint, _, _, _ = trained
    val = 'val.sources=[{type: 7scenes, root: 7scenes_redkitchen, select: [250, 252]}]'
    common = ['--checkpoint', checkpoint, '--completion-head', uncertainty_head, '--data',
              shared_data, '--points', '150', '--perlin', '0.5', '--input-size',
              *map(str, SIZE), TINY, f'model.img_size=[{SIZE[0]},{SIZE[1]}]']
    calibrated = str(tmp_path / 'calibrated.pt')
    report = tmp_path / 'calibration.md'
    assert calibrate_main(['--out', calibrated, '--report', str(report), *common, val]) == 0
    record = load_checkpoint(calibrated)['calibration']
    assert record['frames'] == 2 and record['patterns'] == ['150 pts', 'perlin 50%']
    scale = record['scale']
    before = [record['before'][p]['scale'] for p in record['patterns']]
    after = [record['after'][p]['scale'] for p in record['patterns']]
    assert scale == pytest.approx(np.mean(before), rel=1e-9) and abs(scale - 1.0) > 0.01
    assert np.mean(after) == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(after, np.array(before) / scale, rtol=1e-3)
    heads = load_checkpoint(uncertainty_head)['head'], load_checkpoint(calibrated)['head']
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0]
               if k != 'uncertainty.1.bias')
    assert torch.allclose(heads[1]['uncertainty.1.bias'],
                          heads[0]['uncertainty.1.bias'] + math.log(scale))
    assert f'**{scale:.3f}**' in report.read_text()
    # A calibrated head is refused, and so is a config without a validation split.
    assert calibrate_main(['--out', str(tmp_path / 'twice.pt'), *common[:3], calibrated,
                           *common[4:], val]) == 1
    assert calibrate_main(['--out', str(tmp_path / 'none.pt'), *common, 'val.sources=[]']) == 1
    assert not (tmp_path / 'twice.pt').exists() and not (tmp_path / 'none.pt').exists()

    onnx_paths = [str(tmp_path / name) for name in ('plain.onnx', 'calibrated.onnx')]
    for head_file, path in zip((uncertainty_head, calibrated), onnx_paths):
        assert export_main(['--checkpoint', checkpoint, '--completion-head', head_file,
                            '--output', path, '--input-size', *map(str, SIZE), TINY,
                            f'model.img_size=[{SIZE[0]},{SIZE[1]}]']) == 0
    plain, scaled = (VDModel(path, providers=['cpu'], intra_op_threads=1) for path in onnx_paths)
    assert scaled.contract.training['completion_head']['calibration']['scale'] == scale
    assert 'calibration' not in plain.contract.training['completion_head']
    stem = os.path.join(shared_data, '7scenes_redkitchen', 'frame-000120')
    depth = read_depth(stem + '.depth.png', '7scenes')
    depth[np.random.default_rng(1).random(depth.shape) > 0.01] = 0.0
    rgb_in, pde, _ = prepare_inputs(read_rgb(stem + '.color.jpg'), depth, plain.contract)
    ours, theirs = scaled.run(rgb_in, pde), plain.run(rgb_in, pde)
    assert np.array_equal(ours['completed_depth'], theirs['completed_depth'])
    assert np.allclose(ours['depth_uncertainty'], scale * theirs['depth_uncertainty'],
                       rtol=1e-5, atol=1e-7)

    assert evaluate_main(['--task', 'confidence', '--frames', '1', '--out', str(tmp_path),
                          *common[:3], calibrated, *common[4:]]) == 0
    markdown = (tmp_path / 'confidence.md').read_text()
    assert f'uncertainty calibrated (k = {scale:.3f})' in markdown
    header = next(line for line in markdown.splitlines() if line.startswith('| pattern |'))
    row = next(line for line in markdown.splitlines() if line.startswith('| 150 pts |'))
    cells = dict(zip(header.split('|'), row.split('|')))
    now = float(cells[' mean abs. error / mean u (1 = calibrated) '])
    was = float(cells[' mean abs. error / mean u, before calibration '])
    assert was == pytest.approx(now * scale, abs=0.011)
