"""Base RGB-D dataset: sample layout, corrupt-frame skipping, and the file-list reader.

Every reader returns samples as dicts of numpy arrays (before any transform):

- ``rgb``: (H, W, 3) uint8 RGB;
- ``depth``: (H, W) float32 metres, 0 = invalid (decoded with ``vd_ros.core.depth_codec``);
- ``valid``: (H, W) bool, ``depth > 0``;
- ``name``: str, the depth file (or bag and stamp) the sample came from;
- ``source``: str, the dataset type (``'7scenes'``, ``'ycbv'``, ...);
- ``K``: (3, 3) float64 intrinsics of the depth map's pixels, only when known;
- ``pose``: (4, 4) float64 camera-to-world, only when the dataset has it;
- ``label``: (H, W) int64 per-pixel class, only for labelled datasets.

A frame whose file is corrupt, truncated or missing is logged (``logging.warning`` with the
path), counted in ``skipped`` and replaced by the next good frame; only when
``max_skips`` frames in a row fail does ``__getitem__`` raise. The counts live in the process
that read the frames: with DataLoader workers, each worker counts its own (the warnings in the
log are the complete record).
"""

import collections
import dataclasses
import logging
import os

import cv2
import numpy as np
from torch.utils.data import Dataset

from vd_ros.core.depth_codec import FrameError
from vd_ros.core.depth_codec import FrameReadError
from vd_ros.core.depth_codec import read_depth
from vd_ros.core.depth_codec import read_rgb
from vd_ros.core.intrinsics import pinhole_matrix

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Frame:
    """The files of one RGB-D frame.

    Attributes:
        name: Unique frame name (the depth file path by default).
        rgb_path: Colour image.
        depth_path: Depth image.
        encoding: Depth encoding, see ``vd_ros.core.depth_codec.ENCODINGS``.
        depth_params: Keyword parameters of the encoding (e.g. ``factor_depth``).
        intrinsics: (3, 3) camera matrix of the depth pixels, or None when unknown.
        extras: Role -> file of further aligned data: ``pose`` (4x4 text), ``label`` (PNG),
            ``meta`` (dataset specific).
    """

    name: str
    rgb_path: str
    depth_path: str
    encoding: str
    depth_params: dict = dataclasses.field(default_factory=dict)
    intrinsics: np.ndarray | None = None
    extras: dict = dataclasses.field(default_factory=dict)


def intrinsics_matrix(value) -> np.ndarray | None:
    """Build a 3x3 camera matrix from a config value.

    Args:
        value: None, a 3x3 nested list, ``[fx, fy, cx, cy]``, or a mapping with keys
            ``fx, fy, cx, cy``.

    Returns:
        (3, 3) float64 matrix, or None for None.

    Raises:
        ValueError: For any other shape or missing keys.
    """
    if value is None:
        return None
    if hasattr(value, 'keys'):
        missing = {'fx', 'fy', 'cx', 'cy'} - set(value.keys())
        if missing:
            raise ValueError(f'intrinsics mapping lacks {sorted(missing)}: {dict(value)!r}')
        value = [value['fx'], value['fy'], value['cx'], value['cy']]
    array = np.asarray(value, dtype=np.float64)
    if array.shape == (4,):
        return pinhole_matrix(*array)
    if array.shape == (3, 3):
        return array
    raise ValueError(f'intrinsics must be 3x3, [fx, fy, cx, cy] or a mapping, got {value!r}')


def read_matrix(path: str, shape: tuple) -> np.ndarray:
    """Read a whitespace-separated text matrix (camera pose, intrinsics) of a known shape.

    Args:
        path: Text file.
        shape: Expected shape, e.g. (4, 4); a file with more rows or columns (a 4x4 file
            read as 3x3) is cut to it from the top-left.

    Returns:
        float64 array of ``shape``.

    Raises:
        FrameReadError: Missing or unparsable file, or too few values.
    """
    try:
        matrix = np.atleast_2d(np.loadtxt(path, dtype=np.float64))
    except (OSError, ValueError) as error:
        raise FrameReadError(path, str(error)) from error
    if matrix.shape[0] < shape[0] or matrix.shape[1] < shape[1]:
        raise FrameReadError(path, f'expected a {shape} matrix, got {matrix.shape}')
    return matrix[:shape[0], :shape[1]].copy()


def read_label(path: str) -> np.ndarray:
    """Read a per-pixel class image (8 or 16 bit PNG) as int64.

    Args:
        path: Label image.

    Returns:
        (H, W) int64 class indices.

    Raises:
        FrameReadError: If the file cannot be decoded or has more than one channel.
    """
    data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
    label = None if data is None or not data.size else cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise FrameReadError(path, 'missing, corrupt or truncated label image')
    if label.ndim != 2:
        raise FrameReadError(path, f'label image must have one channel, got {label.shape}')
    return label.astype(np.int64)


