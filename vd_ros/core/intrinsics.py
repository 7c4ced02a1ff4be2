"""Pinhole intrinsics under resizing and letterboxing, and depth back-projection.

Pixel centres are at integer coordinates (``sensor_msgs/CameraInfo`` convention) and a resize by
``s`` maps pixel edges onto pixel edges, so a centre ``c`` moves to ``(c + 0.5) * s - 0.5``.
"""

import numpy as np

from vd_ros.core.preprocess import Letterbox


def pinhole_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Return the 3x3 float64 pinhole camera matrix K of focal lengths and principal point."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def camera_matrix(k) -> np.ndarray:
    """Return a 3x3 float64 camera matrix from a 3x3 array or a row-major 9-list (CameraInfo.k).

    Args:
        k: 3x3 array-like or 9 values in row-major order.

    Returns:
        (3, 3) float64 matrix.

    Raises:
        ValueError: For another size or non-positive focal lengths.
    """
    matrix = np.asarray(k, dtype=np.float64)
    if matrix.size != 9:
        raise ValueError(f'camera matrix needs 9 values, got shape {matrix.shape}')
    matrix = matrix.reshape(3, 3)
    if not (matrix[0, 0] > 0 and matrix[1, 1] > 0):
        raise ValueError(f'focal lengths must be > 0, got fx={matrix[0, 0]}, fy={matrix[1, 1]}')
    return matrix


def scale_intrinsics(k, sx: float, sy: float) -> np.ndarray:
    """Intrinsics of an image resized by ``sx`` horizontally and ``sy`` vertically.

    Args:
        k: Camera matrix (see :func:`camera_matrix`).
        sx: New width / old width.
        sy: New height / old height.

    Returns:
        (3, 3) float64: ``fx * sx``, ``fy * sy``, ``skew * sx``, ``(cx + 0.5) * sx - 0.5``,
        ``(cy + 0.5) * sy - 0.5``.
    """
    matrix = camera_matrix(k).copy()
    matrix[0, :2] *= sx
    matrix[1, 1] *= sy
    matrix[0, 2] = (matrix[0, 2] + 0.5) * sx - 0.5
    matrix[1, 2] = (matrix[1, 2] + 0.5) * sy - 0.5
    return matrix


def letterbox_intrinsics(k, letterbox: Letterbox) -> np.ndarray:
    """Intrinsics of the model input a camera image was letterboxed into.

    Args:
        k: Camera matrix of the camera image (``letterbox.in_size``).
        letterbox: The letterbox from :func:`~vd_ros.core.preprocess.letterbox_params`.

    Returns:
        (3, 3) float64 matrix valid for pixels of the model input (``letterbox.out_size``).
    """
    rows, cols = letterbox.content_size
    matrix = scale_intrinsics(k, cols / letterbox.in_size[1], rows / letterbox.in_size[0])
    matrix[0, 2] += letterbox.pad_left
    matrix[1, 2] += letterbox.pad_top
    return matrix


def depth_to_points(depth_m: np.ndarray, k, rgb: np.ndarray = None, stride: int = 1):
    """Back-project a depth image to a 3D point cloud in the camera optical frame.

    ``z = depth``, ``y = (v - cy) * z / fy``, ``x = (u - cx - skew * y / z) * z / fx`` for every
    ``stride``-th pixel whose depth is finite and > 0.

    Args:
        depth_m: (H, W) depth in metres; 0 / NaN / Inf are skipped.
        k: Camera matrix of the depth image (see :func:`camera_matrix`).
        rgb: Optional (H, W, 3) uint8 colours registered to the depth image.
        stride: Take every ``stride``-th row and column (>= 1).

    Returns:
        (N, 3) float32 points, or ``(points, colours)`` with (N, 3) uint8 colours when ``rgb``
        is given; points in row-major pixel order.

    Raises:
        ValueError: For a bad shape, stride or camera matrix.
    """
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        raise ValueError(f'depth must be (H, W), got {depth.shape}')
    if int(stride) != stride or stride < 1:
        raise ValueError(f'stride must be a positive integer, got {stride}')
    matrix = camera_matrix(k)
    fx, skew, cx = matrix[0]
    fy, cy = matrix[1, 1], matrix[1, 2]
    v, u = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride]  # (H / s, W / s)
    z = depth[::stride, ::stride].astype(np.float64)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(z) & (z > 0)
    z, u, v = z[valid], u[valid], v[valid]  # (N,)
    y = (v - cy) * z / fy
    x = (u - cx - skew * (v - cy) / fy) * z / fx
    points = np.stack([x, y, z], axis=1).astype(np.float32)  # (N, 3)
    if rgb is None:
        return points
    rgb = np.asarray(rgb)
    if rgb.shape != depth.shape + (3,) or rgb.dtype != np.uint8:
        raise ValueError(f'rgb must be {depth.shape + (3,)} uint8, got {rgb.shape} {rgb.dtype}')
    return points, rgb[::stride, ::stride][valid]  # (N, 3)
