"""ROS 2 bags (``.mcap`` or ``.db3``) read with ``rosbags``: RGB and depth topics paired in time.

Colour and depth messages are paired by ``header.stamp``: each depth message takes the colour
message nearest in time if it lies within ``slop`` seconds (like an approximate-time
synchroniser). Images are decoded with ``vd_ros.image_codec`` (REP 118: ``rgb8``, ``bgr8``,
``rgba8``, ``bgra8``, ``mono8`` colour; ``16UC1``/``mono16`` millimetres and ``32FC1`` metres
depth). ``K`` comes from the first message of ``camera_info_topic`` when given. Indexing scans
the bag once; each sample is then read by its bag timestamp, with one reader per process.
``rosbags`` and the ROS message types are imported only when a bag is read, so the other
readers, and training on them, work where ROS is not installed (the GPU machine of
``tools/gpu_train.sh``).
"""

import os
from pathlib import Path

import numpy as np

from training.data.datasets.base import require_frames
from training.data.datasets.base import RGBDDataset
from training.data.datasets.pairing import associate_nearest
from vd_ros.core.depth_codec import FrameError
from vd_ros.core.recording_layout import pick_rgbd_topics


def _stamp_s(msg) -> float:
    """Return a message's ``header.stamp`` in seconds."""
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


class RosbagDataset(RGBDDataset):
    """RGB-D pairs from two image topics of a ROS 2 bag."""

    source = 'rosbag'

    def __init__(self, root: str, rgb_topic: str = None, depth_topic: str = None,
                 slop: float = 0.02, camera_info_topic: str = None, transform=None,
                 max_skips: int = 32):
        """Scan the bag and pair the messages.

        Args:
            root: Bag folder (with ``metadata.yaml``) or a single ``.mcap``/``.db3`` file.
            rgb_topic: Colour ``sensor_msgs/msg/Image`` topic (default: the first Image topic
                without 'depth' in its name, ``vd_ros.core.recording_layout.pick_rgbd_topics``).
            depth_topic: Depth ``sensor_msgs/msg/Image`` topic (default: the first Image topic
                with 'depth' in its name).
            slop: Largest colour/depth stamp difference in seconds.
            camera_info_topic: Optional ``sensor_msgs/msg/CameraInfo`` topic for ``K``.
            transform: See ``RGBDDataset``.
            max_skips: See ``RGBDDataset``.

        Raises:
            ValueError: A topic is missing from the bag, or no pair is found.
        """
        super().__init__(transform, max_skips)
        self.path = os.fspath(root)
        self._reader = None
        reader = self._open()
        found = {c.topic for c in reader.connections}
        images = [c.topic for c in reader.connections if c.msgtype == 'sensor_msgs/msg/Image']
        rgb_topic, depth_topic, _ = pick_rgbd_topics(images, [], rgb_topic, depth_topic)
        if rgb_topic is None or depth_topic is None:
            raise ValueError(f'bag {self.path!r}: cannot tell its colour and depth Image topics '
                             f'(Image topics: {images}); name them')
        self.topics = {'rgb': rgb_topic, 'depth': depth_topic}
        wanted = [rgb_topic, depth_topic] + ([camera_info_topic] if camera_info_topic else [])
        missing = [topic for topic in wanted if topic not in found]
        if missing:
            raise ValueError(f'bag {self.path!r} has no topic {missing}; it has {sorted(found)}')
        stamps = {'rgb': [], 'depth': []}
        connections = [c for c in reader.connections if c.topic in self.topics.values()]
        for connection, bag_time, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            role = 'rgb' if connection.topic == rgb_topic else 'depth'
            stamps[role].append((_stamp_s(msg), bag_time))
        pairs = associate_nearest([s for s, _ in stamps['depth']], [s for s, _ in stamps['rgb']],
                                  slop)
        # (rgb bag time, depth bag time, depth stamp) of every pair
        self.pairs = require_frames(
            [(stamps['rgb'][r][1], stamps['depth'][d][1], stamps['depth'][d][0])
             for d, r in pairs], self.source, self.path)
        self.intrinsics = self._camera_matrix(camera_info_topic) if camera_info_topic else None

    def _open(self):
        """Return this process's open bag reader (a ``rosbags.highlevel.AnyReader``)."""
        if self._reader is None:
            from rosbags.highlevel import AnyReader
            from rosbags.typesys import get_typestore
            from rosbags.typesys import Stores
            self._reader = AnyReader([Path(self.path)],
                                     default_typestore=get_typestore(Stores.ROS2_HUMBLE))
            self._reader.open()
        return self._reader

    def __getstate__(self) -> dict:
        """Drop the open reader when the dataset is sent to a DataLoader worker."""
        state = dict(self.__dict__)
        state['_reader'] = None
        return state

    def _camera_matrix(self, topic: str) -> np.ndarray:
        """Return the 3x3 ``k`` of the first CameraInfo message on ``topic``."""
        reader = self._open()
        connections = [c for c in reader.connections if c.topic == topic]
        for connection, _, raw in reader.messages(connections=connections):
            return np.asarray(reader.deserialize(raw, connection.msgtype).k,
                              dtype=np.float64).reshape(3, 3)
        raise ValueError(f'bag {self.path!r}: topic {topic!r} has no message')

    def _message(self, role: str, bag_time: int):
        """Return the deserialised message of ``role`` recorded at ``bag_time`` (ns)."""
        reader = self._open()
        connections = [c for c in reader.connections if c.topic == self.topics[role]]
        for connection, _, raw in reader.messages(connections=connections, start=bag_time,
                                                  stop=bag_time + 1):
            return reader.deserialize(raw, connection.msgtype)
        raise FrameError(f'bag {self.path!r}: no {self.topics[role]} message at {bag_time} ns')

    def __len__(self) -> int:
        """Return the number of colour/depth pairs."""
        return len(self.pairs)

    def load(self, index: int) -> dict:
        """Read and decode pair ``index`` (the sample layout of ``..base``)."""
        from vd_ros.image_codec import decode_depth
        from vd_ros.image_codec import decode_rgb
        from vd_ros.image_codec import ImageEncodingError
        rgb_time, depth_time, stamp = self.pairs[index]
        name = f'{self.path}@{stamp:.9f}'
        try:
            rgb = decode_rgb(self._message('rgb', rgb_time))
            depth = decode_depth(self._message('depth', depth_time))
        except ImageEncodingError as error:
            raise FrameError(f'{name}: {error}') from error
        if rgb.shape[:2] != depth.shape:
            raise FrameError(f'{name}: colour {rgb.shape[:2]} and depth {depth.shape} differ')
        sample = {'rgb': rgb, 'depth': depth, 'valid': depth > 0.0, 'name': name,
                  'source': self.source}
        if self.intrinsics is not None:
            sample['K'] = self.intrinsics.copy()
        return sample
