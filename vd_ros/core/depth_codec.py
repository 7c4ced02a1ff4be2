"""Raw depth encodings of sensors and public RGB-D datasets, decoded to metres.

Every decoder returns float32 metres of the input's shape with 0 for "no measurement" (never
NaN or Inf), the convention of the positional depth encoding. Encodings (``ENCODINGS``):

========== ===================== =========================================================
name       raw dtype             metres
========== ===================== =========================================================
mm         uint16                value / 1000; 0 invalid (ScanNet exports, Open3D, 16UC1)
7scenes    uint16                value / 1000; 0 and 65535 invalid (Microsoft 7-Scenes)
metres     float32 / float64     value; NaN, Inf and <= 0 invalid (32FC1)
tum        uint16                value / 5000; 0 invalid (TUM RGB-D)
ycbv       uint16                value / factor_depth (default 10000); 0 invalid
sunrgbd    uint16                rotate right by 3 bits, ``(v >> 3) | (v << 13)``, then mm
nyu_raw    uint16                Kinect disparity ``d`` -> 351.3 / (1092.5 - d); valid in
                                 (0, 10] m, everything else (2047 = no return) invalid
scale      any int / float       value * scale (parameter ``scale``, metres per unit)
========== ===================== =========================================================

NYU Depth V2 raw frames are PGM files whose header announces 16-bit samples (by the PGM
standard big-endian), but the Kinect dumps were written in little-endian byte order: standard
readers (OpenCV, PIL, MATLAB ``imread``) return byte-swapped values, and the NYU toolbox calls
``swapbytes`` after ``imread``. Checked on a real frame: read as big-endian, 97 % of the pixels
fall outside (0, 10] m; swapped, the values lie in 839..2047 (2047 is the Kinect's "no data"
marker) and 93 % are valid. ``decode_depth(raw, 'nyu_raw')`` therefore expects what a
standard reader returns (``read_depth`` uses OpenCV) and swaps the bytes itself; pass
``swap_bytes=False`` for disparity that is already in the right order.
"""

import os

import cv2
import numpy as np

ENCODINGS = ('mm', '7scenes', 'metres', 'tum', 'ycbv', 'sunrgbd', 'nyu_raw', 'scale')
ROS_ENCODINGS = {'16UC1': 'mm', 'mono16': 'mm', '32FC1': 'metres'}

NYU_DISPARITY_NUMERATOR = 351.3
NYU_DISPARITY_OFFSET = 1092.5
NYU_MAX_DEPTH_M = 10.0
YCBV_FACTOR_DEPTH = 10000.0
TUM_FACTOR_DEPTH = 5000.0
SEVEN_SCENES_INVALID = 65535

_JPEG_END = b'\xff\xd9'
_JPEG_TAIL_BYTES = 1024


class FrameError(Exception):
    """A frame's file or array cannot be turned into an image or a depth map."""


class FrameReadError(FrameError, OSError):
    """An image file is missing, unreadable, corrupt or truncated.

    Attributes:
        path: The offending file.
    """

    def __init__(self, path: str, reason: str):
        """Store the path and build the message.

        Args:
            path: The offending file.
            reason: What is wrong with it.
        """
        super().__init__(f'cannot read image {path!r}: {reason}')
        self.path = path


class DepthFormatError(FrameError, ValueError):
    """A raw depth array has the wrong dtype or number of dimensions for its encoding."""


def _check_array(raw: np.ndarray, encoding: str, kinds: str) -> None:
    """Raise ``DepthFormatError`` unless ``raw`` is a 2-D array of one of the dtype kinds."""
    if not isinstance(raw, np.ndarray):
        raise DepthFormatError(f'depth must be a numpy array, got {type(raw).__name__}')
    if raw.ndim != 2:
        raise DepthFormatError(
            f'depth must be 2-D (H, W), got ndim={raw.ndim} shape={raw.shape} for {encoding!r}')
    if kinds == 'u2':
        if raw.dtype != np.uint16:
            raise DepthFormatError(f'encoding {encoding!r} needs uint16 depth, got {raw.dtype}')
    elif raw.dtype.kind not in kinds:
        raise DepthFormatError(
            f'encoding {encoding!r} needs a dtype of kind {kinds!r}, got {raw.dtype}')


def _scaled(raw: np.ndarray, metres_per_unit: float, invalid=()) -> np.ndarray:
    """Return ``raw * metres_per_unit`` as float32 with non-positive and ``invalid`` -> 0."""
    depth = raw.astype(np.float64) * metres_per_unit
    bad = ~np.isfinite(depth) | (depth <= 0.0)
    for value in invalid:
        bad |= raw == value
    depth[bad] = 0.0
    return depth.astype(np.float32)


def sunrgbd_to_millimetres(raw: np.ndarray) -> np.ndarray:
    """Undo SUN RGB-D's bit rotation: ``(v >> 3) | (v << 13)`` in 16 bits, in millimetres."""
    _check_array(raw, 'sunrgbd', 'u2')
    return (raw >> np.uint16(3)) | (raw << np.uint16(13))


def nyu_disparity_to_metres(disparity: np.ndarray) -> np.ndarray:
    """Turn NYU Kinect disparity (host byte order) into metres; invalid outside (0, 10] m."""
    with np.errstate(divide='ignore'):
        depth = NYU_DISPARITY_NUMERATOR / (
            NYU_DISPARITY_OFFSET - disparity.astype(np.float64))
    depth[~np.isfinite(depth) | (depth <= 0.0) | (depth > NYU_MAX_DEPTH_M)] = 0.0
    return depth.astype(np.float32)


