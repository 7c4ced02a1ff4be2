"""In-plane rotation of a camera frame about its centre, and of pixel positions with it.

A camera that rolls about its optical axis sees the scene rotated in the image; descriptors
trained only on pairs of an upright camera do not match across such a roll. Rotating a frame
in the image (RGB bilinear, depth nearest, 0 = no measurement outside the rotated frame) gives
pairs with any roll from the same correspondences: a position ``xy`` of the frame lies at
``rotate_points(xy, matrix)`` in the rotated one. Positions are in the pixel-centre convention
of ``training.data.correspondences`` (pixel ``i`` centred at ``i``), as OpenCV warps use it.
"""

from typing import Sequence, Tuple

import cv2
import numpy as np


def rotation_angles(count: int) -> Tuple[float, ...]:
    """Return ``count`` angles in degrees evenly spaced over the circle, starting at 0."""
    if count < 1:
        raise ValueError(f'rotations must be at least 1 (1 = upright only), got {count}')
    return tuple(360.0 * index / count for index in range(count))


def rotation_matrix(angle_deg: float, image_size: Sequence[int]) -> np.ndarray:
    """Return the (2, 3) affine map of pixel positions for a rotation about the image centre.

    Args:
        angle_deg: Rotation, counter-clockwise on the screen (x right, y down).
        image_size: (H, W) of the image.
    """
    height, width = image_size
    return cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle_deg, 1.0)


def rotate_points(xy: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map pixel positions (N, 2) through a (2, 3) affine map; (N, 2) float64."""
    xy = np.asarray(xy, np.float64)
    return xy @ matrix[:, :2].T + matrix[:, 2]


def rotate_frame(rgb: np.ndarray, depth_m: np.ndarray,
                 matrix: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Rotate an RGB (H, W, 3) and a depth (H, W) image with a (2, 3) map, same size.

    RGB is interpolated bilinearly, depth by nearest neighbour (depth is never averaged); what
    the rotation brings in from outside the frame is black and has depth 0.
    """
    height, width = depth_m.shape
    rgb_out = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    depth_out = cv2.warpAffine(depth_m, matrix, (width, height), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return rgb_out, depth_out
