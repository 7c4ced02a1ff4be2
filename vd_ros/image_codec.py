"""``sensor_msgs/Image`` <-> numpy arrays, following REP 118 and cv_bridge semantics.

There is no cv_bridge in this environment, so this module reproduces what
``cv_bridge.imgmsg_to_cv2(msg, 'passthrough')`` returns: an array in the message's own encoding,
shape (H, W) for one channel and (H, W, C) otherwise, in native byte order. Unlike cv_bridge it
honours any ``step`` row padding (also one that is not a multiple of the pixel size) and checks
height, width, step and data length before reading.

Depth follows REP 118: ``16UC1`` is millimetres and ``32FC1`` metres; 0 (and NaN for floats)
means "no measurement". ``mono16`` is read as ``16UC1`` millimetres because many cv_bridge users
publish depth that way.
"""

import array as stdlib_array
import re

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

_NAMED_ENCODINGS = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3),
    'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'rgb16': (np.uint16, 3), 'bgr16': (np.uint16, 3),
    'rgba16': (np.uint16, 4), 'bgra16': (np.uint16, 4),
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1),
}
_BAYER_ENCODING = re.compile(r'^bayer_(rggb|bggr|gbrg|grbg)(8|16)$')
# OpenCV-style '<bits><U|S|F>C<channels>', e.g. 16UC1, 32FC3.
_CV_ENCODING = re.compile(r'^(8|16|32|64)(U|S|F)C([1-9][0-9]*)$')
_CV_DTYPES = {
    ('8', 'U'): np.uint8, ('8', 'S'): np.int8,
    ('16', 'U'): np.uint16, ('16', 'S'): np.int16,
    ('32', 'S'): np.int32, ('32', 'F'): np.float32, ('64', 'F'): np.float64,
}
_RGB_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
_DEPTH_MM_ENCODINGS = ('16UC1', 'mono16')
_DEPTH_M_ENCODINGS = ('32FC1',)


class ImageEncodingError(ValueError):
    """A ``sensor_msgs/Image`` has an unsupported encoding or inconsistent geometry."""


def encoding_layout(encoding: str) -> tuple:
    """Return the numpy element type and channel count of a REP 118 / OpenCV encoding.

    Args:
        encoding: ``Image.encoding``, e.g. ``'rgb8'``, ``'16UC1'``, ``'32FC3'``.

    Returns:
        ``(dtype, channels)`` with ``dtype`` a numpy dtype in native byte order.

    Raises:
        ImageEncodingError: For an encoding that has no fixed numpy layout (e.g. ``yuv422``).
    """
    if encoding in _NAMED_ENCODINGS:
        dtype, channels = _NAMED_ENCODINGS[encoding]
        return np.dtype(dtype), channels
    bayer = _BAYER_ENCODING.match(encoding)
    if bayer:
        return np.dtype(np.uint8 if bayer.group(2) == '8' else np.uint16), 1
    cv_match = _CV_ENCODING.match(encoding)
    if cv_match and (cv_match.group(1), cv_match.group(2)) in _CV_DTYPES:
        return np.dtype(_CV_DTYPES[cv_match.group(1), cv_match.group(2)]), int(cv_match.group(3))
    raise ImageEncodingError(f'unsupported image encoding {encoding!r}')


def _message_bytes(data) -> np.ndarray:
    """Return ``Image.data`` (array.array, bytes, list...) as a flat uint8 array."""
    try:
        return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)  # no copy
    except TypeError:  # a plain sequence of ints has no buffer
        return np.asarray(data, dtype=np.uint8)


