"""Parts the CPU preset needs: frame selection, 4:3 transform output, a trainable RGB branch."""

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from training.data.datasets.factory import build_source, select_frames
from training.data.transforms import build_transform
from training.engine.config import load_config
from training.models import build_model


def _frames(n):
    return SimpleNamespace(frames=list(range(n)))


def test_select_and_exclude_take_slice_ranges():
    assert select_frames(_frames(10), select=[3, 6]).frames == [3, 4, 5]
    assert select_frames(_frames(25), select=[0, None, 10]).frames == [0, 10, 20]
    assert select_frames(_frames(10), exclude=[[0, None, 3], [8, 10]]).frames == [1, 2, 4, 5, 7]
    assert select_frames(_frames(10), select=[2, 8], exclude=[4, 6]).frames == [2, 3, 6, 7]


@pytest.mark.parametrize('bad', [[1], [1, 2, 3, 4], ['a', 2], [0, 5, 0], [0, 5, -1]])
def test_bad_ranges_are_refused(bad):
    with pytest.raises(ValueError, match='select'):
        select_frames(_frames(10), select=bad)


def test_selection_that_leaves_nothing_is_refused():
    with pytest.raises(ValueError, match='leave no frame'):
        select_frames(_frames(10), select=[0, 5], exclude=[0, 5])


def test_cpu_preset_splits_keep_50_frames_from_every_training_frame(shared_data):
    """Validation and test frames of cpu.yaml lie >= 50 frames from any training frame."""
    cfg = load_config([os.path.join('training', 'configs', 'cpu.yaml')],
                      [f'data.base_dir={shared_data}'])

    def positions(specs):
        """Root -> positions of the selected frames in the root's full, time-ordered list."""
        found = {}
        for spec in specs:
            whole = {k: v for k, v in spec.items() if k not in ('select', 'exclude')}
            order = [f.rgb_path for f in build_source(whole, base_dir=cfg.data.base_dir).frames]
            kept = {f.rgb_path for f in build_source(spec, base_dir=cfg.data.base_dir).frames}
            found.setdefault(spec['root'], set()).update(
                i for i, name in enumerate(order) if name in kept)
        return found

    train, val, test = (positions(cfg[key].sources) for key in ('data', 'val', 'holdout'))
    assert {root: len(v) for root, v in test.items()} == {
        '7scenes_redkitchen': 50, 'tum_fr1_rpy': 82, 'ycbv/frames/0002': 20}
    assert {root: len(v) for root, v in val.items()} == {'7scenes_redkitchen': 50}
    for held in (val, test):
        for root, indices in held.items():
            nearest = min((abs(i - j) for i in indices for j in train.get(root, ())),
                          default=None)
            assert nearest is None or nearest >= 50, (root, nearest)
    nearest = min(abs(i - j) for i in val['7scenes_redkitchen']
                  for j in test['7scenes_redkitchen'])
    assert nearest >= 50  # checkpoint choice never sees the test frames' neighbours


def test_transform_outputs_the_requested_4_to_3_size(shared_data):
    from training.data.datasets.seven_scenes import SevenScenesDataset
    sample = SevenScenesDataset(os.path.join(shared_data, '7scenes_redkitchen'))[0]
    evaluation = build_transform({'size': [126, 168]}, train=False)(sample)
    assert evaluation['rgb'].shape == (3, 126, 168)
    assert evaluation['valid'].float().mean() > 0.5  # a 4:3 frame fills it: no padding band
    rgb = evaluation['rgb']  # padding would be exact zeros in the last row / column
    assert rgb[:, -1, :].abs().sum() > 0 and rgb[:, :, -1].abs().sum() > 0
    for seed in range(4):
        out = build_transform({'size': [126, 168]})(sample, np.random.default_rng(seed))
        assert out['depth'].shape == (1, 126, 168) and out['rgb'].shape == (3, 126, 168)


def test_rgb_trainable_gets_gradients_and_frozen_does_not(tiny_vit_kwargs):
    for trainable in (False, True):
        torch.manual_seed(0)
        model = build_model({'img_size': [42, 56], 'timm_kwargs': tiny_vit_kwargs,
                             'rgb_trainable': trainable})
        model.train()
        assert model.encoder.training is trainable
        out = model(torch.rand(1, 3, 42, 56), torch.rand(1, 32, 42, 56))
        out['depths'][0].mean().backward()
        grads = [p.grad for p in model.encoder.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads) is trainable
