"""The Vanishing Depth evaluation wrapper: sparse splatting, loading, completion, features."""

import numpy as np
import pytest
import torch

from training.checkpoint.formats import CheckpointMismatchError
from training.eval.completion_protocol import input_mask, InputPattern
from training.eval.frames import ycbv_frame
from training.eval.vd_model import load_vd_model, VDRunner
from vd_ros.core.preprocess import letterbox_params, splat_depth

TINY = {'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}, 'img_size': [56, 56]}


def test_splat_depth_hand_computed():
    """Splatting maps pixel centres through the letterbox; the nearest depth wins."""
    depth = np.zeros((4, 6), np.float32)
    depth[0, 0], depth[1, 1], depth[3, 5] = 2.0, 1.0, 3.0
    splat = splat_depth(depth, letterbox_params((4, 6), (2, 3)))
    expected = np.zeros((2, 3), np.float32)
    expected[0, 0] = 1.0  # (0, 0) and (1, 1) both land on (0, 0); the nearer 1 m wins
    expected[1, 2] = 3.0
    np.testing.assert_array_equal(splat, expected)


def test_splat_keeps_sparse_points_that_nearest_resize_drops(shared_data):
    """Downscaling 150 points by 2.9x: splatting keeps almost all, nearest resize ~1/8."""
    frame = ycbv_frame(shared_data, '0000', 1)
    mask = input_mask(frame.depth_m, InputPattern('points', 150), 0)
    sparse = np.where(mask, frame.depth_m, 0.0).astype(np.float32)
    letterbox = letterbox_params(sparse.shape, (168, 224))
    assert (splat_depth(sparse, letterbox) > 0).sum() >= 140
    assert (letterbox.apply(sparse, 'nearest') > 0).sum() < 60


def test_tiny_model_completion_and_features(shared_data):
    """Completion keeps inputs, fills every pixel; features come on the patch grid."""
    model, provenance = load_vd_model(TINY, None)
    assert provenance.startswith('random init') and 'embed_dim=64' in provenance
    runner = VDRunner(model, (42, 56))
    frame = ycbv_frame(shared_data, '0001', 2)
    mask = input_mask(frame.depth_m, InputPattern('points', 500), 1)
    sparse = np.where(mask, frame.depth_m, 0.0).astype(np.float32)
    completed = runner.completion_method(fit_shift=True)(frame, sparse)
    assert completed.shape == frame.depth_m.shape
    assert np.all(np.isfinite(completed))
    np.testing.assert_array_equal(completed[mask], frame.depth_m[mask])
    assert runner.dense_features(frame).shape == (64, 3, 4)
    with pytest.raises(ValueError, match='aspect ratio'):
        VDRunner(model, (42, 42)).dense_features(frame)
    with pytest.raises(ValueError, match='multiple of the patch'):
        VDRunner(model, (40, 56))


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    """A saved checkpoint reloads with identical weights; another architecture is refused."""
    model, provenance = load_vd_model(TINY, None, seed=3)
    assert 'seed 3' in provenance
    path = str(tmp_path / 'ckpt.pt')
    torch.save({'model': model.state_dict(), 'model_config': model.config, 'step': 7}, path)
    loaded, provenance = load_vd_model(TINY, path, label='smoke', seed=4)
    assert 'ckpt.pt' in provenance and 'smoke' in provenance and 'step 7' in provenance
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)
    other = dict(TINY, timm_kwargs={'depth': 2, 'embed_dim': 32, 'num_heads': 2})
    with pytest.raises(CheckpointMismatchError, match='embed_dim'):
        load_vd_model(other, path)
    with pytest.raises(FileNotFoundError):
        load_vd_model(TINY, str(tmp_path / 'missing.pt'))