def decode_depth(raw: np.ndarray, encoding: str, **params) -> np.ndarray:
    """Decode a raw depth image to float32 metres, 0 where there is no measurement.

    Args:
        raw: (H, W) raw depth as stored by the sensor or dataset.
        encoding: One of ``ENCODINGS`` or a ROS encoding in ``ROS_ENCODINGS``.
        **params: ``factor_depth`` (ycbv, units per metre), ``scale`` (scale, metres per
            unit, required), ``swap_bytes`` (nyu_raw, default True: see the module notes).

    Returns:
        (H, W) float32 depth in metres, finite, 0 = invalid.

    Raises:
        ValueError: Unknown encoding, unknown or bad parameter.
        DepthFormatError: Wrong dtype or ndim for the encoding (a ``ValueError``).
    """
    encoding = ROS_ENCODINGS.get(encoding, encoding)
    if encoding not in ENCODINGS:
        raise ValueError(f'unknown depth encoding {encoding!r}, expected one of {ENCODINGS} '
                         f'or {tuple(ROS_ENCODINGS)}')
    allowed = {'ycbv': {'factor_depth'}, 'scale': {'scale'}, 'nyu_raw': {'swap_bytes'}}
    unknown = set(params) - allowed.get(encoding, set())
    if unknown:
        raise ValueError(f'unknown parameters {sorted(unknown)} for depth encoding {encoding!r}')
    if encoding == 'metres':
        _check_array(raw, encoding, 'f')
        return _scaled(raw, 1.0)
    if encoding == 'scale':
        _check_array(raw, encoding, 'uif')
        if 'scale' not in params:
            raise ValueError("depth encoding 'scale' needs the parameter scale (metres per unit)")
        scale = float(params['scale'])
        if not np.isfinite(scale) or scale <= 0.0:
            raise ValueError(f'depth scale must be a positive number, got {params["scale"]!r}')
        return _scaled(raw, scale)
    _check_array(raw, encoding, 'u2')
    if encoding == 'mm':
        return _scaled(raw, 1e-3)
    if encoding == '7scenes':
        return _scaled(raw, 1e-3, invalid=(SEVEN_SCENES_INVALID,))
    if encoding == 'tum':
        return _scaled(raw, 1.0 / TUM_FACTOR_DEPTH)
    if encoding == 'ycbv':
        factor = float(params.get('factor_depth', YCBV_FACTOR_DEPTH))
        if not np.isfinite(factor) or factor <= 0.0:
            raise ValueError(f'YCB-Video factor_depth must be positive, got {factor!r}')
        return _scaled(raw, 1.0 / factor)
    if encoding == 'sunrgbd':
        return _scaled(sunrgbd_to_millimetres(raw), 1e-3)
    disparity = raw.byteswap() if params.get('swap_bytes', True) else raw
    return nyu_disparity_to_metres(disparity)


def _read_bytes(path: str) -> bytes:
    """Return a file's bytes, raising ``FrameReadError`` for missing or empty files."""
    try:
        with open(path, 'rb') as stream:
            data = stream.read()
    except OSError as error:
        raise FrameReadError(path, str(error)) from error
    if not data:
        raise FrameReadError(path, 'empty file')
    return data


def _decode_image(path: str, flags: int) -> np.ndarray:
    """Decode an image file with OpenCV; truncated JPEGs (decoded grey by OpenCV) raise."""
    data = _read_bytes(path)
    if data[:2] == b'\xff\xd8' and _JPEG_END not in data[-_JPEG_TAIL_BYTES:]:
        raise FrameReadError(path, 'truncated JPEG (no end-of-image marker)')
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise FrameReadError(path, 'not a decodable image (corrupt or truncated)')
    return image


def read_depth_raw(path: str) -> np.ndarray:
    """Read a depth image file as stored (PNG/PGM/TIFF via OpenCV, or ``.npy``).

    Args:
        path: Image file.

    Returns:
        The raw (H, W) array, dtype as stored (16-bit PGM in the PGM standard's byte order).

    Raises:
        FrameReadError: Missing, unreadable, corrupt or truncated file, or not one channel.
    """
    path = os.fspath(path)
    if path.endswith('.npy'):
        try:
            raw = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise FrameReadError(path, str(error)) from error
    else:
        raw = _decode_image(path, cv2.IMREAD_UNCHANGED)
    if raw.ndim != 2:
        raise FrameReadError(path, f'depth image must have one channel, got {raw.shape}')
    return raw


def read_depth(path: str, encoding: str, **params) -> np.ndarray:
    """Read and decode a depth file to float32 metres (0 = invalid).

    Args:
        path: Depth image (PNG, PGM, TIFF, ``.npy``).
        encoding: See ``decode_depth``.
        **params: See ``decode_depth``.

    Returns:
        (H, W) float32 metres.

    Raises:
        FrameReadError: The file cannot be read.
        DepthFormatError: Its dtype does not fit the encoding.
        ValueError: Unknown encoding or parameter.
    """
    raw = read_depth_raw(path)
    try:
        return decode_depth(raw, encoding, **params)
    except DepthFormatError as error:
        raise DepthFormatError(f'{path!r}: {error}') from error


def read_rgb(path: str) -> np.ndarray:
    """Read a colour image file (JPEG, PNG, PPM, ...) as RGB.

    Args:
        path: Image file; grey images are expanded to three channels.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        FrameReadError: Missing, unreadable, corrupt or truncated file.
    """
    bgr = _decode_image(os.fspath(path), cv2.IMREAD_COLOR)  # always 8-bit BGR
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
