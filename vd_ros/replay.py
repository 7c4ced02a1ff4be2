"""``vd_ros_replay``: publish real RGB-D frames with camera_info at a chosen rate, looping.

Sources (``--source``):

* a 7-Scenes folder (``frame-NNNNNN.color.jpg`` / ``.depth.png``, ``camera-intrinsics.txt``),
* a TUM RGB-D folder (``rgb.txt``, ``depth.txt``; ROS default intrinsics unless given),
* a YCB-Video folder (``NNNNNN-color.png`` / ``-depth.png``; the dataset's intrinsics),
* an Open3D-style folder (``color/``, ``depth/``, ``camera_primesense.json``), which is the
  layout of the in-repo sample (``--source sample``),
* a rosbag2 (folder with ``metadata.yaml``, read with ``rosbags``): its RGB, depth and
  camera_info messages are restamped and republished.

Every frame goes out as ``rgb/image_raw`` (rgb8), ``depth/image_raw`` (16UC1 mm or 32FC1 m)
and ``rgb/camera_info``, all three with the same stamp (the publish time) and frame id.
"""

import argparse
from dataclasses import dataclass
import glob
import itertools
import json
import os
import sys
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tqdm import tqdm

from vd_ros import SAMPLE_DIR
from vd_ros.core.depth_codec import read_depth, read_rgb
from vd_ros.core.intrinsics import pinhole_matrix, scale_intrinsics
from vd_ros.core.recording_layout import detect_format, FORMATS, pick_rgbd_topics
from vd_ros.dds_transport import use_large_image_transport
from vd_ros.image_codec import array_to_image
from vd_ros.messages import rectified_camera_info
from vd_ros.qos import qos_profile

# TUM's recommended intrinsics for the ROS default OpenNI calibration.
TUM_DEFAULT_INTRINSICS = (525.0, 525.0, 319.5, 239.5)
# YCB-Video camera (shared/data/README.md; every video of the data set uses it).
YCBV_INTRINSICS = (1066.778, 1067.487, 312.987, 241.311)
DEPTH_ENCODINGS = ('16UC1', '32FC1')
MATCH_SETTLE_S = 0.5  # after the subscribers appeared, before the first frame


@dataclass
class Frame:
    """One RGB-D frame.

    Attributes:
        rgb: (H, W, 3) uint8 RGB.
        depth_m: (H, W) float32 metres, 0 = no measurement.
        intrinsics: (3, 3) float64 camera matrix K of the RGB image.
        name: Where the frame comes from (file name), for logs.
    """

    rgb: np.ndarray
    depth_m: np.ndarray
    intrinsics: np.ndarray
    name: str = ''


def _tum_list(path: str) -> list:
    """Read a TUM ``rgb.txt``/``depth.txt``: list of (timestamp, relative file)."""
    with open(path) as stream:
        rows = [line.split() for line in stream if line.strip() and not line.startswith('#')]
    return [(float(row[0]), row[1]) for row in rows]