class RGBDDataset(Dataset):
    """Base of every reader: skips corrupt frames, applies the transform.

    Subclasses implement ``__len__`` and ``load(index) -> dict`` (the sample layout of the
    module docstring) and raise ``vd_ros.core.depth_codec.FrameError`` for bad frames.

    Attributes:
        source: Dataset type name put into every sample.
        transform: Callable applied to each loaded sample, or None.
        skipped: Counter of skipped frames, keyed by the offending path or frame name.
    """

    source = 'rgbd'

    def __init__(self, transform=None, max_skips: int = 32):
        """Set up skipping and the transform.

        Args:
            transform: Callable ``sample -> sample`` (e.g. ``build_transform(cfg, train)``).
            max_skips: Consecutive bad frames tolerated before ``__getitem__`` raises.
        """
        self.transform = transform
        self.max_skips = int(max_skips)
        self.skipped = collections.Counter()

    def __len__(self) -> int:
        """Return the number of frames."""
        raise NotImplementedError

    def load(self, index: int) -> dict:
        """Load frame ``index`` without transform; raise ``FrameError`` if it is bad."""
        raise NotImplementedError

    @property
    def skipped_total(self) -> int:
        """Return how many frame reads were skipped in this process."""
        return sum(self.skipped.values())

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index`` or, if that frame is bad, the next good one (transformed).

        Raises:
            IndexError: For an index outside the dataset.
            RuntimeError: When ``max_skips + 1`` frames in a row cannot be read.
        """
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f'index {index} out of range for {size} {self.source} frames')
        index %= size
        for attempt in range(min(size, self.max_skips + 1)):
            current = (index + attempt) % size
            try:
                sample = self.load(current)
            except FrameError as error:
                key = getattr(error, 'path', None) or f'{self.source}[{current}]'
                self.skipped[key] += 1
                _logger.warning('skipping bad %s frame %d (%s): %s', self.source, current, key,
                                error)
                continue
            return self.transform(sample) if self.transform is not None else sample
        raise RuntimeError(f'{min(size, self.max_skips + 1)} consecutive {self.source} frames '
                           f'from index {index} could not be read; see the warnings above')


class FrameListDataset(RGBDDataset):
    """A dataset given as a list of ``Frame`` file records.

    Attributes:
        frames: The frame records.
        resize_rgb_to_depth: Resize colour to the depth size (INTER_AREA) when they differ
            (ScanNet exports); otherwise a size mismatch makes the frame bad.
    """

    def __init__(self, frames, transform=None, max_skips: int = 32,
                 resize_rgb_to_depth: bool = False):
        """Store the frames.

        Args:
            frames: Sequence of ``Frame``.
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.
            resize_rgb_to_depth: See the class attributes.
        """
        super().__init__(transform, max_skips)
        self.frames = list(frames)
        self.resize_rgb_to_depth = bool(resize_rgb_to_depth)

    def __len__(self) -> int:
        """Return the number of frames."""
        return len(self.frames)

    def load(self, index: int) -> dict:
        """Load frame ``index`` (see ``load_frame``)."""
        return self.load_frame(self.frames[index])

    def load_frame(self, frame: Frame) -> dict:
        """Read and decode one frame record.

        Args:
            frame: The record.

        Returns:
            The sample dict (module docstring).

        Raises:
            FrameError: Unreadable files, wrong depth format or mismatched sizes.
        """
        rgb = read_rgb(frame.rgb_path)
        depth = read_depth(frame.depth_path, frame.encoding, **frame.depth_params)
        if rgb.shape[:2] != depth.shape:
            if not self.resize_rgb_to_depth:
                raise FrameError(f'{frame.name}: colour {rgb.shape[:2]} and depth {depth.shape} '
                                 'sizes differ')
            rgb = cv2.resize(rgb, depth.shape[::-1], interpolation=cv2.INTER_AREA)
        sample = {'rgb': rgb, 'depth': depth, 'valid': depth > 0.0, 'name': frame.name,
                  'source': self.source}
        if frame.intrinsics is not None:
            sample['K'] = np.array(frame.intrinsics, dtype=np.float64)
        if 'pose' in frame.extras:
            sample['pose'] = read_matrix(frame.extras['pose'], (4, 4))
        if 'label' in frame.extras:
            label = read_label(frame.extras['label'])
            if label.shape != depth.shape:
                raise FrameReadError(frame.extras['label'],
                                     f'label {label.shape} and depth {depth.shape} sizes differ')
            sample['label'] = label
        return sample


def require_frames(frames: list, source: str, root: str) -> list:
    """Return ``frames``, raising ``ValueError`` naming ``root`` when there are none."""
    if not frames:
        raise ValueError(f'no {source} frames found under {root!r}')
    _logger.info('%s: %d frames under %s', source, len(frames), root)
    return frames
