"""camera_info: each frame gets its own, latched publishers work, no wait when nothing changes."""

import threading
import time

import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from vd_ros.camera_info_cache import CameraInfoCache
from vd_ros.image_codec import image_to_array
from vd_ros.replay import frame_messages, load_frames

S = 10**9
WAIT_S = 0.5


def info_at(seconds: int, width: int = 640, fx: float = 500.0) -> CameraInfo:
    info = CameraInfo(width=width, height=480)
    info.k = [fx, 0.0, 320.0, 0.0, fx, 240.0, 0.0, 0.0, 1.0]
    info.header.stamp.sec = seconds
    return info


def test_frame_waits_for_its_own_camera_info_while_the_intrinsics_change():
    # Executor threads may handle a frame's camera_info after its images: after a change
    # of intrinsics the frame's own is waited for instead of using an older one.
    cache = CameraInfoCache()
    cache.add(info_at(99, 320))
    cache.add(info_at(100, 640))  # the intrinsics changed
    late = threading.Timer(0.2, cache.add, [info_at(101, 320)])
    late.start()
    start = time.monotonic()
    assert cache.lookup(101 * S, 0, WAIT_S).width == 320
    assert 0.15 < time.monotonic() - start < WAIT_S
    assert cache.borrowed == 0  # its own
    # A newer camera_info already there: the frame's own will not come, the newest is used.
    start = time.monotonic()
    assert cache.lookup(100 * S + S // 2, 0, WAIT_S).width == 320
    assert time.monotonic() - start < 0.1
    assert cache.borrowed == 1  # another frame's, counted
    # Nothing newer and it never comes: the newest after the wait.
    start = time.monotonic()
    assert cache.lookup(102 * S, 0, WAIT_S).header.stamp.sec == 101
    assert time.monotonic() - start >= WAIT_S
    assert cache.borrowed == 2


def test_a_per_frame_camera_info_is_waited_for_even_when_unchanged():
    # The frame's own camera_info may be bad (NaN K) or new: a camera that sends one per
    # frame gets it used, not the previous frame's, even while nothing has changed so far.
    cache = CameraInfoCache()
    cache.add(info_at(1))
    assert cache.lookup(1 * S, 0, WAIT_S).header.stamp.sec == 1  # found its own
    late = threading.Timer(0.1, cache.add, [info_at(2, fx=float('nan'))])
    late.start()
    info = cache.lookup(2 * S, 0, WAIT_S)
    assert info.header.stamp.sec == 2 and np.isnan(info.k[0])
    assert cache.borrowed == 0


def test_a_camera_info_stamped_in_the_future_does_not_end_the_wait_of_later_frames():
    # A clock jump sent one camera_info an hour ahead; the frames after it still get their own
    # (here a bad one, which must be counted), not the newest kept.
    cache = CameraInfoCache()
    cache.add(info_at(1))
    assert cache.lookup(1 * S, 0, WAIT_S).header.stamp.sec == 1
    cache.add(info_at(3600))
    cache.add(info_at(2))
    assert cache.lookup(2 * S, 0, WAIT_S).header.stamp.sec == 2
    late = threading.Timer(0.1, cache.add, [info_at(3, fx=0.0)])
    late.start()
    start = time.monotonic()
    info = cache.lookup(3 * S, 0, WAIT_S)
    assert info.header.stamp.sec == 3 and info.k[0] == 0.0
    assert 0.05 < time.monotonic() - start < WAIT_S and cache.borrowed == 0


def test_unchanged_camera_info_is_used_at_once():
    cache = CameraInfoCache()
    assert cache.lookup(5 * S, 0, WAIT_S) is None  # nothing at all: no camera_info
    cache.add(info_at(1))  # a latched camera: one message, stamped long ago
    start = time.monotonic()
    assert cache.lookup(500 * S, 0, WAIT_S).header.stamp.sec == 1
    assert cache.borrowed == 1
    cache.clear()
    assert cache.borrowed == 0
    for seconds in (2, 3):  # a fixed camera streaming the same intrinsics (NaN included)
        cache.add(info_at(seconds, fx=float('nan')))
    assert cache.lookup(4 * S, 0, WAIT_S).header.stamp.sec == 3
    assert time.monotonic() - start < 0.1
    # Twice the same stamp: one entry, the later message.
    cache.add(info_at(3, width=320))
    assert cache.lookup(3 * S, 0, WAIT_S).width == 320


@pytest.mark.ros
def test_latched_camera_info_published_once_before_the_node_started(
        ros_context, perception):
    from rclpy.node import Node

    frame, = load_frames('sample', count=1, scale=0.25)  # real frame, 160x120
    rgb, depth, info = frame_messages(frame, Header(frame_id='cam'))
    info.header.stamp.sec = 7  # stamped long before the frames
    camera = Node('vd_ros_latched_camera', context=ros_context)
    latched = camera.create_publisher(CameraInfo, 'rgb/camera_info', QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    latched.publish(info)  # once, before any subscriber exists
    try:
        node, harness = perception(topics={'depth': 'Image', 'depth/camera_info': 'CameraInfo'})
        harness.wait_for(lambda: node.camera_infos.lookup(0, 0, 0) is not None, timeout=30,
                         what='the latched camera_info')
        clock = harness.node.get_clock()
        for _ in range(3):
            stamp = clock.now().to_msg()
            for msg in (rgb, depth):
                msg.header.stamp = stamp
            harness.frames.depth.publish(depth)
            harness.frames.rgb.publish(rgb)
            # The node publishes depth first and its camera_info next: wait for both.
            harness.wait_for(lambda: all(any(m.header.stamp == stamp
                                             for m in harness.received[topic])
                                         for topic in ('depth', 'depth/camera_info')),
                             what='a frame processed with the latched camera_info')
    finally:
        camera.destroy_node()
    out = harness.received['depth/camera_info'][-1]
    assert out.k.tolist() == info.k.tolist() and out.header.stamp == stamp
    assert np.isfinite(image_to_array(harness.received['depth'][-1])).any()
    assert harness.latest_drops().get('camera_info_missing', 0) == 0
    # No per-frame wait for a camera_info stamped like the frame: decoding took milliseconds.
    assert node.stages.snapshot()['stage_decode_p50_ms'] < 1e3 * WAIT_S / 2
