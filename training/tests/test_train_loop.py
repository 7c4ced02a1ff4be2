"""The training loop on real frames with a tiny model: exact resume and the NaN/Inf guard."""

import math
import os

import pytest
import torch

from training import train as train_module
from training.checkpoint.files import load_checkpoint
from training.checkpoint.model import read_model_checkpoint, total_pretraining_steps
from training.engine.config import load_config


def _overrides(shared_data, out_dir, name, *extra):
    """Return overrides for a 2-block, 64-wide ViT on 56x56 crops of Open3D and YCB-Video."""
    return [
        f'run.out_dir={out_dir}', f'run.name={name}',
        'model.img_size=[56,56]', 'model.timm_kwargs={depth: 2, embed_dim: 64, num_heads: 2}',
        f'data.base_dir={shared_data}', 'data.transform={size: 56}',
        'data.sources=[{type: open3d, root: open3d_rgbd}, {type: ycbv, root: ycbv}]',
        'data.num_workers=0', 'data.samples_per_epoch=64',
        'train.device=cpu', 'train.threads=1', 'train.batch_size=2', 'train.max_steps=6',
        'val.num_samples=2', 'val.batch_size=2', 'val.ratios=[0.5]',
        'log.tensorboard=false', 'log.progress=false', 'log.panel_every_steps=0',
        'log.every_steps=1', 'optim.lr=1e-3', *extra]


def _trainable(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()
            if p.requires_grad}


def _model(path):
    return load_checkpoint(path)['model']


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(shared_data, tmp_path):
    """6 steps in one go == 3 steps, a new process state, then 3 more: bit-identical."""
    extra = ('train.accum_steps=2', 'checkpoint.every_steps=3')
    full = train_module.train(load_config([], _overrides(shared_data, tmp_path, 'full', *extra)))
    first = train_module.train(load_config([], _overrides(
        shared_data, tmp_path, 'split', *extra, 'train.stop_at_step=3')))
    torch.manual_seed(12345)  # the resumed run must not depend on the process's RNG
    second = train_module.train(load_config([], _overrides(shared_data, tmp_path, 'split',
                                                           *extra)))
    assert (first.end_step, second.start_step, second.end_step) == (3, 3, 6)
    assert len(full.losses) == 6 and all(math.isfinite(v) for v in full.losses)
    assert first.losses + second.losses == full.losses
    assert full.losses[0] != full.losses[1]  # the batches and masks really differ per step
    full_params, resumed_params = _trainable(full.model), _trainable(second.model)
    assert _same(full_params, resumed_params)
    initial = _trainable(train_module.build_model(load_config(
        [], _overrides(shared_data, tmp_path, 'x')).model))
    assert not _same(full_params, initial)  # guard against a run that never trained
    assert 'adapter.vit.norm.weight' not in full_params  # no gradient reaches it: frozen
    run = os.path.join(tmp_path, 'split', 'checkpoints')
    state = load_checkpoint(os.path.join(run, 'step_00000006.pt'))
    assert state['sampler']['consumed'] == 6 * 2 * 2 and state['step'] == 6
    assert state['noise_shift']['last_step'] == 5
    assert sorted(os.listdir(run)) == ['best.pt', 'step_00000003.pt', 'step_00000006.pt']
    assert os.path.isfile(os.path.join(tmp_path, 'split', 'config.yaml'))
    with open(os.path.join(tmp_path, 'split', 'metrics.csv'), encoding='utf-8') as stream:
        assert [line.split(',')[0] for line in stream][1:] == [str(s) for s in range(1, 7)]


@pytest.mark.slow
def test_nonfinite_loss_and_gradient_skip_the_update(shared_data, tmp_path):
    """Injected NaN loss (step 2) and NaN gradient (step 4) leave the weights untouched."""
    result = train_module.train(load_config([], _overrides(
        shared_data, tmp_path, 'nan', 'checkpoint.every_steps=1', 'checkpoint.keep_last=10',
        'debug.inject_nan_steps=[2]', 'debug.inject_nan_grad_steps=[4]', 'val.enabled=false')))
    assert result.skipped_steps == 2
    assert [math.isnan(v) for v in result.losses] == [False, False, True, False, True, False]
    folder = os.path.join(tmp_path, 'nan', 'checkpoints')
    after = [_model(os.path.join(folder, f'step_{s:08d}.pt')) for s in range(1, 7)]
    assert _same(after[1], after[2]) and _same(after[3], after[4])  # steps 2 and 4 skipped
    assert not _same(after[2], after[3]) and not _same(after[4], after[5])
    last = load_checkpoint(os.path.join(folder, 'step_00000006.pt'))
    assert last['optimizer']['state'][0]['step'].item() == 4  # 6 steps, 2 skipped
    assert last['counters']['nonfinite_total'] == 2


