"""A user's RGB-D recording as a dataset, split in time into a training and a held-back part.

A recording is a rosbag2 (``.mcap`` / ``.db3`` file or bag folder), a folder in one of the
layouts the readers know (7-Scenes, TUM, YCB-Video, Open3D), or any folder described by colour
and depth glob patterns with a depth scale and intrinsics. Consecutive frames of a recording
are nearly the same image, so a random split would score interpolation in time: the held-back
part is the *end* of the recording, separated from the training part by a gap of at least
``gap_frames`` frames and, where the frames carry time stamps, ``gap_s`` seconds.
"""

from dataclasses import dataclass
import math
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from vd_ros.core.recording_layout import detect_format

# detect_format's names -> dataset types of training.data.datasets
LAYOUT_TYPES = {'7scenes': '7scenes', 'tum': 'tum', 'ycbv': 'ycbv', 'open3d': 'open3d',
                'rosbag2': 'rosbag'}


def recording_source(path: str, rgb_topic: Optional[str] = None,
                     depth_topic: Optional[str] = None,
                     camera_info_topic: Optional[str] = None, rgb_glob: Optional[str] = None,
                     depth_glob: Optional[str] = None, depth_scale: Optional[float] = None,
                     intrinsics: Optional[Sequence[float]] = None) -> Dict[str, Any]:
    """Return the ``data.sources`` entry (``build_source``) that reads a recording.

    Args:
        path: The bag or folder.
        rgb_topic: Bag colour topic (default: guessed from the topic names).
        depth_topic: Bag depth topic (default: guessed).
        camera_info_topic: Bag camera_info topic for the intrinsics (optional).
        rgb_glob: Colour files of a plain folder, relative to it (with ``depth_glob``).
        depth_glob: Depth files with the same wildcards.
        depth_scale: Metres per depth unit of a plain folder's 16-bit PNGs (0.001 = mm).
        intrinsics: ``[fx, fy, cx, cy]`` of a plain folder (optional).

    Raises:
        ValueError: A missing path, half a glob pair, or a folder of no known layout.
    """
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(path):
        raise ValueError(f'recording {path} does not exist')
    if (rgb_glob is None) != (depth_glob is None):
        raise ValueError('give both --rgb-glob and --depth-glob, or neither')
    if rgb_glob is not None:
        spec = {'type': 'folder', 'root': path, 'rgb_glob': rgb_glob, 'depth_glob': depth_glob,
                'encoding': 'scale', 'depth_params': {'scale': float(depth_scale or 0.001)}}
        if intrinsics is not None:
            spec['intrinsics'] = [float(v) for v in intrinsics]
        return spec
    kind = LAYOUT_TYPES[detect_format(path)]
    spec = {'type': kind, 'root': path}
    if kind == 'rosbag':
        spec.update({key: value for key, value in (
            ('rgb_topic', rgb_topic), ('depth_topic', depth_topic),
            ('camera_info_topic', camera_info_topic)) if value})
    return spec


def frame_times(dataset) -> Optional[np.ndarray]:
    """Return each frame's time stamp in seconds where the reader knows it (bags), else None."""
    pairs = getattr(dataset, 'pairs', None)
    if pairs is None:
        return None
    return np.asarray([stamp for _, _, stamp in pairs], dtype=np.float64)  # (N,)


@dataclass(frozen=True)
class TimeSplit:
    """Frames ``[0, train_stop)`` train, ``[val_start, count)`` are held back.

    Attributes:
        count: Frames in the recording.
        train_stop: End of the training part (exclusive).
        val_start: Start of the held-back part.
        gap_s: Seconds between the last training and the first held-back frame (None
            without time stamps).
    """

    count: int
    train_stop: int
    val_start: int
    gap_s: Optional[float] = None

    def describe(self) -> str:
        """One line for logs and metadata."""
        gap = f', {self.gap_s:.1f} s' if self.gap_s is not None else ''
        return (f'frames 0-{self.train_stop - 1} train, {self.val_start}-{self.count - 1} '
                f'held back (gap {self.val_start - self.train_stop} frames{gap})')


def time_split(count: int, times: Optional[np.ndarray] = None, holdback: float = 0.2,
               gap_frames: int = 50, gap_s: float = 5.0, min_train: int = 8) -> TimeSplit:
    """Hold back the last ``holdback`` share of a recording, with a gap before it.

    Args:
        count: Frames in the recording, in time order.
        times: (count,) time stamps in seconds, or None.
        holdback: Share of the frames held back (at least one frame).
        gap_frames: Frames left out between the parts.
        gap_s: With ``times``: seconds at least between the parts as well.
        min_train: Fewest training frames accepted.

    Raises:
        ValueError: A bad share, or a recording too short for the gap and ``min_train``.
    """
    if not 0.0 < holdback < 1.0:
        raise ValueError(f'the held-back share must lie in (0, 1), got {holdback}')
    val_start = count - max(1, math.ceil(holdback * count))
    train_stop = val_start - int(gap_frames)
    if times is not None:
        before = np.nonzero(times[:max(train_stop, 0)] <= times[val_start] - gap_s)[0]
        train_stop = int(before[-1]) + 1 if before.size else 0
    if train_stop < min_train:
        seconds = f' and {gap_s} s' if times is not None else ''
        raise ValueError(
            f'the recording has {count} frames: holding back the last {count - val_start} '
            f'with a gap of {gap_frames} frames{seconds} leaves {max(train_stop, 0)} to train '
            f'on (at least {min_train} needed); record longer, or lower --holdback / '
            '--gap-frames')
    gap = float(times[val_start] - times[train_stop - 1]) if times is not None else None
    return TimeSplit(count, train_stop, val_start, gap)
