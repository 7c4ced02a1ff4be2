"""NYU Depth V2 raw dumps: ``r-<time>-<n>.ppm`` colour and ``d-<time>-<n>.pgm`` disparity.

Each depth frame is paired with the colour frame nearest in time (the toolbox's
``get_synched_frames`` does the same). Depth is Kinect disparity, decoded by the ``nyu_raw``
encoding (see ``vd_ros.core.depth_codec`` for the byte order). Raw depth is *not* registered
to colour: it lives in the depth camera, whose intrinsics (``NYU_DEPTH_INTRINSICS``, from the
toolbox's ``camera_params.m``) are returned as ``K``; the colour/depth alignment is
approximate (a few pixels, more at depth edges). Single exported frames (such as
``NYU_color.ppm``/``NYU_depth.pgm``) are read with ``rgb_glob`` and ``depth_glob``.
"""

import collections
import glob
import os

from training.data.datasets.base import Frame
from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import intrinsics_matrix
from training.data.datasets.base import require_frames
from training.data.datasets.folder import glob_frames
from training.data.datasets.folder import uses_globs
from training.data.datasets.pairing import associate_nearest

# fx_d, fy_d, cx_d, cy_d of the NYU Depth V2 toolbox (camera_params.m).
NYU_DEPTH_INTRINSICS = [5.8262448167737955e+02, 5.8269103270988637e+02,
                        3.1304475870804731e+02, 2.3844389626620386e+02]


def dump_time(path: str) -> float:
    """Return the timestamp (s) in a raw dump name such as ``d-1315403270.612296-38509.pgm``."""
    try:
        return float(os.path.basename(path).split('-')[1])
    except (IndexError, ValueError) as error:
        raise ValueError(f'not an NYU raw dump name: {path!r}') from error


def nyu_raw_frames(root: str, max_dt: float) -> list:
    """Pair the dumps of every scene folder under ``root`` by nearest timestamp.

    Args:
        root: Folder of scene folders (or one scene folder).
        max_dt: Largest colour/depth time difference in seconds.

    Returns:
        List of ``Frame`` (encoding ``nyu_raw``, depth-camera intrinsics).
    """
    by_folder = collections.defaultdict(lambda: ([], []))
    for index, pattern in enumerate(('r-*.ppm', 'd-*.pgm')):
        for path in glob.glob(os.path.join(glob.escape(root), '**', pattern), recursive=True):
            by_folder[os.path.dirname(path)][index].append(path)
    matrix = intrinsics_matrix(NYU_DEPTH_INTRINSICS)
    frames = []
    for folder in sorted(by_folder):
        rgb, depth = (sorted(paths) for paths in by_folder[folder])
        pairs = associate_nearest([dump_time(p) for p in depth], [dump_time(p) for p in rgb],
                                  max_dt)
        frames += [Frame(name=depth[d], rgb_path=rgb[r], depth_path=depth[d],
                         encoding='nyu_raw', intrinsics=matrix) for d, r in pairs]
    return frames


class NYURawDataset(FrameListDataset):
    """NYU Depth V2 raw frames (scene dump folders, or single frames by glob patterns)."""

    source = 'nyu_raw'

    def __init__(self, root: str, rgb_glob: str = None, depth_glob: str = None,
                 intrinsics=NYU_DEPTH_INTRINSICS, max_dt: float = 0.05, transform=None,
                 max_skips: int = 32):
        """Find and pair the dumps.

        Args:
            root: Raw dataset folder or frame folder.
            rgb_glob: Colour pattern; with ``depth_glob`` it replaces the dump search.
            depth_glob: Depth pattern.
            intrinsics: Camera matrix in glob mode (default: the Kinect depth camera).
            max_dt: Largest colour/depth time difference in seconds (dump mode).
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ValueError: Only one glob given, or no frame found.
        """
        root = os.fspath(root)
        frames = (glob_frames(root, rgb_glob, depth_glob, 'nyu_raw', intrinsics=intrinsics)
                  if uses_globs('NYU raw', rgb_glob, depth_glob) else nyu_raw_frames(root, max_dt))
        super().__init__(require_frames(frames, self.source, root), transform, max_skips)
