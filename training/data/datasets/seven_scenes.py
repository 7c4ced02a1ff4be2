"""Microsoft 7-Scenes: ``[seq-XX/]frame-NNNNNN.{color.png|color.jpg,depth.png,pose.txt}``.

Depth is uint16 millimetres with 0 and 65535 invalid. Colour and depth come from unregistered
Kinect sensors, so their per-pixel alignment is approximate. Intrinsics: the folder's
``camera-intrinsics.txt`` when present, else the published fx = fy = 585, cx = 320, cy = 240.
"""

import os

from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import read_matrix
from training.data.datasets.base import require_frames
from training.data.datasets.folder import glob_frames

SEVEN_SCENES_INTRINSICS = [585.0, 585.0, 320.0, 240.0]


class SevenScenesDataset(FrameListDataset):
    """7-Scenes frames with camera-to-world poses."""

    source = '7scenes'

    def __init__(self, root: str, transform=None, max_skips: int = 32):
        """Find every frame under ``root`` (one scene folder, flat or with ``seq-XX/``).

        Args:
            root: Scene folder.
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ValueError: When no frame is found.
        """
        root = os.fspath(root)
        intrinsics_file = os.path.join(root, 'camera-intrinsics.txt')
        intrinsics = (read_matrix(intrinsics_file, (3, 3)) if os.path.isfile(intrinsics_file)
                      else SEVEN_SCENES_INTRINSICS)
        frames = []
        for extension in ('png', 'jpg'):
            frames += glob_frames(root, f'**/frame-*.color.{extension}', '**/frame-*.depth.png',
                                  '7scenes', intrinsics=intrinsics,
                                  extra_globs={'pose': '**/frame-*.pose.txt'})
        super().__init__(require_frames(frames, self.source, root), transform, max_skips)
