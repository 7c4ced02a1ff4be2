"""ScanNet-style exports (SensReader): ``color/N.jpg``, ``depth/N.png``, ``intrinsic/``, ``pose/``.

Depth is uint16 millimetres (0 invalid) at the depth camera's resolution (640x480 in ScanNet)
while colour is larger (1296x968): colour is resized to the depth size with area
interpolation and ``K`` is ``intrinsic/intrinsic_depth.txt``. ``pose`` is camera-to-world;
ScanNet marks frames without tracking with ``-inf`` poses, which are passed through as read.
"""

import glob
import os

from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import read_matrix
from training.data.datasets.base import require_frames
from training.data.datasets.folder import glob_frames


class ScanNetDataset(FrameListDataset):
    """Frames of one or many exported ScanNet scenes."""

    source = 'scannet'

    def __init__(self, root: str, transform=None, max_skips: int = 32):
        """Find every scene folder holding ``intrinsic/intrinsic_depth.txt`` under ``root``.

        Args:
            root: Scene folder or folder of scenes.
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ValueError: When no frame is found.
        """
        root = os.fspath(root)
        frames = []
        pattern = os.path.join(glob.escape(root), '**', 'intrinsic', 'intrinsic_depth.txt')
        for intrinsics_file in sorted(glob.glob(pattern, recursive=True)):
            scene = os.path.dirname(os.path.dirname(intrinsics_file))
            frames += glob_frames(scene, 'color/*.jpg', 'depth/*.png', 'mm',
                                  intrinsics=read_matrix(intrinsics_file, (3, 3)),
                                  extra_globs={'pose': 'pose/*.txt'})
        super().__init__(require_frames(frames, self.source, root), transform, max_skips,
                         resize_rgb_to_depth=True)
