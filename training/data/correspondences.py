"""Pixel correspondences between two RGB-D frames from measured depth and camera poses.

A pixel ``(u, v)`` of frame A with measured depth ``z`` back-projects to
``z K_a^-1 (u, v, 1)``; the ground-truth poses (camera to world) carry it into camera B,
``X_b = inv(T_wb) T_wa X_a``, which projects with ``K_b``. The correspondence is *visible*
when the projection lies inside image B, in front of the camera, and B's own measured depth at
that pixel agrees with ``X_b``'s depth (within ``max(abs_tol_m, rel_tol * z)``): a point hidden
behind another surface in B, or where B measured nothing, is no correspondence. Pixel
convention: pixel ``i`` covers ``[i, i + 1)``; integer coordinates are pixel centres (OpenCV).

Poses: 7-Scenes ``frame-NNNNNN.pose.txt`` (4x4 camera to world) and TUM ``groundtruth.txt``
(``stamp tx ty tz qx qy qz qw``, world from camera; interpolated at the depth image's stamp).
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from training.data.datasets import build_source

Intrinsics = Tuple[float, float, float, float]  # fx, fy, cx, cy

# TUM freiburg1 colour camera (TUM's published calibration; the depth is registered to it).
TUM_FR1_INTRINSICS = (517.3, 516.5, 318.6, 255.3)
# Its lens distortion (k1, k2, p1, p2, k3; TUM's images are not rectified).
TUM_FR1_DISTORTION = (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)
POSED_TYPES = ('7scenes', 'tum')
# Frame gaps of the training pairs per source type, in the reader's frames: 7-Scenes 30 Hz
# (0.07-2 s), TUM's every-3rd-frame lists 10 Hz (0.1-2 s).
PAIR_GAP_RANGES = {'7scenes': (2, 60), 'tum': (1, 20)}


@dataclasses.dataclass
class Correspondences:
    """Where pixels of frame A land in frame B.

    Attributes:
        xy_b: (N, 2) float positions in B (x = column), NaN where A has no depth.
        depth_b_m: (N,) depth of the points in camera B (projected, not measured).
        visible: (N,) bool: A had depth, the point projects inside B in front of the camera
            and B's measured depth there agrees.
    """

    xy_b: np.ndarray
    depth_b_m: np.ndarray
    visible: np.ndarray


def grid_positions(grid_size: Sequence[int], image_size: Sequence[int]) -> np.ndarray:
    """Camera-pixel centres of the cells of a (h, w) grid covering an (H, W) image.

    Cell (i, j) covers ``[j W / w, (j + 1) W / w)`` columns, so its centre is
    ``(j + 0.5) W / w - 0.5`` in the pixel-centre convention (as
    ``training.eval.feature_matching.dense_feature_points``).

    Returns:
        (h * w, 2) float64 (x, y), row-major over the grid.
    """
    grid_h, grid_w = grid_size
    height, width = image_size
    cols, rows = np.meshgrid((np.arange(grid_w) + 0.5) * width / grid_w - 0.5,
                             (np.arange(grid_h) + 0.5) * height / grid_h - 0.5)  # (h, w) each
    return np.stack([cols.ravel(), rows.ravel()], axis=1)  # (h*w, 2)


def pixel_lookup(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Values of ``image`` (H, W) at the nearest pixels of ``xy`` (N, 2); 0 outside."""
    height, width = image.shape
    finite = np.isfinite(xy).all(axis=1)
    cols = np.where(finite, np.rint(np.nan_to_num(xy[:, 0])), -1).astype(int)
    rows = np.where(finite, np.rint(np.nan_to_num(xy[:, 1])), -1).astype(int)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    values = np.zeros(len(xy), np.float64)
    values[inside] = image[rows[inside], cols[inside]]
    return values


