"""The Open3D sample RGB-D layout: ``color/*.jpg``, ``depth/*.png`` (mm) and a camera JSON.

The JSON (``camera_primesense.json``) stores ``intrinsic_matrix`` column-major, as Open3D's
``PinholeCameraIntrinsic`` writes it.
"""

import json
import os

import numpy as np

from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import require_frames
from training.data.datasets.folder import glob_frames


def read_open3d_intrinsics(path: str) -> np.ndarray:
    """Read an Open3D camera JSON into a (3, 3) float64 matrix.

    Args:
        path: JSON file with ``intrinsic_matrix`` (9 numbers, column-major).

    Returns:
        The row-major camera matrix.

    Raises:
        ValueError: When the file has no 9-number ``intrinsic_matrix``.
    """
    with open(path, encoding='utf-8') as stream:
        values = json.load(stream).get('intrinsic_matrix')
    if values is None or len(values) != 9:
        raise ValueError(f'{path!r}: intrinsic_matrix must hold 9 numbers, got {values!r}')
    return np.asarray(values, dtype=np.float64).reshape(3, 3).T  # column-major -> row-major


class Open3DSampleDataset(FrameListDataset):
    """Frames of an Open3D sample RGB-D folder."""

    source = 'open3d'

    def __init__(self, root: str, camera: str = 'camera_primesense.json',
                 rgb_glob: str = 'color/*.jpg', depth_glob: str = 'depth/*.png',
                 transform=None, max_skips: int = 32):
        """Pair colour and depth by file stem and read the camera.

        Args:
            root: Sample folder.
            camera: Camera JSON relative to ``root`` (no ``K`` if the file is absent).
            rgb_glob: Colour pattern.
            depth_glob: Depth pattern (uint16 mm).
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ValueError: When no frame is found or the camera file is malformed.
        """
        root = os.fspath(root)
        camera_path = os.path.join(root, camera)
        intrinsics = (read_open3d_intrinsics(camera_path) if os.path.isfile(camera_path)
                      else None)
        frames = glob_frames(root, rgb_glob, depth_glob, 'mm', intrinsics=intrinsics)
        super().__init__(require_frames(frames, self.source, root), transform, max_skips)
