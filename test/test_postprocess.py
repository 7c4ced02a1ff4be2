"""Segmentation labels and colours and feature PCA against known answers."""

import cv2
import numpy as np
import pytest

from vd_ros.core.postprocess import (class_palette, colorize_labels, feature_pca_rgb,
                                     label_palette, labels_from_logits)
from vd_ros.core.preprocess import letterbox_params


def test_labels_from_one_hot_logits_recover_camera_labels():
    rows, cols = np.mgrid[0:480, 0:640]
    labels = ((rows // 120) * 4 + cols // 160).astype(np.uint8)  # 16 classes in 4 x 4 blocks
    letterbox = letterbox_params(labels.shape, (336, 336))
    one_hot = (labels[..., None] == np.arange(16)).astype(np.float32)  # (480, 640, 16)
    logits = letterbox.apply(one_hot, 'linear').transpose(2, 0, 1)  # (16, 336, 336)
    restored = labels_from_logits(logits, letterbox)
    assert restored.shape == (480, 640) and restored.dtype == np.uint8
    interior = (rows % 120 >= 2) & (rows % 120 < 118) & (cols % 160 >= 2) & (cols % 160 < 158)
    np.testing.assert_array_equal(restored[interior], labels[interior])


def test_label_border_from_patch_grid_logits_is_where_the_logits_cross():
    # Two classes; logit_1 - logit_0 = x - 100.3 in model input pixels, given on the 14-pixel
    # patch grid. Bilinear upsampling keeps a linear function, so class 1 starts exactly at the
    # camera column u with (u + 0.5) * scale - 0.5 = 100.3.
    letterbox = letterbox_params((480, 640), (336, 336))
    centres = (np.arange(24) + 0.5) * 14 - 0.5  # model x of each patch column
    margin = np.tile(centres - 100.3, (24, 1))  # (24, 24)
    logits = np.stack([np.zeros_like(margin), margin]).astype(np.float32)  # (2, 24, 24)
    labels = labels_from_logits(logits, letterbox)
    first_u = int(np.ceil((100.3 + 0.5) / letterbox.scale - 0.5))  # 191.5 -> 192
    np.testing.assert_array_equal(labels[100, :first_u], 0)
    np.testing.assert_array_equal(labels[100, first_u:], 1)
    assert (labels == labels[:1]).all()


def test_label_dtype_follows_class_count():
    letterbox = letterbox_params((6, 8), (6, 8))
    logits = np.zeros((300, 6, 8), np.float32)
    logits[299, :, 4:] = 1.0
    labels = labels_from_logits(logits, letterbox)
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels[:, 4:], 299)
    np.testing.assert_array_equal(labels[:, :4], 0)
    assert labels_from_logits(logits[:3], letterbox).dtype == np.uint8
    wide = labels_from_logits(logits, letterbox, np.int64)  # torch's label type
    assert wide.dtype == np.int64 and np.array_equal(wide, labels)
    with pytest.raises(ValueError, match=r'\(6, 8\)'):
        labels_from_logits(logits[0], letterbox)


def test_palette_is_the_voc_colour_map():
    palette = label_palette(256)
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0),
                4: (0, 0, 128), 8: (64, 0, 0), 15: (192, 128, 128), 255: (224, 224, 192)}
    for label, colour in expected.items():
        assert tuple(palette[label]) == colour, label
    assert len({tuple(c) for c in palette}) == 256
    np.testing.assert_array_equal(label_palette(5), palette[:5])


def test_colorize_labels_overlay():
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    np.testing.assert_array_equal(colorize_labels(labels),
                                  [[[0, 0, 0], [128, 0, 0]], [[0, 128, 0], [128, 0, 0]]])
    rgb = np.full((2, 2, 3), 100, np.uint8)
    overlay = colorize_labels(labels, rgb, alpha=0.5)
    assert overlay.dtype == np.uint8
    np.testing.assert_array_equal(overlay[0, 0], [100, 100, 100])  # background untouched
    np.testing.assert_array_equal(overlay[0, 1], [114, 50, 50])
    np.testing.assert_array_equal(overlay[1, 0], [50, 114, 50])
    with pytest.raises(ValueError, match=r'\(3, 2, 3\)'):
        colorize_labels(labels, np.zeros((3, 2, 3), np.uint8))


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_colorize_labels_with_a_model_s_class_colours(dtype):
    labels = np.array([[0, 1], [2, 3]], dtype)
    palette = class_palette(((9, 9, 9), (200, 0, 100), (0, 40, 0)))
    # Given colours for ids 0-2; id 3 keeps the VOC colour (128, 128, 0).
    np.testing.assert_array_equal(colorize_labels(labels, palette=palette),
                                  [[[9, 9, 9], [200, 0, 100]], [[0, 40, 0], [128, 128, 0]]])
    rgb = np.full((2, 2, 3), 100, np.uint8)
    overlay = colorize_labels(labels, rgb, 0.5, palette)
    np.testing.assert_array_equal(overlay[0, 0], [100, 100, 100])  # background: the image
    np.testing.assert_array_equal(overlay[0, 1], [150, 50, 100])
    np.testing.assert_array_equal(overlay[1, 0], [50, 70, 50])
    assert class_palette((), 4).tolist() == label_palette(4).tolist()