def frame_files(folder: str, fmt: str) -> tuple:
    """List the (colour, depth) file pairs of a dataset folder and its decoding.

    Args:
        folder: Dataset folder.
        fmt: Layout, one of :data:`FORMATS` except ``rosbag2``.

    Returns:
        ``(pairs, depth_encoding, intrinsics)``: sorted list of (colour path, depth path), the
        ``vd_ros.core.depth_codec`` encoding and the 3x3 K.

    Raises:
        ValueError: No frames found, or an unknown layout.
    """
    if fmt == '7scenes':
        colours = sorted(glob.glob(os.path.join(folder, 'frame-*.color.*')))
        pairs = [(c, c.split('.color.')[0] + '.depth.png') for c in colours]
        intrinsics = np.loadtxt(os.path.join(folder, 'camera-intrinsics.txt')).reshape(3, 3)
        encoding = '7scenes'
    elif fmt == 'tum':
        depths = _tum_list(os.path.join(folder, 'depth.txt'))
        stamps = np.array([stamp for stamp, _ in depths])
        pairs = []
        for stamp, colour in _tum_list(os.path.join(folder, 'rgb.txt')):
            nearest = int(np.argmin(np.abs(stamps - stamp))) if len(stamps) else -1
            if nearest >= 0 and abs(stamps[nearest] - stamp) <= 0.02:  # TUM associate.py
                pairs.append((os.path.join(folder, colour),
                              os.path.join(folder, depths[nearest][1])))
        intrinsics, encoding = pinhole_matrix(*TUM_DEFAULT_INTRINSICS), 'tum'
    elif fmt == 'ycbv':
        colours = sorted(glob.glob(os.path.join(folder, '*-color.png'))
                         or glob.glob(os.path.join(folder, 'frames', '*', '*-color.png')))
        pairs = [(c, c.replace('-color.png', '-depth.png')) for c in colours]
        intrinsics, encoding = pinhole_matrix(*YCBV_INTRINSICS), 'ycbv'
    elif fmt == 'open3d':
        pairs = list(zip(sorted(glob.glob(os.path.join(folder, 'color', '*'))),
                         sorted(glob.glob(os.path.join(folder, 'depth', '*')))))
        with open(os.path.join(folder, 'camera_primesense.json')) as stream:
            values = json.load(stream)['intrinsic_matrix']
        intrinsics = np.array(values, dtype=np.float64).reshape(3, 3).T  # column-major
        encoding = 'mm'
    else:
        raise ValueError(f'unknown frame folder format {fmt!r}; expected one of {FORMATS}')
    if not pairs:
        raise ValueError(f'{folder}: no {fmt} frames found')
    return pairs, encoding, intrinsics


def load_frames(source: str, fmt: str = None, start: int = 0, step: int = 1,
                count: int = None, scale: float = 1.0, intrinsics=None) -> list:
    """Read frames of a dataset folder into memory.

    Args:
        source: Dataset folder, or ``'sample'`` for the in-repo sample.
        fmt: Layout (default: :func:`detect_format`).
        start: Index of the first frame.
        step: Use every ``step``-th frame.
        count: Number of frames (None = all).
        scale: Resize factor (< 1 shrinks; K is scaled to match).
        intrinsics: (fx, fy, cx, cy) overriding the dataset's camera.

    Returns:
        List of :class:`Frame`.
    """
    import cv2

    folder = SAMPLE_DIR if source == 'sample' else source
    fmt = fmt or detect_format(folder)
    pairs, encoding, camera = frame_files(folder, fmt)
    if intrinsics is not None:
        camera = pinhole_matrix(*intrinsics)
    stop = None if count is None else start + count * step
    frames = []
    for colour, depth_path in pairs[start:stop:step]:
        rgb, depth = read_rgb(colour), read_depth(depth_path, encoding)
        frame_camera = camera
        if scale != 1.0:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            sx, sy = size[0] / rgb.shape[1], size[1] / rgb.shape[0]
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
            frame_camera = scale_intrinsics(camera, sx, sy)
        frames.append(Frame(rgb, depth, np.asarray(frame_camera, dtype=np.float64),
                            os.path.basename(colour)))
    return frames


def frame_messages(frame: Frame, header: Header, depth_encoding: str = '16UC1') -> tuple:
    """Turn a frame into ``(rgb Image, depth Image, CameraInfo)`` with one header.

    Args:
        frame: The frame.
        header: Stamp and frame id of all three messages.
        depth_encoding: ``16UC1`` (millimetres, 0 invalid) or ``32FC1`` (metres, NaN invalid).

    Raises:
        ValueError: For another depth encoding.
    """
    if depth_encoding == '16UC1':
        depth = np.round(np.clip(frame.depth_m * 1000.0, 0, 65535)).astype(np.uint16)
    elif depth_encoding == '32FC1':
        depth = np.where(frame.depth_m > 0, frame.depth_m, np.nan).astype(np.float32)
    else:
        raise ValueError(f'depth encoding {depth_encoding!r} not in {DEPTH_ENCODINGS}')
    height, width = frame.rgb.shape[:2]
    return (array_to_image(frame.rgb, 'rgb8', header),
            array_to_image(depth, depth_encoding, header),
            rectified_camera_info(frame.intrinsics, (height, width), header))


