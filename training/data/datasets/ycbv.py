"""YCB-Video: ``NNNNNN-{color.png,depth.png,label.png,meta.mat}`` in per-video folders.

Depth is uint16 with metres = value / ``factor_depth`` (10000 for the real videos), read from
each frame's ``meta.mat`` together with its ``intrinsic_matrix`` (the synthetic frames use a
different camera). ``label`` is the per-pixel class (0 = background, 1..21 = YCB object).
"""

import dataclasses
import os

import numpy as np
import scipy.io

from training.data.datasets.base import FrameListDataset
from training.data.datasets.base import require_frames
from training.data.datasets.folder import glob_frames
from vd_ros.core.depth_codec import FrameReadError

YCBV_NUM_CLASSES = 22  # background + 21 objects


def read_ycbv_meta(path: str) -> tuple:
    """Read the camera matrix and depth factor of a YCB-Video ``meta.mat``.

    Args:
        path: ``NNNNNN-meta.mat`` (MATLAB v5).

    Returns:
        ``(K, factor_depth)``: (3, 3) float64 matrix and depth units per metre.

    Raises:
        FrameReadError: Unreadable file or missing/ill-shaped keys.
    """
    try:
        meta = scipy.io.loadmat(path, variable_names=('intrinsic_matrix', 'factor_depth'))
    except (OSError, ValueError, TypeError, EOFError) as error:
        raise FrameReadError(path, f'bad meta.mat: {error}') from error
    if 'intrinsic_matrix' not in meta or 'factor_depth' not in meta:
        raise FrameReadError(path, f'meta.mat lacks intrinsic_matrix/factor_depth: '
                                   f'{sorted(k for k in meta if not k.startswith("__"))}')
    matrix = np.asarray(meta['intrinsic_matrix'], dtype=np.float64)
    factor = np.asarray(meta['factor_depth'], dtype=np.float64).ravel()
    if matrix.shape != (3, 3) or factor.size != 1:
        raise FrameReadError(path, f'intrinsic_matrix {matrix.shape}, factor_depth '
                                   f'{factor.shape}')
    return matrix, float(factor[0])


class YCBVideoDataset(FrameListDataset):
    """YCB-Video frames with labels and per-frame intrinsics."""

    source = 'ycbv'

    def __init__(self, root: str, transform=None, max_skips: int = 32):
        """Find every frame under ``root`` (``data/``, ``data_syn/`` or any video folder).

        Args:
            root: Dataset folder.
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ValueError: When no frame is found.
        """
        root = os.fspath(root)
        frames = glob_frames(root, '**/*-color.png', '**/*-depth.png', 'ycbv',
                             extra_globs={'label': '**/*-label.png', 'meta': '**/*-meta.mat'})
        super().__init__(require_frames(frames, self.source, root), transform, max_skips)

    def load(self, index: int) -> dict:
        """Load frame ``index`` with the depth factor and intrinsics of its meta.mat."""
        frame = self.frames[index]
        matrix, factor = read_ycbv_meta(frame.extras['meta'])
        return self.load_frame(dataclasses.replace(
            frame, depth_params={'factor_depth': factor}, intrinsics=matrix))