def test_feature_pca_follows_dominant_direction():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:12, 0:16]
    directions = np.linalg.qr(rng.standard_normal((32, 3)))[0].T  # (3, 32) orthonormal
    strengths = np.stack([cols / 15.0 * 10.0, rows / 11.0 * 4.0, np.sin(cols + rows)])
    features = np.einsum('kd,khw->dhw', directions, strengths)  # (32, 12, 16)
    features += 0.01 * rng.standard_normal(features.shape)
    image, basis = feature_pca_rgb(features.astype(np.float32))
    assert image.shape == (12, 16, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image.reshape(-1, 3).min(axis=0), 0)
    np.testing.assert_array_equal(image.reshape(-1, 3).max(axis=0), 255)
    for channel, driver in ((0, cols), (1, rows)):  # strongest variance -> first component
        correlation = np.corrcoef(image[..., channel].ravel(), driver.ravel())[0, 1]
        assert abs(correlation) > 0.99, (channel, correlation)
    assert basis.components.shape == (3, 32)
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(3), atol=1e-9)
    # A fixed basis gives the same colours for the same features, even when negated inputs
    # would flip a freshly computed basis.
    again, same = feature_pca_rgb(features, basis)
    assert same is basis
    np.testing.assert_array_equal(again, image)
    flipped, _ = feature_pca_rgb(2 * basis.mean[:, None, None] - features, basis)
    np.testing.assert_array_equal(flipped.astype(int), 255 - image.astype(int))
    with pytest.raises(ValueError, match='D=8'):
        feature_pca_rgb(features[:8], basis)


def test_feature_pca_rejects_non_finite():
    features = np.ones((4, 3, 3), np.float32)
    features[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match='1 non-finite'):
        feature_pca_rgb(features)


def test_labels_are_the_argmax_for_an_identity_letterbox():
    # Same size in and out: the logits are only argmaxed.
    logits = np.random.default_rng(1).standard_normal((5, 7, 9)).astype(np.float32)
    labels = labels_from_logits(logits, letterbox_params((7, 9), (7, 9)))
    np.testing.assert_array_equal(labels, np.argmax(logits, axis=0))
    assert len(np.unique(labels)) == 5
    logits[3] = logits[1] = logits.max(axis=0)  # ties: the first channel wins, as in argmax
    labels = labels_from_logits(logits, letterbox_params((7, 9), (7, 9)))
    np.testing.assert_array_equal(labels, np.argmax(logits, axis=0))
    assert 1 in labels and 3 not in labels


def smooth_logits(classes, grid, seed=0):
    """Return (K, h, w) logits: smooth random fields (cubic upsampling of coarse noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((classes, grid[0] // 6 + 2, grid[1] // 6 + 2)).astype(np.float32)
    return np.stack([cv2.resize(c, grid[::-1], interpolation=cv2.INTER_CUBIC) for c in coarse])


@pytest.mark.parametrize('classes,grid', [(22, (96, 128)), (41, (24, 32)), (3, (24, 24))])
def test_labels_agree_with_full_resolution_argmax_up_to_sampling(classes, grid):
    # Reference: bilinear logits at every camera pixel (the restore tested in test_preprocess),
    # argmax there. Taking the argmax at model-input pixels moves each sample by at most half a
    # model pixel per axis, i.e. 0.5 / scale camera pixels, so a class's logit changes by at most
    # g / scale (g: its largest change between neighbouring camera pixels) and a label may only
    # differ where the reference's winning margin is below twice that.
    letterbox = letterbox_params((480, 640), (336, 448) if grid[0] != grid[1] else (336, 336))
    logits = smooth_logits(classes, grid)
    restored = letterbox.restore(logits.transpose(1, 2, 0).copy(), 'linear')  # (480, 640, K)
    reference = np.argmax(restored, axis=2)
    labels = labels_from_logits(logits, letterbox)
    assert labels.shape == (480, 640) and labels.dtype == np.uint8
    differ = labels != reference
    assert 0 < differ.mean() < 0.05
    gradient = max(np.abs(np.diff(restored, axis=axis)).max() for axis in (0, 1))
    rows, cols = np.nonzero(differ)
    margin = restored[rows, cols, reference[differ]] - restored[rows, cols, labels[differ]]
    assert margin.max() <= 2 * gradient / letterbox.scale


def test_labels_at_camera_resolution_when_upscaling():
    # A camera smaller than the model input: the argmax is taken at camera resolution.
    letterbox = letterbox_params((60, 80), (336, 448))
    logits = smooth_logits(5, (24, 32), seed=3)
    reference = np.argmax(letterbox.restore(logits.transpose(1, 2, 0).copy(), 'linear'), axis=2)
    np.testing.assert_array_equal(labels_from_logits(logits, letterbox), reference)


@pytest.mark.parametrize('alpha', [0.5, 0.3, 1.0])
def test_colorize_matches_float_blend(alpha):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 30, (48, 64)).astype(np.uint16)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    overlay = colorize_labels(labels, rgb, alpha)
    expected = np.rint((1.0 - alpha) * rgb + alpha * label_palette(30)[labels].astype(float))
    expected[labels == 0] = rgb[labels == 0]
    difference = np.abs(overlay.astype(int) - expected.astype(int))
    assert difference.max() <= (0 if alpha in (0.5, 1.0) else 1)
    np.testing.assert_array_equal(overlay[labels == 0], rgb[labels == 0])