def bag_frames(path: str, rgb_topic: str = None, depth_topic: str = None,
               info_topic: str = None, max_dt_s: float = 0.02):
    """Yield ``(rgb Image, depth Image, CameraInfo)`` triples from a rosbag2, in bag order.

    RGB and depth messages are paired when their stamps differ by at most ``max_dt_s``; the
    latest camera_info seen is attached. Topics default to the first Image topic whose name
    contains 'depth' (depth), the first other Image topic (RGB) and the first CameraInfo topic.

    Raises:
        ValueError: When the bag lacks an RGB, depth or camera_info topic.
    """
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        images = [c.topic for c in reader.connections if c.msgtype == 'sensor_msgs/msg/Image']
        infos = [c.topic for c in reader.connections
                 if c.msgtype == 'sensor_msgs/msg/CameraInfo']
        rgb_topic, depth_topic, info_topic = pick_rgbd_topics(images, infos, rgb_topic,
                                                              depth_topic, info_topic)
        if None in (rgb_topic, depth_topic, info_topic):
            raise ValueError(f'{path}: need RGB, depth and camera_info topics, found images '
                             f'{images} and camera_info {infos}')
        wanted = {rgb_topic: Image, depth_topic: Image, info_topic: CameraInfo}
        latest = {}
        connections = [c for c in reader.connections if c.topic in wanted]
        for connection, _, raw in reader.messages(connections=connections):
            latest[connection.topic] = deserialize_message(raw, wanted[connection.topic])
            rgb, depth = latest.get(rgb_topic), latest.get(depth_topic)
            if rgb is None or depth is None or info_topic not in latest:
                continue
            if abs(_seconds(rgb.header) - _seconds(depth.header)) <= max_dt_s:
                yield rgb, depth, latest[info_topic]
                del latest[rgb_topic], latest[depth_topic]


def _seconds(header: Header) -> float:
    """Return a header stamp in seconds."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class FramePublisher:
    """Publishes RGB, depth and camera_info of a frame with one stamp."""

    def __init__(self, node: Node, qos: str = 'sensor_data', rgb_topic: str = 'rgb/image_raw',
                 depth_topic: str = 'depth/image_raw', info_topic: str = 'rgb/camera_info'):
        """Create the three publishers on ``node``.

        Args:
            node: Publishing node.
            qos: ``sensor_data`` (best effort) or ``reliable``.
            rgb_topic: RGB image topic.
            depth_topic: Depth image topic.
            info_topic: camera_info topic.
        """
        profile = qos_profile(qos)
        self.node = node
        self.rgb = node.create_publisher(Image, rgb_topic, profile)
        self.depth = node.create_publisher(Image, depth_topic, profile)
        self.info = node.create_publisher(CameraInfo, info_topic, profile)

    def publish(self, rgb: Image, depth: Image, info: CameraInfo, restamp: bool = True):
        """Publish one triple; ``restamp`` gives all three the current time as stamp."""
        if restamp:
            stamp = self.node.get_clock().now().to_msg()
            for msg in (rgb, depth, info):
                msg.header.stamp = stamp
        self.rgb.publish(rgb)
        self.depth.publish(depth)
        self.info.publish(info)

    def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait until reliable subscribers acknowledged every message (best effort: at once).

        A process that exits right after its last publish can otherwise take that message
        with it (seen in CI: 5 of 6 frames arrived).

        Returns:
            True when everything was acknowledged within ``timeout_s`` per publisher.
        """
        timeout, acked = Duration(seconds=timeout_s), True
        for publisher in (self.rgb, self.depth, self.info):  # wait on each, even after a miss
            acked = publisher.wait_for_all_acked(timeout) and acked
        return acked

    def subscriber_count(self) -> int:
        """Return the smallest subscriber count of the three topics."""
        return min(publisher.get_subscription_count()
                   for publisher in (self.rgb, self.depth, self.info))


