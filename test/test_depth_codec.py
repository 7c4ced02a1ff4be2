"""Depth decoding against values read with other decoders (PIL, raw bytes) and hand formulas."""

import os

import numpy as np
from PIL import Image
import pytest

from vd_ros.core.depth_codec import decode_depth
from vd_ros.core.depth_codec import DepthFormatError
from vd_ros.core.depth_codec import ENCODINGS
from vd_ros.core.depth_codec import FrameReadError
from vd_ros.core.depth_codec import read_depth
from vd_ros.core.depth_codec import read_rgb
from vd_ros.core.depth_codec import sunrgbd_to_millimetres


def _pil(path):
    return np.array(Image.open(path))


def _write_pgm(path, width, height, payload):
    with open(path, 'wb') as stream:
        stream.write(f'P5 {width} {height} 65535\n'.encode() + payload)


@pytest.mark.parametrize('encoding, raw, expected', [
    ('mm', [0, 1, 1500, 65535], [0.0, 0.001, 1.5, 65.535]),
    ('7scenes', [0, 1500, 65534, 65535], [0.0, 1.5, 65.534, 0.0]),
    ('tum', [0, 5000, 10920], [0.0, 1.0, 2.184]),
    ('ycbv', [0, 10000, 8130], [0.0, 1.0, 0.813]),
    # 51976 = 0xcb08 -> 0x1961 = 6497 mm; 1 -> 1 << 13 = 8192 mm; 0x8000 -> 0x1000 = 4096 mm
    ('sunrgbd', [0, 51976, 1, 0x8000], [0.0, 6.497, 8.192, 4.096]),
])
def test_integer_encodings_decode_hand_computed_metres(encoding, raw, expected):
    depth = decode_depth(np.array([raw], np.uint16), encoding)
    assert depth.dtype == np.float32 and depth.shape == (1, len(raw))
    np.testing.assert_allclose(depth[0], expected, rtol=1e-6)


def test_sunrgbd_rotation_on_every_bit():
    values = np.array([[1 << bit for bit in range(16)]], np.uint16)
    rotated = sunrgbd_to_millimetres(values)[0].tolist()
    # bits 0..2 wrap to 13..15, every other bit moves down by 3
    assert rotated == [1 << ((bit - 3) % 16) for bit in range(16)]


def test_metres_and_scale_never_return_nan_or_negative():
    raw = np.array([[np.nan, np.inf, -np.inf, -1.0, 0.0, 2.5]], np.float32)
    np.testing.assert_array_equal(decode_depth(raw, 'metres')[0], [0, 0, 0, 0, 0, 2.5])
    np.testing.assert_array_equal(decode_depth(raw, '32FC1')[0], [0, 0, 0, 0, 0, 2.5])
    scaled = decode_depth(np.array([[0, 4, 1000]], np.int32), 'scale', scale=0.25)
    np.testing.assert_allclose(scaled[0], [0.0, 1.0, 250.0])
    np.testing.assert_allclose(decode_depth(np.array([[1234]], np.uint16), '16UC1'), [[1.234]])


