"""Letterbox geometry, exact inverses, depth never interpolated (sparse depth splatted)."""

import os

import cv2
import numpy as np
import pytest

from vd_ros.core.contract import ModelContract
from vd_ros.core.pde import PDEConfig, positional_depth_encoding
from vd_ros.core.preprocess import (check_frame, EmptyDepthError, letterbox_params,
                                    prepare_inputs, splat_depth)


def contract(input_size, channels=8):
    """Return a minimal model contract; only input_size and pde matter for preprocessing."""
    return ModelContract(encoder='vit_small_patch14_dinov2', patch_size=14,
                         input_size=input_size, mean=(0.485, 0.456, 0.406),
                         std=(0.229, 0.224, 0.225), pde=PDEConfig(channels=channels),
                         feature_dim=64)


@pytest.fixture(scope='module')
def real_frame(shared_data):
    """Return the first open3d frame: (480, 640, 3) uint8 RGB, (480, 640) depth in metres."""
    folder = os.path.join(shared_data, 'open3d_rgbd')
    bgr = cv2.imread(os.path.join(folder, 'color', '00000.jpg'), cv2.IMREAD_COLOR)
    raw = cv2.imread(os.path.join(folder, 'depth', '00000.png'), cv2.IMREAD_UNCHANGED)
    return bgr[:, :, ::-1].copy(), raw.astype(np.float32) / np.float32(1000.0)


def decode_pde_depth(pde, config):
    """Recover depth from the lowest-frequency sin/cos pair (period scale/max_depth)."""
    angle = np.mod(np.arctan2(pde[0], pde[1]), 2 * np.pi)  # (H, W)
    return angle / config.inverse_wavelengths()[0]


@pytest.mark.parametrize('in_size,out_size,scale,content,pads', [
    ((480, 640), (336, 448), 0.7, (336, 448), (0, 0)),
    ((480, 640), (336, 336), 0.525, (252, 336), (42, 0)),
    ((640, 480), (336, 448), 0.525, (336, 252), (0, 98)),
    ((480, 640), (1000, 1280), 2.0, (960, 1280), (20, 0)),
])
def test_letterbox_params(in_size, out_size, scale, content, pads):
    letterbox = letterbox_params(in_size, out_size)
    assert letterbox.scale == pytest.approx(scale)
    assert letterbox.content_size == content
    assert (letterbox.pad_top, letterbox.pad_left) == pads
    assert (letterbox.in_size, letterbox.out_size) == (in_size, out_size)


def test_restore_inverts_integer_upscale_exactly(real_frame):
    rgb, depth = real_frame
    letterbox = letterbox_params(depth.shape, (1000, 1280))
    for image in (rgb, depth):
        model = letterbox.apply(image, 'nearest')
        assert model.shape[:2] == (1000, 1280)
        assert not model[:20].any() and not model[-20:].any()  # zero padding
        np.testing.assert_array_equal(letterbox.restore(model, 'nearest'), image)


