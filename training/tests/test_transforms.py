"""RGB-D transforms: pixel alignment, nearest-only depth, range handling, shapes, RNG."""

import os

import numpy as np
import pytest
import torch

from training.data.datasets import SevenScenesDataset
from training.data.transforms import build_transform
from training.data.transforms import depth_range
from training.data.transforms import resize_to_fit
from training.data.transforms import sample_crop
from training.data.transforms import TransformConfig

H, W = 60, 80


def _position_sample():
    """RGB and depth both encode each pixel's source position; K is a known camera."""
    rows, cols = np.mgrid[0:H, 0:W]
    rgb = np.stack([rows * 4, cols * 3, np.full_like(rows, 128)], axis=-1).astype(np.uint8)
    depth = ((rows * W + cols + 1) * 1e-3).astype(np.float32)  # 1 mm .. 4.8 m, all distinct
    K = np.array([[50.0, 0.0, 41.0], [0.0, 52.0, 28.0], [0.0, 0.0, 1.0]])
    return {'rgb': rgb, 'depth': depth, 'name': 'synthetic', 'source': 'test', 'K': K}


def test_rgb_depth_and_intrinsics_stay_aligned_through_flips_and_crops():
    """Every output pixel: RGB, depth and K agree on which source pixel it shows."""
    sample = _position_sample()
    config = TransformConfig(size=112, jitter=0.0, grayscale=0.0)
    transform = build_transform(config, train=True)
    flips = set()
    for seed in range(12):
        out = transform(sample, np.random.default_rng(seed))
        depth, rgb, K = out['depth'][0].numpy(), out['rgb'].numpy() * 255.0, out['K'].numpy()
        flips.add((bool(K[0, 0] < 0), bool(K[1, 1] < 0)))
        index = np.rint(depth * 1000.0).astype(int) - 1
        src_row, src_col = index // W, index % W
        rgb_row, rgb_col = rgb[0] / 4.0, rgb[1] / 3.0  # interpolated source position
        scale = 112.0 / max(np.ptp(src_row[depth > 0]) + 1, np.ptp(src_col[depth > 0]) + 1)
        # away from the crop border, where the bicubic kernel extrapolates the ramp
        margin = int(np.ceil(2 * scale))
        content_h, content_w = (int(np.nonzero((depth > 0).any(axis))[0].max()) + 1
                                for axis in (1, 0))
        vv, uu = np.mgrid[0:112, 0:112]
        inner = (depth > 0) & (vv >= margin) & (vv < content_h - margin) & (
            uu >= margin) & (uu < content_w - margin)
        assert inner.sum() > 100
        # nearest depth vs interpolated RGB: at most half a source pixel (+ uint8 rounding)
        assert np.abs(rgb_row - src_row)[inner].max() <= 0.7
        assert np.abs(rgb_col - src_col)[inner].max() <= 0.7
        # K maps the source ray of the RGB position to the output pixel
        v, u = np.nonzero(inner)
        u_pred = K[0, 0] * (rgb_col[v, u] - 41.0) / 50.0 + K[0, 2]
        v_pred = K[1, 1] * (rgb_row[v, u] - 28.0) / 52.0 + K[1, 2]
        # uint8 colour quantisation: <= 0.5 / 3 source pixel = 0.17 * scale output pixels
        assert np.abs(u_pred - u).max() <= 0.2 * scale + 0.05
        assert np.abs(v_pred - v).max() <= 0.2 * scale + 0.05
    assert len(flips) == 4  # all flip combinations were exercised


def test_nearest_resize_never_invents_depth(shared_data):
    """Output depths are a subset of the input depths (plus 0), train and eval."""
    dataset = SevenScenesDataset(os.path.join(shared_data, '7scenes_redkitchen'))
    sample = dataset[0]
    values = set(np.unique(sample['depth']).tolist()) | {0.0}
    resized = resize_to_fit(sample, 97)
    assert set(np.unique(resized['depth']).tolist()) <= values
    np.testing.assert_array_equal(resized['valid'], resized['depth'] > 0)
    for train in (True, False):
        transform = build_transform({'size': 112}, train=train)
        for seed in range(3):
            out = transform(sample, np.random.default_rng(seed))
            assert set(np.unique(out['depth'].numpy()).tolist()) <= values