def test_ycbv_factor_depth_parameter():
    depth = decode_depth(np.array([[5000]], np.uint16), 'ycbv', factor_depth=5000)
    assert depth[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize('raw, encoding, params, word', [
    (np.zeros((2, 2), np.uint16), 'kinect', {}, "'kinect'"),
    (np.zeros((2, 2), np.float32), 'mm', {}, 'float32'),
    (np.zeros((2, 2), np.uint8), 'tum', {}, 'uint8'),
    (np.zeros((2, 2, 1), np.uint16), 'mm', {}, 'ndim=3'),
    (np.zeros((2, 2), np.uint16), 'mm', {'scale': 2}, "'scale'"),
    (np.zeros((2, 2), np.uint16), 'scale', {}, 'scale'),
    (np.zeros((2, 2), np.uint16), 'scale', {'scale': -1}, '-1'),
    (np.zeros((2, 2), np.uint16), 'ycbv', {'factor_depth': 0}, '0'),
])
def test_bad_input_raises_value_error_naming_the_value(raw, encoding, params, word):
    with pytest.raises(ValueError, match=word):
        decode_depth(raw, encoding, **params)


def test_wrong_dtype_is_a_depth_format_error():
    with pytest.raises(DepthFormatError):
        decode_depth(np.zeros((2, 2), np.float64), 'sunrgbd')
    assert 'nyu_raw' in ENCODINGS


def test_nyu_pgm_hand_built_bytes(tmp_path):
    # Kinect disparities as the NYU dumps store them (little-endian samples in a PGM):
    # 1000 -> 351.3 / 92.5 = 3.797838 m; 800 -> 351.3 / 292.5 = 1.201026 m;
    # 2047 (no return) -> negative -> invalid; 1090 -> 140.52 m > 10 m -> invalid.
    disparities = [1000, 800, 2047, 1090]
    path = str(tmp_path / 'd.pgm')
    _write_pgm(path, 4, 1, b''.join(d.to_bytes(2, 'little') for d in disparities))
    depth = read_depth(path, 'nyu_raw')
    np.testing.assert_allclose(depth[0], [3.797838, 1.201026, 0.0, 0.0], rtol=1e-6)
    # a PGM with standard (big-endian) samples decodes with swap_bytes=False
    _write_pgm(path, 4, 1, b''.join(d.to_bytes(2, 'big') for d in disparities))
    depth = read_depth(path, 'nyu_raw', swap_bytes=False)
    np.testing.assert_allclose(depth[0], [3.797838, 1.201026, 0.0, 0.0], rtol=1e-6)


def test_nyu_real_frame_against_raw_bytes(shared_data):
    path = os.path.join(shared_data, 'open3d_rgbd', 'other_formats', 'NYU_depth.pgm')
    with open(path, 'rb') as stream:
        data = stream.read()
    header = b'P5 640 480 65535\n'
    assert data.startswith(header)
    offset = len(header) + 2 * (240 * 640 + 320)
    # bytes d1 03 at (240, 320): disparity 0x03d1 = 977 -> 351.3 / 115.5 = 3.041558 m
    assert data[offset:offset + 2] == b'\xd1\x03'
    depth = read_depth(path, 'nyu_raw')
    assert depth[240, 320] == pytest.approx(3.041558, rel=1e-6)
    # the first pixels hold 0x07ff = 2047, the Kinect's no-data marker
    assert data[len(header):len(header) + 2] == b'\xff\x07' and depth[0, 0] == 0.0
    valid = depth[depth > 0]
    assert 0.85 < valid.size / depth.size < 0.99 and valid.max() <= 10.0


@pytest.mark.parametrize('relative, encoding, pixel, raw_value, metres', [
    ('7scenes_redkitchen/frame-000033.depth.png', '7scenes', (240, 320), 1329, 1.329),
    ('open3d_rgbd/other_formats/TUM_depth.png', 'tum', (240, 320), 10920, 2.184),
    ('open3d_rgbd/other_formats/SUN_depth.png', 'sunrgbd', (300, 300), 51976, 6.497),
    ('ycbv/frames/0000/000001-depth.png', 'ycbv', (0, 0), 8130, 0.813),
    ('open3d_rgbd/depth/00000.png', 'mm', (240, 320), 2195, 2.195),
])
def test_real_frames_match_pil_raw_and_formula(shared_data, relative, encoding, pixel,
                                               raw_value, metres):
    path = os.path.join(shared_data, relative)
    raw = _pil(path)
    assert raw[pixel] == raw_value
    depth = read_depth(path, encoding)
    assert depth.shape == raw.shape == (480, 640) and depth.dtype == np.float32
    assert depth[pixel] == pytest.approx(metres, rel=1e-6)
    assert np.isfinite(depth).all() and (depth >= 0).all()
    np.testing.assert_array_equal(depth == 0, raw == 0 if encoding != '7scenes'
                                  else (raw == 0) | (raw == 65535))


def test_7scenes_65535_is_invalid(shared_data):
    path = os.path.join(shared_data, '7scenes_redkitchen', 'frame-000033.depth.png')
    raw = _pil(path)
    assert raw[391, 553] == 65535
    assert read_depth(path, '7scenes')[391, 553] == 0.0
    assert read_depth(path, 'mm')[391, 553] == pytest.approx(65.535)


def test_read_rgb_is_rgb_order(shared_data):
    path = os.path.join(shared_data, 'open3d_rgbd', 'other_formats', 'NYU_color.ppm')
    rgb = read_rgb(path)
    assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, _pil(path))


def test_corrupt_and_truncated_files_raise_frame_read_error(shared_data, tmp_path):
    depth_png = os.path.join(shared_data, 'open3d_rgbd', 'depth', '00000.png')
    color_jpg = os.path.join(shared_data, '7scenes_redkitchen', 'frame-000000.color.jpg')
    for source, reader in ((depth_png, lambda p: read_depth(p, 'mm')), (color_jpg, read_rgb)):
        with open(source, 'rb') as stream:
            data = stream.read()
        path = str(tmp_path / ('cut_' + os.path.basename(source)))
        with open(path, 'wb') as stream:
            stream.write(data[:len(data) * 9 // 10])
        with pytest.raises(FrameReadError, match='cut_'):
            reader(path)
    missing = str(tmp_path / 'missing.png')
    with pytest.raises(FrameReadError, match='missing.png'):
        read_depth(missing, 'mm')
    with pytest.raises(FrameReadError, match='one channel'):
        read_depth(color_jpg, 'mm')
    with pytest.raises(DepthFormatError, match='000001-label.png.*uint8'):
        read_depth(os.path.join(shared_data, 'ycbv', 'frames', '0000', '000001-label.png'),
                   'ycbv')
