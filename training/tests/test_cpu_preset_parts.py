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


def test_cpu_preset_holdout_is_disjoint_from_training(shared_data):
    """The held-out frames named in cpu.yaml never appear in its training sources."""
    cfg = load_config([os.path.join('training', 'configs', 'cpu.yaml')],
                      [f'data.base_dir={shared_data}'])

    def names(specs):
        return {frame.rgb_path for spec in specs
                for frame in build_source(spec, base_dir=cfg.data.base_dir).frames}
    train, held_out = names(cfg.data.sources), names(cfg.holdout.sources)
    assert len(held_out) == 100 + 24 + 10  # 7-Scenes 300-399, TUM every 10th of 232, YCB 11-20
    assert not train & held_out
    assert any('frame-000300' in n for n in held_out)
    assert any('000011-color' in n for n in held_out)
    assert list(cfg.val.sources) == list(cfg.holdout.sources)


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
