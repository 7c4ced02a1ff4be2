"""vd_ros.frame_check: every drop cause of a bad pair, in order, and what a good pair becomes."""

import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from vd_ros.camera_info_cache import CameraInfoCache
from vd_ros.frame_check import (CAMERA_INFO_WAIT_S, check_camera_info, decode_checked,
                                FrameCheck, FrameDropped)
from vd_ros.image_codec import array_to_image

H, W = 6, 8
SETTINGS = {'max_input_pixels': H * W, 'depth.min_m': 0.1, 'depth.max_m': 10.0,
            'sync.slop': 0.02}
TOPIC = '/camera/rgb/camera_info'


def pair(depth_m=None, stamp_s: int = 7, rgb_size=(H, W)):
    """Return an rgb8 and a 16UC1 (mm) image with one stamp; depth 2 m unless given."""
    header = Header(frame_id='cam')
    header.stamp.sec = stamp_s
    rgb = np.full((*rgb_size, 3), 90, np.uint8)
    depth = np.full((H, W), 2.0) if depth_m is None else np.asarray(depth_m, float)
    return (array_to_image(rgb, 'rgb8', header),
            array_to_image(np.rint(depth * 1000).astype(np.uint16), '16UC1', header))


def camera_info(stamp_s: int = 7, size=(H, W), fx: float = 5.0) -> CameraInfo:
    info = CameraInfo(height=size[0], width=size[1])
    info.k = [fx, 0.0, 4.0, 0.0, fx, 3.0, 0.0, 0.0, 1.0]
    info.header.stamp.sec = stamp_s
    return info


def cause_of(call, *args) -> FrameDropped:
    with pytest.raises(FrameDropped) as raised:
        call(*args)
    return raised.value


def test_a_good_pair_is_decoded_with_depth_outside_the_range_zeroed():
    depth = np.full((H, W), 2.0)
    depth[0, :3] = [0.05, 10.5, 0.0]  # nearer than min, farther than max, no measurement
    rgb_msg, depth_msg = pair(depth)
    rgb, depth_out = decode_checked(rgb_msg, depth_msg, SETTINGS)
    assert rgb.shape == (H, W, 3) and (rgb == 90).all()
    assert depth_out.dtype == np.float32 and depth_out.shape == (H, W)
    np.testing.assert_array_equal(depth_out[0, :3], 0.0)
    np.testing.assert_allclose(depth_out[0, 3:], 2.0)
    np.testing.assert_allclose(depth_out[1:], 2.0)


def test_an_oversized_image_is_dropped_before_its_pixels_are_read():
    rgb_msg, depth_msg = pair()
    rgb_msg.encoding = 'yuv422'  # would be bad_encoding if it were decoded
    drop = cause_of(decode_checked, rgb_msg, depth_msg, {**SETTINGS, 'max_input_pixels': 47})
    assert drop.cause == 'oversized'
    assert str(drop) == ('8x6 image: more than max_input_pixels 47; raise it for a larger '
                         'camera')


def test_bad_encoding_size_mismatch_and_empty_depth():
    rgb_msg, depth_msg = pair()
    depth_msg.encoding = 'rgb8'
    assert cause_of(decode_checked, rgb_msg, depth_msg, SETTINGS).cause == 'bad_encoding'
    rgb_msg, _ = pair(rgb_size=(H, W - 2))
    drop = cause_of(decode_checked, rgb_msg, pair()[1], SETTINGS)
    assert drop.cause == 'size_mismatch' and 'register the depth image' in str(drop)
    drop = cause_of(decode_checked, *pair(np.full((H, W), 12.0)), SETTINGS)
    assert drop.cause == 'empty_depth' and str(drop) == 'no depth pixel in [0.1, 10.0] m'


def test_camera_info_of_another_size_non_finite_or_without_focal_length():
    check_camera_info(camera_info(), (H, W))  # a good one passes
    drop = cause_of(check_camera_info, camera_info(size=(H, W + 1)), (H, W))
    assert drop.cause == 'camera_info_mismatch' and str(drop) == \
        'camera_info is 9x6, the image 8x6'
    assert cause_of(check_camera_info, camera_info(fx=float('nan')), (H, W)).cause == \
        'non_finite'
    drop = cause_of(check_camera_info, camera_info(fx=0.0), (H, W))
    assert drop.cause == 'camera_info_mismatch' and 'non-positive focal length' in str(drop)


def test_the_frame_gets_its_own_camera_info_or_a_drop_naming_the_topic():
    cache = CameraInfoCache()
    check = FrameCheck(cache, TOPIC)
    start = time.monotonic()
    drop = cause_of(check, *pair(), SETTINGS)
    assert time.monotonic() - start >= CAMERA_INFO_WAIT_S  # waited for it to come
    assert drop.cause == 'camera_info_missing'
    assert str(drop) == f'no camera_info received yet on {TOPIC}'
    cache.add(camera_info(stamp_s=6, fx=4.0))
    cache.add(camera_info(stamp_s=7, fx=5.0))
    rgb, depth, info = check(*pair(stamp_s=7), SETTINGS)
    assert info.k[0] == 5.0 and rgb.shape[:2] == depth.shape == (H, W)
    cache.add(camera_info(stamp_s=8, size=(H, W + 1)))  # checked after the lookup
    assert cause_of(check, *pair(stamp_s=8), SETTINGS).cause == 'camera_info_mismatch'
