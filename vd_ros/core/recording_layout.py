"""What kind of RGB-D recording a path holds, and which bag topics carry colour and depth.

Pure Python (file names and topic names only), shared by ``vd_ros_replay`` (publishes a
recording) and ``training.adapt`` (learns from one).
"""

import glob
import os
from typing import Optional, Sequence, Tuple

FORMATS = ('7scenes', 'tum', 'ycbv', 'open3d', 'rosbag2')
BAG_SUFFIXES = ('.mcap', '.db3')


def detect_format(path: str) -> str:
    """Guess the layout of a recording: a dataset folder or a rosbag2.

    Args:
        path: A folder, or a single ``.mcap`` / ``.db3`` bag file.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        ValueError: When the path matches no known layout.
    """
    def exists(*parts):
        return glob.glob(os.path.join(path, *parts))

    if os.path.isfile(path) and path.endswith(BAG_SUFFIXES):
        return 'rosbag2'
    if exists('metadata.yaml'):
        return 'rosbag2'
    if exists('frame-*.color.*'):
        return '7scenes'
    if exists('rgb.txt') and exists('depth.txt'):
        return 'tum'
    if exists('*-color.png') or exists('frames', '*', '*-color.png'):
        return 'ycbv'
    if exists('color', '*') and exists('depth', '*'):
        return 'open3d'
    raise ValueError(f'{path}: not a 7-Scenes, TUM, YCB-Video, Open3D or rosbag2 recording')


def pick_rgbd_topics(images: Sequence[str], infos: Sequence[str], rgb: Optional[str] = None,
                     depth: Optional[str] = None,
                     info: Optional[str] = None) -> Tuple[Optional[str], Optional[str],
                                                          Optional[str]]:
    """Choose the colour, depth and camera_info topics of a bag (given ones are kept).

    Depth defaults to the first Image topic whose name contains 'depth', colour to the first
    other Image topic, camera_info to the first CameraInfo topic.

    Args:
        images: The bag's ``sensor_msgs/msg/Image`` topics, in bag order.
        infos: Its ``sensor_msgs/msg/CameraInfo`` topics.
        rgb: The colour topic, when the user named it.
        depth: The depth topic, when the user named it.
        info: The camera_info topic, when the user named it.

    Returns:
        ``(rgb, depth, info)``; None where the bag has no candidate.
    """
    depth = depth or next((topic for topic in images if 'depth' in topic), None)
    rgb = rgb or next((topic for topic in images if topic != depth), None)
    return rgb, depth, info or next(iter(infos), None)