def reproject(xy_a: np.ndarray, depth_a_m: np.ndarray, intrinsics_a: Intrinsics,
              intrinsics_b: Intrinsics, cam_to_world_a: np.ndarray,
              cam_to_world_b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Carry pixels of A with known depth into B.

    Args:
        xy_a: (N, 2) pixel positions in A.
        depth_a_m: (N,) depth along A's optical axis; <= 0 marks no depth.
        intrinsics_a: (fx, fy, cx, cy) of A.
        intrinsics_b: (fx, fy, cx, cy) of B.
        cam_to_world_a: (4, 4) pose of A.
        cam_to_world_b: (4, 4) pose of B.

    Returns:
        (xy_b (N, 2), z_b (N,)): NaN where A had no depth or the point lies behind B.
    """
    fx, fy, cx, cy = intrinsics_a
    z_a = np.where(depth_a_m > 0.0, depth_a_m, np.nan)
    points_a = np.stack([(xy_a[:, 0] - cx) / fx * z_a, (xy_a[:, 1] - cy) / fy * z_a, z_a,
                         np.ones_like(z_a)])  # (4, N)
    b_from_a = np.linalg.inv(cam_to_world_b) @ cam_to_world_a  # (4, 4)
    points_b = (b_from_a @ points_a)[:3]  # (3, N)
    z_b = np.where(points_b[2] > 1e-6, points_b[2], np.nan)
    fx, fy, cx, cy = intrinsics_b
    xy_b = np.stack([fx * points_b[0] / z_b + cx, fy * points_b[1] / z_b + cy], axis=1)
    return xy_b, z_b


def inside_image(xy: np.ndarray, image_size: Sequence[int]) -> np.ndarray:
    """Return (N,) bool: the positions (N, 2) lie on a pixel of an (H, W) image."""
    height, width = image_size
    return ((xy[:, 0] >= -0.5) & (xy[:, 0] < width - 0.5) & (xy[:, 1] >= -0.5)
            & (xy[:, 1] < height - 0.5))


def correspondences(xy_a: np.ndarray, depth_a: np.ndarray, depth_b: np.ndarray,
                    intrinsics_a: Intrinsics, intrinsics_b: Intrinsics,
                    cam_to_world_a: np.ndarray, cam_to_world_b: np.ndarray,
                    abs_tol_m: float = 0.05, rel_tol: float = 0.03) -> Correspondences:
    """Correspondences of pixels ``xy_a`` of A in B, visibility checked against B's depth.

    Args:
        xy_a: (N, 2) pixel positions in A.
        depth_a: (H, W) measured depth of A in metres, 0 = invalid (read at nearest pixels).
        depth_b: (H', W') measured depth of B.
        intrinsics_a: (fx, fy, cx, cy) of A.
        intrinsics_b: (fx, fy, cx, cy) of B.
        cam_to_world_a: (4, 4) pose of A.
        cam_to_world_b: (4, 4) pose of B.
        abs_tol_m: Depth agreement tolerance in metres.
        rel_tol: Depth agreement tolerance relative to the projected depth.

    Returns:
        The correspondences.
    """
    z_a = pixel_lookup(depth_a, xy_a)
    xy_b, z_b = reproject(xy_a, z_a, intrinsics_a, intrinsics_b, cam_to_world_a,
                          cam_to_world_b)
    finite = np.isfinite(xy_b).all(axis=1) & np.isfinite(z_b)
    inside = finite & inside_image(xy_b, depth_b.shape)
    measured = pixel_lookup(depth_b, np.where(inside[:, None], xy_b, np.nan))
    tolerance = np.maximum(abs_tol_m, rel_tol * np.nan_to_num(z_b))
    visible = inside & (measured > 0.0) & (np.abs(measured - np.nan_to_num(z_b)) <= tolerance)
    return Correspondences(xy_b, z_b, visible)


def quaternion_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion (qx, qy, qz, qw)."""
    x, y, z, w = np.asarray(quaternion, np.float64) / np.linalg.norm(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def read_tum_trajectory(path: str) -> np.ndarray:
    """Read a TUM ``groundtruth.txt``: (M, 8) rows ``stamp tx ty tz qx qy qz qw``, by time."""
    rows = np.loadtxt(path, comments='#', dtype=np.float64).reshape(-1, 8)
    return rows[np.argsort(rows[:, 0])]


def tum_pose_at(trajectory: np.ndarray, stamp: float, max_gap_s: float = 0.05) -> np.ndarray:
    """Camera-to-world pose at ``stamp``: translation linear, rotation slerp between samples.

    Args:
        trajectory: Output of ``read_tum_trajectory``.
        stamp: Time in seconds.
        max_gap_s: Largest allowed distance to the two bracketing samples.

    Returns:
        (4, 4) pose.

    Raises:
        ValueError: If ``stamp`` is outside the trajectory or between samples too far apart.
    """
    index = int(np.searchsorted(trajectory[:, 0], stamp))
    if index == 0 or index >= len(trajectory):
        raise ValueError(f'stamp {stamp:.4f} outside the ground truth '
                         f'{trajectory[0, 0]:.4f}..{trajectory[-1, 0]:.4f}')
    before, after = trajectory[index - 1], trajectory[index]
    if stamp - before[0] > max_gap_s or after[0] - stamp > max_gap_s:
        raise ValueError(f'no ground truth within {max_gap_s} s of stamp {stamp:.4f}')
    t = (stamp - before[0]) / max(after[0] - before[0], 1e-12)
    q0, q1 = before[4:] / np.linalg.norm(before[4:]), after[4:] / np.linalg.norm(after[4:])
    if np.dot(q0, q1) < 0.0:
        q1 = -q1
    angle = np.arccos(np.clip(np.dot(q0, q1), -1.0, 1.0))
    if angle < 1e-8:
        quaternion = q0
    else:
        quaternion = (np.sin((1 - t) * angle) * q0 + np.sin(t * angle) * q1) / np.sin(angle)
    pose = np.eye(4)
    pose[:3, :3] = quaternion_matrix(quaternion)
    pose[:3, 3] = (1 - t) * before[1:4] + t * after[1:4]
    return pose


@dataclasses.dataclass
class PosedFrame:
    """One frame with its ground-truth pose.

    Attributes:
        name: The depth file (as the reader names it).
        index: Position in the reader's sorted frame list (before ``select``).
        rgb: uint8 (H, W, 3).
        depth_m: float32 (H, W), 0 = invalid.
        intrinsics: (fx, fy, cx, cy).
        cam_to_world: (4, 4).
    """

    name: str
    index: int
    rgb: np.ndarray
    depth_m: np.ndarray
    intrinsics: Intrinsics
    cam_to_world: np.ndarray


def posed_source_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Return a source entry with the intrinsics its pose reader needs (TUM fr1 when none given).

    Raises:
        ValueError: For a type without ground-truth poses here.
    """
    if spec['type'] not in POSED_TYPES:
        raise ValueError(f'source type {spec["type"]!r} has no ground-truth poses here '
                         f'(posed types: {POSED_TYPES})')
    spec = dict(spec)
    if spec['type'] == 'tum' and 'intrinsics' not in spec:
        spec['intrinsics'] = list(TUM_FR1_INTRINSICS)
    return spec


def lens_distortion(spec: Dict[str, Any]) -> Tuple[float, ...]:
    """Return the OpenCV distortion coefficients of a posed source's camera.

    TUM freiburg1's for a TUM source with the default intrinsics; none for 7-Scenes and for a
    source that names its own intrinsics (taken as rectified).
    """
    if spec['type'] == 'tum' and 'intrinsics' not in spec:
        return TUM_FR1_DISTORTION
    return ()


def source_indices(spec: Dict[str, Any], total: int) -> List[int]:
    """Return the indices of the reader's full frame list that ``select`` keeps.

    Raises:
        ValueError: If the entry uses ``exclude`` or a select of another form.
    """
    if spec.get('exclude'):
        raise ValueError('posed sources take select only, not exclude')
    select = spec.get('select')
    if select is None:
        return list(range(total))
    if isinstance(select[0], (list, tuple)):
        raise ValueError(f'posed sources take one select range, got {select!r}')
    return list(range(total))[slice(*select)]


def load_posed_frames(spec: Dict[str, Any], base_dir: str) -> List[PosedFrame]:
    """Load every frame of a 7-Scenes or TUM source entry with its ground-truth pose.

    Args:
        spec: Source entry as in ``data.sources`` (``type``, ``root``, one ``select`` range).
        base_dir: Folder relative roots resolve against.

    Returns:
        The frames in order; ``index`` counts in the reader's unselected frame list.

    Raises:
        ValueError: For a source without poses or a frame without ground truth.
    """
    spec = posed_source_spec(spec)
    full = {key: value for key, value in spec.items()
            if key not in ('select', 'weight', 'name')}
    dataset = build_source(full, base_dir=base_dir)
    trajectory = None
    if spec['type'] == 'tum':
        root = spec['root'] if os.path.isabs(spec['root']) else os.path.join(base_dir,
                                                                             spec['root'])
        trajectory = read_tum_trajectory(os.path.join(root, 'groundtruth.txt'))
    frames = []
    for index in source_indices(spec, len(dataset)):
        sample = dataset[index]
        if trajectory is not None:
            stamp = float(os.path.splitext(os.path.basename(sample['name']))[0])
            pose = tum_pose_at(trajectory, stamp)
        else:
            pose = sample['pose']
        matrix = sample['K']
        frames.append(PosedFrame(
            name=sample['name'], index=index, rgb=sample['rgb'], depth_m=sample['depth'],
            intrinsics=(float(matrix[0, 0]), float(matrix[1, 1]), float(matrix[0, 2]),
                        float(matrix[1, 2])), cam_to_world=pose))
    return frames


def split_distance(train: Sequence[Dict[str, Any]], test: Sequence[Dict[str, Any]],
                   totals: Optional[Dict[str, int]] = None) -> Dict[str, int]:
    """Smallest index distance between a test frame and a training frame, per shared root.

    Args:
        train: Training source entries.
        test: Test source entries.
        totals: Root -> frame count for open-ended selects (default: 10**5).

    Returns:
        Root -> distance in frames, for every root both lists use.
    """
    totals = totals or {}
    result = {}
    for test_spec in test:
        for train_spec in train:
            if train_spec['root'] != test_spec['root']:
                continue
            total = totals.get(test_spec['root'], 10 ** 5)
            test_indices = np.array(source_indices(test_spec, total))
            train_indices = np.array(source_indices(train_spec, total))
            if not len(test_indices) or not len(train_indices):
                continue
            train_indices = np.sort(train_indices)
            at = np.clip(np.searchsorted(train_indices, test_indices), 1, len(train_indices))
            below = np.abs(test_indices - train_indices[at - 1])
            above = np.abs(test_indices - train_indices[np.minimum(at, len(train_indices) - 1)])
            distance = int(np.minimum(below, above).min())
            result[test_spec['root']] = min(distance, result.get(test_spec['root'], distance))
    return result
