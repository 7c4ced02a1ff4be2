"""sensor_msgs/Image codec against hand-built messages with known bytes (REP 118)."""

import os
import struct

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from vd_ros.image_codec import (array_to_image, decode_depth, decode_rgb, image_to_array,
                                ImageEncodingError)

# encoding -> (dtype, channels), written out independently of the module's own table.
ENCODINGS = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4),
    'bgra8': (np.uint8, 4), 'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1),
    '8UC1': (np.uint8, 1), '8UC2': (np.uint8, 2), '8UC3': (np.uint8, 3),
    '8UC4': (np.uint8, 4), '16UC1': (np.uint16, 1), '16SC1': (np.int16, 1),
    '32FC1': (np.float32, 1), '32FC2': (np.float32, 2), '32FC3': (np.float32, 3),
    '32FC7': (np.float32, 7), '64FC1': (np.float64, 1),
}


def make_image(encoding, height, width, step, data, bigendian=False):
    """Build an Image message by hand."""
    msg = Image()
    msg.encoding = encoding
    msg.height, msg.width, msg.step = height, width, step
    msg.is_bigendian = int(bigendian)
    msg.data = bytes(data)
    return msg


def random_array(dtype, channels, height=3, width=5, seed=0):
    """Return an array of ``dtype`` spanning its range (incl. negatives and fractions)."""
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return (rng.standard_normal(shape) * 1000.0).astype(dtype)


@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('padding', [0, 3])
@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding, padding, bigendian):
    dtype, channels = ENCODINGS[encoding]
    array = random_array(dtype, channels)
    msg = array_to_image(array, encoding, step_padding=padding, bigendian=bigendian)
    bpp = np.dtype(dtype).itemsize * channels
    assert (msg.height, msg.width, msg.step) == (3, 5, 5 * bpp + padding)
    assert len(msg.data) == msg.step * 3
    assert msg.is_bigendian == int(bigendian)
    # The wire bytes of the first row are the elements in the requested byte order.
    first_row = array[0].astype(np.dtype(dtype).newbyteorder('>' if bigendian else '<'))
    assert bytes(msg.data[:5 * bpp]) == first_row.tobytes()
    decoded = image_to_array(msg)
    assert decoded.dtype == np.dtype(dtype) and decoded.dtype.isnative
    assert decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_16uc1_big_endian_known_value():
    msg = make_image('16UC1', 1, 2, 4, [0x01, 0x02, 0x00, 0x07], bigendian=True)
    np.testing.assert_array_equal(image_to_array(msg), [[258, 7]])
    msg = make_image('16UC1', 1, 2, 4, [0x01, 0x02, 0x00, 0x07], bigendian=False)
    np.testing.assert_array_equal(image_to_array(msg), [[513, 1792]])


def test_16sc1_negative_big_endian():
    msg = make_image('16SC1', 1, 1, 2, [0xFF, 0xFE], bigendian=True)
    assert image_to_array(msg)[0, 0] == -2


def test_32fc1_and_64fc1_known_bytes():
    msg = make_image('32FC1', 1, 2, 8, struct.pack('>2f', 1.5, -0.25), bigendian=True)
    np.testing.assert_array_equal(image_to_array(msg), np.array([[1.5, -0.25]], np.float32))
    msg = make_image('64FC1', 2, 1, 8, struct.pack('<2d', 3.125, 1e-300))
    np.testing.assert_array_equal(image_to_array(msg), [[3.125], [1e-300]])


def test_32fc3_big_endian_padded_rows():
    row0 = struct.pack('>6f', 1, 2, 3, 4, 5, 6) + b'\xaa' * 4
    row1 = struct.pack('>6f', 7, 8, 9, 10, 11, 12) + b'\xbb' * 4
    msg = make_image('32FC3', 2, 2, 28, row0 + row1, bigendian=True)
    expected = np.arange(1, 13, dtype=np.float32).reshape(2, 2, 3)
    np.testing.assert_array_equal(image_to_array(msg), expected)


def test_rgb8_step_not_a_multiple_of_pixel_size():
    # width 2 x 3 bytes = 6, step 7: one padding byte per row, rows start at 0 and 7.
    data = [1, 2, 3, 4, 5, 6, 99, 7, 8, 9, 10, 11, 12, 99]
    msg = make_image('rgb8', 2, 2, 7, data)
    expected = np.array([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]], np.uint8)
    np.testing.assert_array_equal(image_to_array(msg), expected)


def test_result_does_not_alias_message():
    msg = make_image('mono8', 1, 2, 2, [5, 6])
    image = image_to_array(msg)
    image[0, 0] = 200
    assert msg.data[0] == 5
    assert image.flags.c_contiguous


