"""NYU Depth V2 labelled set: the official ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 / HDF5).

Needs ``h5py`` (not a project requirement; the reader raises ``ImportError`` saying so). In
HDF5 the MATLAB arrays are stored transposed: ``images`` (N, 3, W, H) uint8,
``depths``/``rawDepths`` (N, W, H) float32 metres, ``labels`` (N, W, H) uint16 (0 =
unlabelled, 1..894 = class in ``names``). Depth here is registered to the colour camera, so
``K`` is the colour intrinsics ``NYU_RGB_INTRINSICS`` (toolbox ``camera_params.m``). By default
the raw projected depth (``rawDepths``) is read; ``depths`` is hole-filled by colourisation,
i.e. partly invented, and should not be a pretraining target.
"""

import os

import numpy as np

from training.data.datasets.base import intrinsics_matrix
from training.data.datasets.base import RGBDDataset
from vd_ros.core.depth_codec import decode_depth

# fx_rgb, fy_rgb, cx_rgb, cy_rgb of the NYU Depth V2 toolbox (camera_params.m).
NYU_RGB_INTRINSICS = [5.1885790117450188e+02, 5.1946961112127485e+02,
                      3.2558244941119034e+02, 2.5373616633400465e+02]
NYU_DEPTH_KEYS = ('rawDepths', 'depths')


class NYULabeledDataset(RGBDDataset):
    """The 1449 labelled NYU Depth V2 frames with per-pixel class labels."""

    source = 'nyu_labeled'

    def __init__(self, root: str, depth_key: str = 'rawDepths', transform=None,
                 max_skips: int = 32):
        """Open the file to count the frames (it is reopened lazily in each worker).

        Args:
            root: Path of ``nyu_depth_v2_labeled.mat``.
            depth_key: ``rawDepths`` (measured) or ``depths`` (hole-filled).
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ImportError: When h5py is not installed.
            ValueError: Unknown ``depth_key`` or a file without the official datasets.
        """
        super().__init__(transform, max_skips)
        try:
            import h5py  # noqa: F401 (optional dependency, checked early)
        except ImportError as error:
            raise ImportError('reading nyu_depth_v2_labeled.mat needs h5py '
                              '(pip install h5py)') from error
        if depth_key not in NYU_DEPTH_KEYS:
            raise ValueError(f'depth_key must be one of {NYU_DEPTH_KEYS}, got {depth_key!r}')
        self.path = os.fspath(root)
        self.depth_key = depth_key
        self.intrinsics = intrinsics_matrix(NYU_RGB_INTRINSICS)
        self._file = None
        file = self._open()
        missing = {'images', 'labels', depth_key} - set(file.keys())
        if missing:
            raise ValueError(f'{self.path!r} lacks the datasets {sorted(missing)}')
        self._size = int(file['images'].shape[0])

    def _open(self):
        """Return the open HDF5 file (opened once per process)."""
        if self._file is None:
            import h5py
            self._file = h5py.File(self.path, 'r')
        return self._file

    def __getstate__(self) -> dict:
        """Drop the open file when the dataset is sent to a DataLoader worker."""
        state = dict(self.__dict__)
        state['_file'] = None
        return state

    def __len__(self) -> int:
        """Return the number of labelled frames."""
        return self._size

    def load(self, index: int) -> dict:
        """Read frame ``index`` (the sample layout of ``training.data.datasets.base``)."""
        file = self._open()
        rgb = np.ascontiguousarray(file['images'][index].transpose(2, 1, 0))  # (H, W, 3)
        raw = np.asarray(file[self.depth_key][index], dtype=np.float32).T  # (H, W)
        depth = decode_depth(np.ascontiguousarray(raw), 'metres')
        label = np.ascontiguousarray(file['labels'][index].T).astype(np.int64)  # (H, W)
        return {'rgb': rgb, 'depth': depth, 'valid': depth > 0.0,
                'name': f'{self.path}[{index}]', 'source': self.source,
                'K': self.intrinsics.copy(), 'label': label}
