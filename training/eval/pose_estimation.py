"""Relative camera pose from matched pixels: back-project with depth, then RANSAC + Kabsch.

Pixels of a camera with lens distortion are undistorted (OpenCV's Brown-Conrady model) before
back-projection; their depth is read at the distorted pixel, where the registered depth image
holds it.
"""

import dataclasses

import cv2
import numpy as np

from training.data.datasets import seven_scenes
from training.eval.rigid_registration import ransac_kabsch


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, with the lens distortion of unrectified images.

    Attributes:
        fx: Focal length along x.
        fy: Focal length along y.
        cx: Principal point x.
        cy: Principal point y.
        distortion: OpenCV coefficients (k1, k2, p1, p2[, k3]); empty for rectified images.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = ()

    def undistort(self, xy: np.ndarray) -> np.ndarray:
        """Return the normalised image coordinates (N, 2) of pixel positions (N, 2)."""
        if not self.distortion:
            return np.stack([(xy[:, 0] - self.cx) / self.fx, (xy[:, 1] - self.cy) / self.fy],
                            axis=1)
        matrix = np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])
        # The default 5 iterations leave pixel-sized errors at TUM's distortion; iterate to
        # convergence instead.
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        normalised = cv2.undistortPoints(
            np.asarray(xy, np.float64).reshape(-1, 1, 2), matrix,
            np.asarray(self.distortion, np.float64), None, None, None, criteria)
        return normalised.reshape(-1, 2)


SEVEN_SCENES_INTRINSICS = Intrinsics(*seven_scenes.SEVEN_SCENES_INTRINSICS)


def lookup_depth(depth_m: np.ndarray, xy: np.ndarray, radius: int = 0) -> np.ndarray:
    """Depth at pixel positions: the median of the valid depths in a square window.

    Args:
        depth_m: (H, W) depth in metres, 0 where invalid.
        xy: (N, 2) pixel positions (x = column, y = row), rounded to the nearest pixel.
        radius: Half-size of the window; 0 reads the single pixel.

    Returns:
        (N,) depth in metres; 0 where the window holds no valid depth or lies outside.
    """
    height, width = depth_m.shape
    cols = np.rint(xy[:, 0]).astype(int)
    rows = np.rint(xy[:, 1]).astype(int)
    result = np.zeros(len(xy), np.float64)
    for index, (row, col) in enumerate(zip(rows, cols)):
        if not (0 <= row < height and 0 <= col < width):
            continue
        window = depth_m[max(row - radius, 0):row + radius + 1,
                         max(col - radius, 0):col + radius + 1]
        valid = window[window > 0.0]
        if valid.size:
            result[index] = np.median(valid)
    return result


def backproject(xy: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Back-project pixels with known depth into camera coordinates (undistorted first).

    Args:
        xy: (N, 2) pixel positions in the (possibly distorted) image.
        depth_m: (N,) depth along the optical axis in metres.
        intrinsics: Camera intrinsics and distortion.

    Returns:
        (N, 3) points (x right, y down, z forward) in metres.
    """
    normalised = intrinsics.undistort(xy)  # (N, 2)
    return np.concatenate([normalised * depth_m[:, None], depth_m[:, None]], axis=1)  # (N, 3)


@dataclasses.dataclass
class PoseEstimate:
    """A relative pose estimate mapping camera-B points into camera A.

    Attributes:
        transform: (4, 4) estimated ``T_a_from_b``, or None when estimation failed.
        num_matches: Matches with valid depth in both frames.
        num_inliers: RANSAC inliers of the final model (0 on failure).
    """

    transform: np.ndarray | None
    num_matches: int
    num_inliers: int


def estimate_relative_pose(xy_a: np.ndarray, xy_b: np.ndarray, depth_a_m: np.ndarray,
                           depth_b_m: np.ndarray, intrinsics: Intrinsics,
                           rng: np.random.Generator, inlier_threshold_m: float = 0.05,
                           depth_radius: int = 0, iterations: int = 1000) -> PoseEstimate:
    """Estimate ``T_a_from_b`` from matched pixel pairs and the two depth maps.

    Args:
        xy_a: (M, 2) matched pixel positions in frame A.
        xy_b: (M, 2) corresponding positions in frame B.
        depth_a_m: (H, W) depth of frame A in metres (0 = invalid).
        depth_b_m: (H, W) depth of frame B.
        intrinsics: Intrinsics shared by both frames.
        rng: Seeded generator for RANSAC.
        inlier_threshold_m: 3-D inlier distance.
        depth_radius: Window half-size for ``lookup_depth`` (e.g. half a ViT patch).
        iterations: RANSAC hypotheses.

    Returns:
        The estimate; ``transform`` is None with fewer than 3 usable matches or no model.
    """
    z_a = lookup_depth(depth_a_m, xy_a, depth_radius)
    z_b = lookup_depth(depth_b_m, xy_b, depth_radius)
    usable = (z_a > 0.0) & (z_b > 0.0)
    points_a = backproject(xy_a[usable], z_a[usable], intrinsics)
    points_b = backproject(xy_b[usable], z_b[usable], intrinsics)
    result = ransac_kabsch(points_b, points_a, inlier_threshold_m, rng, iterations)
    if result is None:
        return PoseEstimate(None, int(usable.sum()), 0)
    transform = np.eye(4)
    transform[:3, :3] = result.rotation
    transform[:3, 3] = result.translation
    return PoseEstimate(transform, int(usable.sum()), int(result.inliers.sum()))
