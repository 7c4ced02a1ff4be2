"""Intrinsics under resizing and letterboxing; depth back-projection."""

import json
import os

import cv2
import numpy as np
import pytest

from vd_ros.core.intrinsics import (camera_matrix, depth_to_points, letterbox_intrinsics,
                                    scale_intrinsics)
from vd_ros.core.preprocess import letterbox_params

PRIMESENSE = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])


def test_scale_intrinsics_known_values():
    # 640x480 with the principal point at the image centre, halved: the centre of a
    # 320x240 image is (159.5, 119.5).
    half = scale_intrinsics(PRIMESENSE, 0.5, 0.5)
    np.testing.assert_allclose(half, [[262.5, 0, 159.5], [0, 262.5, 119.5], [0, 0, 1]])
    row_major = PRIMESENSE.ravel().tolist()  # CameraInfo.k layout
    np.testing.assert_allclose(scale_intrinsics(row_major, 2.0, 1.5),
                               [[1050, 0, 639.5], [0, 787.5, 359.5], [0, 0, 1]])


def test_scaled_intrinsics_keep_the_rays_of_pixel_centres():
    rng = np.random.default_rng(0)
    k = np.array([[600.0, 1.5, 310.2], [0.0, 590.0, 250.7], [0.0, 0.0, 1.0]])
    for sx, sy in ((0.7, 0.7), (2.0, 2.0), (0.3, 1.7)):
        scaled = scale_intrinsics(k, sx, sy)
        u, v = rng.uniform(0, 640, 20), rng.uniform(0, 480, 20)
        pixels = np.stack([u, v, np.ones(20)])  # (3, 20)
        # The same point of the scene sits at (u + 0.5) * s - 0.5 in the resized image.
        resized = np.stack([(u + 0.5) * sx - 0.5, (v + 0.5) * sy - 0.5, np.ones(20)])
        np.testing.assert_allclose(np.linalg.solve(scaled, resized), np.linalg.solve(k, pixels),
                                   atol=1e-12)


def test_letterbox_intrinsics_follow_a_rendered_point():
    # Draw one bright camera pixel, letterbox the image, find the blob centre in the model
    # input and check it against the projection with the letterbox intrinsics.
    letterbox = letterbox_params((480, 640), (1000, 1280))  # 2x with 20 rows of padding
    k_model = letterbox_intrinsics(PRIMESENSE, letterbox)
    point = np.array([0.31, -0.17, 2.0])  # metres, camera frame
    u, v = (PRIMESENSE @ point)[:2] / point[2]
    image = np.zeros((480, 640), np.float32)
    image[int(round(v)), int(round(u))] = 1.0
    model = letterbox.apply(image, 'nearest')
    rows, cols = np.nonzero(model)
    blob = np.array([cols.mean(), rows.mean()])
    projected = (k_model @ point)[:2] / point[2]
    rounding = (np.array([round(u), round(v)]) - [u, v]) * 2.0  # the pixel drawn was rounded
    np.testing.assert_allclose(blob, projected + rounding, atol=1e-9)
    assert k_model[1, 2] == pytest.approx((239.5 + 0.5) * 2 - 0.5 + 20)


def test_depth_to_points_plane_at_two_metres():
    depth = np.full((480, 640), 2.0, np.float32)
    depth[0, 0] = 0.0
    depth[5, 7] = np.nan
    depth[9, 9] = np.inf
    points = depth_to_points(depth, PRIMESENSE)
    assert points.shape == (480 * 640 - 3, 3) and points.dtype == np.float32
    np.testing.assert_array_equal(points[:, 2], 2.0)
    v, u = np.divmod(np.arange(480 * 640), 640)
    keep = np.isfinite(depth.ravel()) & (depth.ravel() > 0)
    np.testing.assert_allclose(points[:, 0], (u[keep] - 319.5) * 2.0 / 525.0, atol=1e-6)
    np.testing.assert_allclose(points[:, 1], (v[keep] - 239.5) * 2.0 / 525.0, atol=1e-6)


def test_depth_to_points_stride_and_colours():
    depth = np.full((48, 64), 1.5, np.float32)
    depth[8, 12] = 0.0
    rows, cols = np.mgrid[0:48, 0:64]
    rgb = np.stack([cols, rows, np.full_like(rows, 7)], axis=2).astype(np.uint8)
    points, colours = depth_to_points(depth, PRIMESENSE, rgb=rgb, stride=4)
    assert points.shape == (12 * 16 - 1, 3) and colours.shape == (12 * 16 - 1, 3)
    assert colours.dtype == np.uint8
    u, v = colours[:, 0].astype(float), colours[:, 1].astype(float)
    assert (u % 4 == 0).all() and (v % 4 == 0).all()
    np.testing.assert_allclose(points[:, 0], (u - 319.5) * 1.5 / 525.0, atol=1e-6)
    np.testing.assert_allclose(points[:, 1], (v - 239.5) * 1.5 / 525.0, atol=1e-6)
    with pytest.raises(ValueError, match='stride'):
        depth_to_points(depth, PRIMESENSE, stride=0)
    with pytest.raises(ValueError, match='fx=0.0'):
        camera_matrix(np.zeros((3, 3)))


def test_real_frame_reprojects_onto_its_pixels(shared_data):
    folder = os.path.join(shared_data, 'open3d_rgbd')
    with open(os.path.join(folder, 'camera_primesense.json')) as stream:
        intrinsic = json.load(stream)['intrinsic_matrix']
    k = np.array(intrinsic).reshape(3, 3).T  # stored column-major
    np.testing.assert_array_equal(k, PRIMESENSE)
    raw = cv2.imread(os.path.join(folder, 'depth', '00000.png'), cv2.IMREAD_UNCHANGED)
    depth = raw.astype(np.float32) / np.float32(1000.0)
    points = depth_to_points(depth, k, stride=2)
    assert len(points) == np.count_nonzero(raw[::2, ::2])
    pixels = (k @ points.T.astype(np.float64)).T  # (N, 3)
    uv = pixels[:, :2] / pixels[:, 2:]
    np.testing.assert_allclose(uv, np.rint(uv), atol=1e-3)
    assert (np.rint(uv) % 2 == 0).all()