@pytest.mark.slow
def test_too_many_nonfinite_steps_stop_with_a_valid_checkpoint(shared_data, tmp_path, caplog):
    """Three NaN steps in a row stop the run (exit code 3) after writing a usable checkpoint."""
    argv = _overrides(shared_data, tmp_path, 'diverge', 'checkpoint.every_steps=1',
                      'checkpoint.keep_last=10', 'debug.inject_nan_steps=[1,2,3]',
                      'train.max_consecutive_nonfinite=3', 'val.enabled=false')
    assert train_module.main(argv) == 3
    assert '3 consecutive steps with a non-finite loss' in caplog.text
    folder = os.path.join(tmp_path, 'diverge', 'checkpoints')
    assert sorted(os.listdir(folder))[-1] == 'step_00000004.pt'  # stopped after step 3
    stopped = load_checkpoint(os.path.join(folder, 'step_00000004.pt'))
    assert _same(stopped['model'], _model(os.path.join(folder, 'step_00000001.pt')))
    assert all(torch.isfinite(v).all() for v in stopped['model'].values()
               if v.is_floating_point())


@pytest.mark.slow
def test_warm_start_takes_the_weights_and_starts_a_fresh_schedule(shared_data, tmp_path):
    """``train.init_from``: step 0, the checkpoint's weights, a new optimiser and schedule."""
    source = train_module.train(load_config([], _overrides(
        shared_data, tmp_path, 'source', 'train.max_steps=2', 'checkpoint.every_steps=2',
        'optim.schedule.kind=constant')))
    checkpoint = os.path.join(source.run_dir, 'checkpoints', 'step_00000002.pt')
    warm = train_module.train(load_config([], _overrides(
        shared_data, tmp_path, 'warm', 'train.max_steps=2', 'optim.lr=1e-30',
        'optim.schedule.kind=constant', f'train.init_from={checkpoint}')))
    assert (warm.start_step, warm.end_step) == (0, 2)
    # lr 1e-30 is below float32 resolution: the weights are the checkpoint's
    assert _same(_trainable(warm.model), _trainable(source.model))
    warm_path = os.path.join(warm.run_dir, 'checkpoints', 'step_00000002.pt')
    state = load_checkpoint(warm_path)
    assert state['optimizer']['state'][0]['step'] == 2  # the optimiser started anew
    # Export counts the steps of the whole chain: 2 here + 2 of the source.
    assert total_pretraining_steps(read_model_checkpoint(warm_path)) == (
        4, [warm_path, checkpoint])
    os.remove(checkpoint)
    assert total_pretraining_steps(read_model_checkpoint(warm_path)) == (
        2, [warm_path, f'{checkpoint} (missing)'])
    other = str(tmp_path / 'other.pt')
    torch.save({'format': 'something-else'}, other)
    with pytest.raises(ValueError, match='not a'):
        train_module.train(load_config([], _overrides(
            shared_data, tmp_path, 'bad', f'train.init_from={other}')))


@pytest.mark.slow
def test_time_budget_ends_the_run_with_a_resumable_checkpoint(shared_data, tmp_path):
    """``train.max_minutes``: the first step past the budget validates, saves and returns."""
    extra = ('train.max_steps=1000', 'checkpoint.every_steps=500')
    # A budget of 0 minutes is spent before the first step ends: the run stops after step 1.
    first = train_module.train(load_config([], _overrides(
        shared_data, tmp_path, 'budget', *extra, 'train.max_minutes=0')))
    assert (first.start_step, first.end_step, len(first.losses)) == (0, 1, 1)
    folder = os.path.join(tmp_path, 'budget', 'checkpoints')
    assert sorted(os.listdir(folder)) == ['best.pt', 'step_00000001.pt']
    state = load_checkpoint(os.path.join(folder, 'step_00000001.pt'))
    assert state['step'] == 1 and math.isfinite(state['val_loss'])
    assert state['optimizer']['state'][0]['step'] == 1
    second = train_module.train(load_config([], _overrides(
        shared_data, tmp_path, 'budget', *extra, 'train.stop_at_step=3')))
    assert (second.start_step, second.end_step) == (1, 3)
    with open(os.path.join(tmp_path, 'budget', 'metrics.csv'), encoding='utf-8') as stream:
        assert [line.split(',')[0] for line in stream][1:] == ['1', '2', '3']