def test_restore_nearest_downscale_exact_on_interior():
    rows, cols = np.mgrid[0:480, 0:640]
    labels = ((rows // 60) * 11 + (cols // 80)).astype(np.uint8)  # 8 x 8 blocks
    letterbox = letterbox_params(labels.shape, (336, 336))
    restored = letterbox.restore(letterbox.apply(labels, 'nearest'), 'nearest')
    assert restored.shape == labels.shape and restored.dtype == np.uint8
    interior = ((rows % 60 >= 3) & (rows % 60 < 57) & (cols % 80 >= 3) & (cols % 80 < 77))
    np.testing.assert_array_equal(restored[interior], labels[interior])
    assert np.count_nonzero(restored != labels) < 0.02 * labels.size


@pytest.mark.parametrize('grid', [(336, 336), (24, 24)])
def test_restore_linear_ramp_from_model_and_patch_grid(grid):
    # A linear function of the camera column, sampled at pixel centres, survives a
    # centre-consistent resample: any half-pixel offset in the geometry shows up here.
    letterbox = letterbox_params((480, 640), (336, 336))
    ramp = np.tile(np.arange(640, dtype=np.float32), (480, 1)) * 0.5 + 3.0  # value(u)
    model = letterbox.apply(ramp, 'linear')
    model_grid = cv2.resize(model, grid[::-1], interpolation=cv2.INTER_AREA)
    restored = letterbox.restore(model_grid, 'linear')
    margin = 640 // grid[1] + 2
    np.testing.assert_allclose(restored[:, margin:-margin], ramp[:, margin:-margin], atol=1e-3)


@pytest.mark.parametrize('in_size,grid', [
    ((480, 640), (126, 168)), ((480, 640), (36, 48)), ((480, 640), (9, 12)),
    ((60, 80), (126, 168))])
@pytest.mark.parametrize('dtype', [np.float32, np.uint8])
def test_restore_of_an_unpadded_map_is_the_centre_aligned_warp(in_size, grid, dtype):
    # No padding and a grid that divides the model input: restore takes cv2.resize's fast
    # path, which must give what the general warp gives, x = (u + 0.5) * grid / camera - 0.5.
    letterbox = letterbox_params(in_size, (126, 168))
    assert (letterbox.pad_top, letterbox.pad_left) == (0, 0)
    rng = np.random.default_rng(4)
    model = (rng.random(grid + (3,)) * 200).astype(dtype)
    gain_y, gain_x = grid[0] / in_size[0], grid[1] / in_size[1]
    transform = np.array([[gain_x, 0, 0.5 * gain_x - 0.5], [0, gain_y, 0.5 * gain_y - 0.5]])
    for interpolation, flag in (('nearest', cv2.INTER_NEAREST), ('linear', cv2.INTER_LINEAR)):
        reference = cv2.warpAffine(model, transform, in_size[::-1],
                                   flags=flag | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE)
        restored = letterbox.restore(model, interpolation)
        assert restored.shape == in_size + (3,) and restored.dtype == dtype
        if interpolation == 'nearest':
            np.testing.assert_array_equal(restored, reference)
        else:  # warpAffine quantises positions to 1/32 grid pixel (neighbours differ by
            # < 200 here), resize does not; integers may also round the other way
            rounding = 1 if dtype == np.uint8 else 0
            difference = np.abs(restored.astype(float) - reference)
            assert difference.max() <= 200 / 32 + rounding
            assert difference.mean() < 0.05 + 0.5 * rounding


def test_restore_never_reads_padding():
    letterbox = letterbox_params((480, 640), (336, 336))
    model = np.full((336, 336, 2), 1000.0, np.float32)
    model[42:42 + 252] = 5.0
    for grid in ((336, 336), (24, 24)):
        resized = cv2.resize(model, grid, interpolation=cv2.INTER_NEAREST_EXACT)
        restored = letterbox.restore(resized, 'linear')
        assert restored.shape == (480, 640, 2)
        if grid == (336, 336):
            np.testing.assert_array_equal(restored, 5.0)
        else:  # patch rows straddling the padding border are mixtures, the rest is content
            np.testing.assert_array_equal(restored[40:-40], 5.0)


def test_prepare_inputs_shapes_colours_and_padding(real_frame):
    rgb, depth = real_frame
    rgb = rgb.copy()
    rgb[:] = (255, 0, 51)  # pure colour: R stays channel 0, values stay exact after resizing
    rgb_in, pde, letterbox = prepare_inputs(rgb, depth, contract((336, 336)))
    assert rgb_in.shape == (1, 3, 336, 336) and rgb_in.dtype == np.float32
    assert pde.shape == (1, 8, 336, 336) and pde.dtype == np.float32
    content = rgb_in[0, :, 42:42 + 252]
    np.testing.assert_allclose(content[:, 5, 5], [1.0, 0.0, 0.2], atol=1e-6)
    assert not rgb_in[0, :, :42].any() and not rgb_in[0, :, 42 + 252:].any()
    code_of_zero = positional_depth_encoding(np.zeros((1, 1), np.float32), PDEConfig(channels=8))
    np.testing.assert_array_equal(pde[0, :, :42], np.broadcast_to(code_of_zero, (8, 42, 336)))
    assert letterbox.pad_top == 42


@pytest.mark.parametrize('input_size', [(336, 448), (336, 336), (504, 672)])
def test_depth_is_never_interpolated(real_frame, input_size):
    rgb, depth = real_frame
    config = PDEConfig(channels=8)
    _, pde, _ = prepare_inputs(rgb, depth, contract(input_size))
    decoded = decode_pde_depth(pde[0], config)  # (H, W) metres, ~0 where invalid
    decoded[decoded > config.max_depth_m - 1e-3] = 0.0  # angle wrap of the zero code
    millimetres = decoded * 1000.0
    # An interpolated depth would fall between sensor values: every pixel must decode to one of
    # the measured millimetre values (or 0).
    assert np.abs(millimetres - np.rint(millimetres)).max() < 0.05
    measured = set(np.rint(depth * 1000.0).astype(np.int64).ravel().tolist()) | {0}
    assert set(np.rint(millimetres).astype(np.int64).ravel().tolist()) <= measured


def test_prepare_inputs_rejects_bad_frames():
    rgb = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r'\(48, 64\).*\(24, 32\)'):
        check_frame(rgb, np.ones((24, 32), np.float32))
    with pytest.raises(EmptyDepthError, match=r'\(48, 64\)'):
        prepare_inputs(rgb, np.full((48, 64), np.nan, np.float32), contract((56, 56)))
    with pytest.raises(EmptyDepthError):
        check_frame(rgb, np.zeros((48, 64), np.float32))
    with pytest.raises(ValueError, match='float32'):
        check_frame(rgb.astype(np.float32), np.ones((48, 64), np.float32))
    check_frame(rgb, np.where(np.eye(48, 64) > 0, 1.5, np.nan).astype(np.float32))


def test_sparse_depth_is_splatted_so_every_point_reaches_the_model():
    rng = np.random.default_rng(4)
    rgb = np.zeros((480, 640, 3), np.uint8)
    sparse = np.full((480, 640), np.nan, np.float32)
    sparse.flat[rng.choice(480 * 640, 150, replace=False)] = rng.uniform(0.5, 4.0, 150)
    model = contract((126, 168))
    letterbox = letterbox_params((480, 640), (126, 168))
    splat = splat_depth(sparse, letterbox)
    assert np.count_nonzero(splat) >= 145  # 150 points, a few share a model pixel
    assert np.count_nonzero(letterbox.apply(sparse, 'nearest') > 0) < 30  # what sampling keeps
    _, pde, _ = prepare_inputs(rgb, sparse, model)
    np.testing.assert_array_equal(pde[0], positional_depth_encoding(splat, model.pde))
    # Two points on one model pixel: the nearer occludes the farther.
    pair = np.zeros((480, 640), np.float32)
    pair[240, 320], pair[240, 321] = 3.0, 1.0
    assert splat_depth(pair, letterbox)[np.nonzero(splat_depth(pair, letterbox))].tolist() == [1.0]


def test_dense_depth_is_resampled_by_nearest_neighbour():
    rng = np.random.default_rng(5)
    rgb = np.zeros((480, 640, 3), np.uint8)
    dense = rng.uniform(0.5, 4.0, (480, 640)).astype(np.float32)
    dense[:100] = 0.0  # 79 % valid: dense
    model = contract((126, 168))
    letterbox = letterbox_params((480, 640), (126, 168))
    _, pde, _ = prepare_inputs(rgb, dense, model)
    np.testing.assert_array_equal(
        pde[0], positional_depth_encoding(letterbox.apply(dense, 'nearest'), model.pde))