def test_decode_rgb_channel_orders():
    bgr = make_image('bgr8', 1, 1, 3, [10, 20, 30])
    bgra = make_image('bgra8', 1, 1, 4, [10, 20, 30, 255])
    rgba = make_image('rgba8', 1, 1, 4, [30, 20, 10, 0])
    rgb = make_image('rgb8', 1, 1, 3, [30, 20, 10])
    for msg in (bgr, bgra, rgba, rgb):
        decoded = decode_rgb(msg)
        assert decoded.dtype == np.uint8 and decoded.shape == (1, 1, 3)
        np.testing.assert_array_equal(decoded[0, 0], [30, 20, 10], err_msg=msg.encoding)
    mono = decode_rgb(make_image('mono8', 1, 2, 2, [7, 9]))
    np.testing.assert_array_equal(mono, [[[7, 7, 7], [9, 9, 9]]])


def test_decode_rgb_rejects_other_encodings():
    with pytest.raises(ImageEncodingError, match='16UC1'):
        decode_rgb(make_image('16UC1', 1, 1, 2, [0, 1]))


def test_decode_depth_millimetres():
    data = struct.pack('<4H', 1234, 0, 65535, 1)
    depth = decode_depth(make_image('16UC1', 2, 2, 4, data))
    assert depth.dtype == np.float32 and depth.shape == (2, 2)
    np.testing.assert_array_equal(depth, np.array([[1.234, 0.0], [65.535, 0.001]], np.float32))
    # mono16 is read as millimetres too; big-endian 0x04D2 = 1234.
    depth = decode_depth(make_image('mono16', 1, 1, 2, [0x04, 0xD2], bigendian=True))
    assert depth[0, 0] == np.float32(1.234)
    capped = decode_depth(make_image('16UC1', 2, 2, 4, data), max_depth_m=10.0)
    np.testing.assert_array_equal(capped, np.array([[1.234, 0.0], [0.0, 0.001]], np.float32))


def test_decode_depth_metres_invalid_values():
    values = [2.5, float('nan'), float('inf'), -float('inf'), -1.0, 0.0]
    depth = decode_depth(make_image('32FC1', 1, 6, 24, struct.pack('<6f', *values)))
    np.testing.assert_array_equal(depth, [[2.5, 0, 0, 0, 0, 0]])
    assert np.isfinite(depth).all()


def test_decode_depth_rejects_other_encodings():
    for encoding, nbytes in (('rgb8', 3), ('16SC1', 2), ('64FC1', 8), ('8UC1', 1)):
        with pytest.raises(ImageEncodingError, match=encoding):
            decode_depth(make_image(encoding, 1, 1, nbytes, [0] * nbytes))


@pytest.mark.parametrize('encoding,height,width,step,nbytes,match', [
    ('yuv422', 1, 1, 2, 2, 'yuv422'),
    ('32UC1', 1, 1, 4, 4, '32UC1'),
    ('rgb8', 2, 2, 6, 11, '11 bytes'),  # truncated
    ('rgb8', 2, 2, 6, 13, '13 bytes'),  # too long
    ('16UC1', 1, 3, 5, 5, 'step 5'),  # step < 3 x 2
    ('32FC1', 0, 4, 16, 0, 'height=0'),
])
def test_malformed_messages_raise(encoding, height, width, step, nbytes, match):
    with pytest.raises(ImageEncodingError, match=match):
        image_to_array(make_image(encoding, height, width, step, [0] * nbytes))


def test_array_to_image_checks_type_and_copies_header():
    with pytest.raises(ImageEncodingError, match='float32'):
        array_to_image(np.zeros((2, 2), np.float32), '16UC1')
    with pytest.raises(ImageEncodingError, match=r'\(2, 2\)'):
        array_to_image(np.zeros((2, 2), np.uint8), 'rgb8')
    header = Header(frame_id='camera_color_optical_frame')
    header.stamp.sec, header.stamp.nanosec = 17, 42
    msg = array_to_image(np.zeros((2, 2), np.uint8), 'mono8', header=header)
    header.frame_id = 'changed'
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (17, 42)
    assert msg.header.frame_id == 'camera_color_optical_frame'


def test_real_depth_frame_through_padded_big_endian_message(shared_data):
    raw = cv2.imread(os.path.join(shared_data, 'open3d_rgbd', 'depth', '00000.png'),
                     cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (480, 640)
    msg = array_to_image(raw, '16UC1', step_padding=6, bigendian=True)
    depth = decode_depth(msg)
    np.testing.assert_array_equal(depth, raw.astype(np.float32) / np.float32(1000.0))
    assert 0.3 < np.median(depth[depth > 0]) < 10.0