def image_to_array(msg: Image) -> np.ndarray:
    """Decode an image message in its own encoding (cv_bridge ``passthrough``).

    Args:
        msg: The image; ``step`` may include row padding, ``is_bigendian`` may be set.

    Returns:
        A new C-contiguous array in native byte order, shape (H, W) for one channel and
        (H, W, C) otherwise, with the encoding's element type.

    Raises:
        ImageEncodingError: Unsupported encoding, zero height or width, ``step`` smaller than
            one row of pixels, or ``len(data) != step * height``.
    """
    dtype, channels = encoding_layout(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageEncodingError(
            f'{msg.encoding} image has no pixels: height={height}, width={width}')
    pixel_bytes = dtype.itemsize * channels
    if step < width * pixel_bytes:
        raise ImageEncodingError(
            f'{msg.encoding} image step {step} is smaller than width {width} x {pixel_bytes} '
            f'bytes per pixel = {width * pixel_bytes}')
    data = _message_bytes(msg.data)
    if data.size != step * height:
        raise ImageEncodingError(
            f'{msg.encoding} image data has {data.size} bytes, expected step {step} x height '
            f'{height} = {step * height}')
    wire_dtype = dtype.newbyteorder('>' if msg.is_bigendian else '<')
    rows = np.ndarray(shape=(height, width, channels), dtype=wire_dtype, buffer=data,
                      strides=(step, pixel_bytes, dtype.itemsize))  # (H, W, C) view
    image = np.ascontiguousarray(rows.astype(dtype, copy=True))  # native byte order copy
    return image.reshape(height, width) if channels == 1 else image


def array_to_image(array: np.ndarray, encoding: str, header: Header = None,
                   step_padding: int = 0, bigendian: bool = False) -> Image:
    """Encode an array as an image message (cv_bridge ``cv2_to_imgmsg``).

    Args:
        array: (H, W) or (H, W, C) array whose element type and channel count match
            ``encoding``.
        encoding: REP 118 / OpenCV encoding of the message.
        header: Copied into the message (stamp and frame_id); default an empty header.
        step_padding: Extra zero bytes at the end of every row (``step = W * bpp + padding``).
        bigendian: Write multi-byte elements big-endian and set ``is_bigendian``.

    Returns:
        The image message.

    Raises:
        ImageEncodingError: When the array's type or shape does not fit ``encoding``.
    """
    dtype, channels = encoding_layout(encoding)
    image = np.asarray(array)
    shape_channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else None)
    if image.dtype != dtype or shape_channels != channels:
        raise ImageEncodingError(
            f'encoding {encoding!r} needs {channels} channel(s) of {dtype}, got an array of '
            f'shape {image.shape} and type {image.dtype}')
    if step_padding < 0:
        raise ImageEncodingError(f'step_padding must be >= 0, got {step_padding}')
    height, width = image.shape[:2]
    # No copy for a contiguous array already in wire byte order; the bytes are copied once,
    # into the array.array that rclpy keeps as is (bytes would be copied twice more).
    wire = np.ascontiguousarray(image, dtype=dtype.newbyteorder('>' if bigendian else '<'))
    rows = wire.reshape(height, -1).view(np.uint8)  # (H, W * bpp)
    if step_padding:
        padded = np.zeros((height, rows.shape[1] + step_padding), dtype=np.uint8)
        padded[:, :rows.shape[1]] = rows
        rows = padded
    data = stdlib_array.array('B')
    data.frombytes(rows)
    msg = Image()
    if header is not None:
        msg.header.stamp.sec = header.stamp.sec
        msg.header.stamp.nanosec = header.stamp.nanosec
        msg.header.frame_id = header.frame_id
    msg.height, msg.width = int(height), int(width)
    msg.encoding = encoding
    msg.is_bigendian = int(bool(bigendian))
    msg.step = int(rows.shape[1])
    msg.data = data
    return msg


def decode_rgb(msg: Image) -> np.ndarray:
    """Decode a colour or grey image to RGB.

    Args:
        msg: Image in ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` or ``mono8`` (grey is copied to
            the three channels; alpha is dropped).

    Returns:
        (H, W, 3) uint8 RGB array.

    Raises:
        ImageEncodingError: Any other encoding, or a malformed message.
    """
    if msg.encoding not in _RGB_ENCODINGS:
        raise ImageEncodingError(
            f'cannot decode {msg.encoding!r} as colour; supported: {", ".join(_RGB_ENCODINGS)}')
    image = image_to_array(msg)
    if msg.encoding == 'mono8':
        return np.repeat(image[:, :, None], 3, axis=2)  # (H, W, 3)
    if msg.encoding.startswith('bgr'):
        return np.ascontiguousarray(image[:, :, 2::-1])  # (H, W, 3) BGR(A) -> RGB
    return np.ascontiguousarray(image[:, :, :3])  # (H, W, 3)


def decode_depth(msg: Image, max_depth_m: float = None) -> np.ndarray:
    """Decode a REP 118 depth image to metres.

    Args:
        msg: ``16UC1`` (or ``mono16``) in millimetres, 0 = no measurement, or ``32FC1`` in
            metres, where NaN, +-Inf and values <= 0 are no measurement.
        max_depth_m: When given, depth beyond it is also set to 0 (invalid, never clamped).

    Returns:
        (H, W) float32 depth in metres, 0 where there is no valid measurement.

    Raises:
        ImageEncodingError: Any other encoding, or a malformed message.
    """
    if msg.encoding in _DEPTH_MM_ENCODINGS:
        depth = image_to_array(msg).astype(np.float32)
        depth /= np.float32(1000.0)  # in place; finite, and 0 exactly where 0 mm
        if max_depth_m is not None:
            depth[depth > max_depth_m] = 0.0
        return depth
    if msg.encoding in _DEPTH_M_ENCODINGS:
        depth = image_to_array(msg)
    else:
        supported = ', '.join(_DEPTH_MM_ENCODINGS + _DEPTH_M_ENCODINGS)
        raise ImageEncodingError(
            f'cannot decode {msg.encoding!r} as depth; supported: {supported}')
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(depth) & (depth > 0.0)
        if max_depth_m is not None:
            valid &= depth <= max_depth_m
    return np.where(valid, depth, np.float32(0.0)).astype(np.float32)
