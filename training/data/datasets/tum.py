"""TUM RGB-D: ``rgb.txt``/``depth.txt`` associated by timestamp, depth uint16 / 5000 = metres.

Without the two lists (single exported frames such as ``TUM_color.png``/``TUM_depth.png``)
pass ``rgb_glob`` and ``depth_glob``. TUM publishes per-camera intrinsics (freiburg1/2/3):
give them as ``intrinsics``; otherwise samples have no ``K``.
"""

import os

from training.data.datasets.base import Frame
from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import intrinsics_matrix
from training.data.datasets.base import require_frames
from training.data.datasets.folder import glob_frames
from training.data.datasets.folder import uses_globs
from training.data.datasets.pairing import associate_nearest


def read_tum_list(path: str) -> list:
    """Read a TUM file list (``timestamp filename`` lines, ``#`` comments).

    Args:
        path: ``rgb.txt`` or ``depth.txt``.

    Returns:
        List of ``(timestamp_s, relative_path)``.

    Raises:
        ValueError: For a line that is not ``timestamp filename``.
    """
    entries = []
    with open(path, encoding='utf-8') as stream:
        for number, line in enumerate(stream, 1):
            fields = line.split()
            if not fields or fields[0].startswith('#'):
                continue
            try:
                entries.append((float(fields[0]), fields[1]))
            except (ValueError, IndexError) as error:
                raise ValueError(f'{path}:{number}: expected "timestamp filename", '
                                 f'got {line.strip()!r}') from error
    return entries


class TUMDataset(FrameListDataset):
    """TUM RGB-D sequences (or single frames given by glob patterns)."""

    source = 'tum'

    def __init__(self, root: str, rgb_glob: str = None, depth_glob: str = None,
                 intrinsics=None, max_dt: float = 0.02, transform=None, max_skips: int = 32):
        """Associate colour and depth.

        Args:
            root: Sequence folder (with ``rgb.txt`` and ``depth.txt``) or frame folder.
            rgb_glob: Colour pattern; with ``depth_glob`` it replaces the file lists.
            depth_glob: Depth pattern.
            intrinsics: Camera matrix (``intrinsics_matrix`` formats) or None.
            max_dt: Largest colour/depth time difference in seconds (TUM's associate.py
                uses 0.02).
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ValueError: Only one glob given, no lists and no globs, or no frame found.
        """
        root = os.fspath(root)
        if uses_globs('TUM', rgb_glob, depth_glob):
            frames = glob_frames(root, rgb_glob, depth_glob, 'tum', intrinsics=intrinsics)
        else:
            lists = [os.path.join(root, name) for name in ('rgb.txt', 'depth.txt')]
            if not all(os.path.isfile(path) for path in lists):
                raise ValueError(f'{root!r} has no rgb.txt/depth.txt; give rgb_glob and '
                                 'depth_glob for single frames')
            rgb, depth = (read_tum_list(path) for path in lists)
            matrix = intrinsics_matrix(intrinsics)
            pairs = associate_nearest([t for t, _ in depth], [t for t, _ in rgb], max_dt)
            frames = [Frame(name=os.path.join(root, depth[d][1]),
                            rgb_path=os.path.join(root, rgb[r][1]),
                            depth_path=os.path.join(root, depth[d][1]), encoding='tum',
                            intrinsics=matrix) for d, r in pairs]
        super().__init__(require_frames(frames, self.source, root), transform, max_skips)