def test_depth_range_rescales_far_maps_and_drops_beyond_max():
    """Paper section 2: maps above 0.95 * 15 m rescale to 15 m * U(0.9, 1); > 15 m -> 0."""
    far = np.array([[0.0, 2.0, 10.0, 20.0]], np.float32)
    rescaled = depth_range(far, rng=np.random.default_rng(0))
    assert rescaled[0, 0] == 0.0
    assert 13.5 <= rescaled.max() <= 15.0
    np.testing.assert_allclose(rescaled[0, 1:] / rescaled[0, 3], [0.1, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(depth_range(far), [[0.0, 2.0, 10.0, 0.0]])  # evaluation
    near = np.array([[0.0, 1.0, 14.2]], np.float32)  # 14.2 < 0.95 * 15 = 14.25: unchanged
    np.testing.assert_array_equal(depth_range(near, rng=np.random.default_rng(0)), near)
    just_over = depth_range(np.array([[14.3]], np.float32), rng=np.random.default_rng(1))
    assert 13.5 <= just_over[0, 0] <= 15.0 and just_over[0, 0] != np.float32(14.3)


def test_colour_jitter_and_grayscale_touch_rgb_only():
    """With the same seed, jitter/grey change RGB but leave depth and validity identical."""
    sample = _position_sample()
    plain = build_transform({'size': 64, 'jitter': 0.0, 'grayscale': 0.0}, train=True)
    jittered = build_transform({'size': 64, 'jitter': 1.0, 'grayscale': 1.0}, train=True)
    a = plain(sample, np.random.default_rng(3))
    b = jittered(sample, np.random.default_rng(3))
    assert torch.equal(a['depth'], b['depth']) and torch.equal(a['valid'], b['valid'])
    assert not torch.allclose(a['rgb'], b['rgb'])
    assert torch.equal(b['rgb'][0], b['rgb'][1]) and torch.equal(b['rgb'][1], b['rgb'][2])
    assert b['rgb'].min() >= 0.0 and b['rgb'].max() <= 1.0


def test_eval_output_shapes_padding_and_intrinsics():
    """Eval keeps the whole image, pads bottom/right with invalid zeros and scales K."""
    rng = np.random.default_rng(0)
    sample = {'rgb': rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
              'depth': rng.uniform(0.5, 4.0, (480, 640)).astype(np.float32),
              'label': rng.integers(1, 22, (480, 640)),
              'K': np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])}
    out = build_transform({'size': 112, 'label_fill': -1}, train=False)(sample)
    assert out['rgb'].shape == (3, 112, 112) and out['rgb'].dtype == torch.float32
    assert out['depth'].shape == (1, 112, 112) and out['valid'].dtype == torch.bool
    assert out['label'].shape == (112, 112) and out['label'].dtype == torch.int64
    # 640 x 480 -> 112 x 84, rows 84.. are padding
    assert out['valid'][0, :84].all() and not out['valid'][0, 84:].any()
    assert (out['depth'][0, 84:] == 0).all() and (out['rgb'][:, 84:] == 0).all()
    assert (out['label'][84:] == -1).all() and (out['label'][:84] >= 1).all()
    # fx = 525 * 112 / 640 = 91.875; cx = (319.5 + 0.5) * 0.175 - 0.5 = 55.5
    np.testing.assert_allclose(out['K'].numpy(), [[91.875, 0, 55.5], [0, 91.875, 41.5],
                                                  [0, 0, 1]], rtol=1e-6)


def test_reproducible_with_numpy_or_torch_generators():
    """Equal seeds give equal samples; torch generators work too; seeds differ -> crops differ."""
    sample = _position_sample()
    transform = build_transform({'size': 48}, train=True)
    a = transform(sample, np.random.default_rng(7))
    b = transform(sample, np.random.default_rng(7))
    c = transform(sample, np.random.default_rng(8))
    assert all(torch.equal(a[k], b[k]) for k in ('rgb', 'depth', 'valid', 'K'))
    assert not torch.equal(a['depth'], c['depth'])
    t1 = transform(sample, torch.Generator().manual_seed(5))
    t2 = transform(sample, torch.Generator().manual_seed(5))
    assert torch.equal(t1['rgb'], t2['rgb'])
    seeded = [build_transform({'size': 48, 'seed': 11}, train=True)(sample) for _ in range(2)]
    assert torch.equal(seeded[0]['depth'], seeded[1]['depth'])


def test_sample_crop_respects_scale_and_ratio():
    """Crop boxes lie inside the image with area and aspect in the configured ranges."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = sample_crop(480, 640, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= top and top + h <= 480 and 0 <= left and left + w <= 640
        assert 0.07 <= h * w / (480 * 640) <= 1.0
        assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02
    # impossible ranges fall back to the central crop with the ratio clamped
    assert sample_crop(100, 400, (1.0, 1.0), (1.0, 1.0), rng) == (0, 150, 100, 100)


def test_build_transform_rejects_unknown_or_bad_parameters():
    """Config errors name the offending key or value."""
    with pytest.raises(ValueError, match='sizes'):
        build_transform({'sizes': 224})
    with pytest.raises(ValueError, match='lanczos'):
        build_transform({'rgb_interpolation': 'lanczos'})
    with pytest.raises(ValueError, match='1.5'):
        build_transform({'scale': [0.5, 1.5]})
    assert build_transform({'scale': [0.5, 1.0]}).config.scale == (0.5, 1.0)
