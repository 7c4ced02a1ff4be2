"""SUN RGB-D: per-frame folders with ``image/*.jpg``, ``depth/*.png`` and ``intrinsics.txt``.

Depth PNGs store millimetres with the 3 low bits rotated to the top (encoding ``sunrgbd``);
the ``depth_bfx`` folders (hole-filled depth) are not read. Single exported frames (such as
``SUN_color.jpg``/``SUN_depth.png``) are read with ``rgb_glob`` and ``depth_glob``.
"""

import glob
import logging
import os

from training.data.datasets.base import Frame
from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import read_matrix
from training.data.datasets.base import require_frames
from training.data.datasets.folder import glob_frames
from training.data.datasets.folder import uses_globs

_logger = logging.getLogger(__name__)


def sunrgbd_frames(root: str) -> list:
    """List the frames of the official SUN RGB-D tree (any depth of nesting).

    Args:
        root: ``SUNRGBD`` folder or any sub-folder of it.

    Returns:
        List of ``Frame`` with intrinsics from each frame's ``intrinsics.txt``.
    """
    frames = []
    for intrinsics_file in sorted(glob.glob(os.path.join(glob.escape(root), '**',
                                                         'intrinsics.txt'), recursive=True)):
        folder = os.path.dirname(intrinsics_file)
        rgb = sorted(glob.glob(os.path.join(glob.escape(folder), 'image', '*.jpg')))
        depth = sorted(glob.glob(os.path.join(glob.escape(folder), 'depth', '*.png')))
        if len(rgb) != 1 or len(depth) != 1:
            _logger.warning('SUN RGB-D frame %s has %d colour and %d depth images, expected 1 '
                            'each; left out', folder, len(rgb), len(depth))
            continue
        frames.append(Frame(name=depth[0], rgb_path=rgb[0], depth_path=depth[0],
                            encoding='sunrgbd',
                            intrinsics=read_matrix(intrinsics_file, (3, 3))))
    return frames


class SUNRGBDDataset(FrameListDataset):
    """SUN RGB-D frames (official tree, or single frames given by glob patterns)."""

    source = 'sunrgbd'

    def __init__(self, root: str, rgb_glob: str = None, depth_glob: str = None,
                 intrinsics=None, transform=None, max_skips: int = 32):
        """Find the frames.

        Args:
            root: SUN RGB-D tree or frame folder.
            rgb_glob: Colour pattern; with ``depth_glob`` it replaces the tree search.
            depth_glob: Depth pattern.
            intrinsics: Camera matrix for glob mode (the tree has its own per frame).
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ValueError: Only one glob given, or no frame found.
        """
        root = os.fspath(root)
        frames = (glob_frames(root, rgb_glob, depth_glob, 'sunrgbd', intrinsics=intrinsics)
                  if uses_globs('SUN RGB-D', rgb_glob, depth_glob) else sunrgbd_frames(root))
        super().__init__(require_frames(frames, self.source, root), transform, max_skips)