def frame_source(args):
    """Return a factory of one pass of message triples, and the number of frames per pass."""
    folder = SAMPLE_DIR if args.source == 'sample' else args.source
    fmt = args.format or detect_format(folder)
    if fmt == 'rosbag2':
        return (lambda: bag_frames(folder, args.bag_rgb_topic, args.bag_depth_topic,
                                   args.bag_info_topic)), None
    intrinsics = [float(v) for v in args.intrinsics.split(',')] if args.intrinsics else None
    frames = load_frames(folder, fmt, args.start, args.step, args.count, args.scale, intrinsics)
    header = Header(frame_id=args.frame_id)
    messages = [frame_messages(frame, header, args.depth_encoding) for frame in frames]
    return (lambda: iter(messages)), len(messages)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``vd_ros_replay``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--source', default='sample',
                        help="dataset folder, rosbag2 folder, or 'sample' (in-repo frames)")
    parser.add_argument('--format', choices=FORMATS, help='layout (default: detected)')
    parser.add_argument('--rate', type=float, default=10.0, help='frames per second')
    parser.add_argument('--loops', type=int, default=0, help='passes over the data (0 = forever)')
    parser.add_argument('--start', type=int, default=0, help='first frame index')
    parser.add_argument('--step', type=int, default=1, help='use every STEP-th frame')
    parser.add_argument('--count', type=int, help='number of frames (default all)')
    parser.add_argument('--scale', type=float, default=1.0, help='resize factor of the frames')
    parser.add_argument('--intrinsics', help='fx,fy,cx,cy overriding the dataset camera')
    parser.add_argument('--depth-encoding', choices=DEPTH_ENCODINGS, default='16UC1')
    parser.add_argument('--frame-id', default='camera_color_optical_frame')
    parser.add_argument('--qos', choices=('sensor_data', 'reliable'), default='sensor_data')
    parser.add_argument('--wait-subscribers', type=float, default=0.0,
                        help='seconds to wait for a subscriber before publishing')
    parser.add_argument('--bag-rgb-topic', help='RGB topic inside a rosbag2')
    parser.add_argument('--bag-depth-topic', help='depth topic inside a rosbag2')
    parser.add_argument('--bag-info-topic', help='camera_info topic inside a rosbag2')
    return parser


def replay(node: Node, args) -> int:
    """Publish frames per ``args`` (see :func:`build_parser`); return the number published."""
    one_pass, per_pass = frame_source(args)
    publisher = FramePublisher(node, args.qos)
    deadline = time.monotonic() + args.wait_subscribers
    while publisher.subscriber_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if args.wait_subscribers and publisher.subscriber_count():
        # The subscriber's half of the match may still be pending: a reader drops samples
        # from a writer it has not matched yet.
        time.sleep(MATCH_SETTLE_S)
    passes = itertools.count() if args.loops <= 0 else range(args.loops)
    total = None if args.loops <= 0 or per_pass is None else per_pass * args.loops
    period, published = 1.0 / args.rate, 0
    next_time = time.monotonic()
    with tqdm(total=total, unit='frame', desc='vd_ros_replay') as progress:
        for _ in passes:
            for rgb, depth, info in one_pass():
                time.sleep(max(0.0, next_time - time.monotonic()))
                next_time = max(next_time + period, time.monotonic() - period)
                try:
                    publisher.publish(rgb, depth, info)
                except Exception:  # RCLError (a pybind class) once Ctrl-C shut the context
                    if node.context.ok():
                        raise
                    raise ExternalShutdownException() from None
                published += 1
                progress.update()
    if not publisher.flush():
        node.get_logger().warning('not every frame was acknowledged by the subscribers')
    return published


def main(argv=None):
    """Run the vd_ros_replay command line (the ros2/examples shape)."""
    transport = use_large_image_transport()  # VGA images need it (vd_ros.dds_transport)
    argv = sys.argv if argv is None else argv
    args = build_parser().parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    node = Node('vd_ros_replay')
    try:
        node.get_logger().info(transport.description)
        count = replay(node, args)
        node.get_logger().info(f'published {count} frames')
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
