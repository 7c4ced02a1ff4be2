"""The node's input watch over real DDS: per-input counts, and the warnings of a bad transport.

Each case makes the real condition a robot would meet (a publisher the node cannot match, a
matched publisher that never delivers, images lost while camera_info arrives) and checks the
one warning the node logs for it, and that a healthy input gets none.
"""

import time
from types import SimpleNamespace

import numpy as np
import pytest
from std_msgs.msg import Header

from vd_ros.diagnostics import status_values
from vd_ros.image_codec import array_to_image
from vd_ros.input_watch import InputWatch, LOSS_WINDOW_S, SILENCE_S
from vd_ros.messages import rectified_camera_info

WAIT_S = SILENCE_S + 3.0


def small_frame(header: Header) -> tuple:
    """Return (rgb, depth, camera_info) messages of a valid 70x56 frame."""
    rgb = np.full((56, 70, 3), 120, np.uint8)
    depth = np.full((56, 70), 1500, np.uint16)
    camera = np.array([[60.0, 0, 35], [0, 60.0, 28], [0, 0, 1]])
    return (array_to_image(rgb, 'rgb8', header), array_to_image(depth, '16UC1', header),
            rectified_camera_info(camera, (56, 70), header))


@pytest.mark.ros
def test_a_best_effort_camera_and_a_reliable_node_are_named(perception):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node, harness = perception(topics={})  # qos: reliable
    harness.node.create_publisher(Image, 'rgb/image_raw', qos_profile_sensor_data)

    def unmatched():
        return [w for w in node._input_watch.warnings if 'not matched' in w]
    harness.wait_for(unmatched, WAIT_S, 'the QoS warning')
    warning, = unmatched()
    assert warning.startswith('/rgb/image_raw: 1 of 2 publisher(s) on the topic not matched')
    assert 'best-effort publisher' in warning and 'set qos: sensor_data' in warning


@pytest.mark.ros
def test_a_matched_camera_that_never_delivers_is_named(perception):
    node, harness = perception(topics={})
    harness.wait_for(lambda: len(node._input_watch.warnings) == 3, WAIT_S,
                     'a warning for each of the three inputs')
    topics = sorted(warning.split(':')[0] for warning in node._input_watch.warnings)
    assert topics == ['/depth/image_raw', '/rgb/camera_info', '/rgb/image_raw']
    assert all('matched but no message for' in warning and 'FASTDDS_DEFAULT_PROFILES_FILE='
               in warning for warning in node._input_watch.warnings)


@pytest.mark.ros
def test_images_lost_against_camera_info_are_counted_and_named(perception):
    node, harness = perception(topics={})
    sent = 0
    deadline = time.monotonic() + 2 * LOSS_WINDOW_S + 1.0
    while time.monotonic() < deadline:  # 20 Hz; the RGB image of every second frame lost
        stamp = harness.node.get_clock().now().to_msg()
        rgb, depth, info = small_frame(Header(stamp=stamp, frame_id='camera'))
        if sent % 2 == 0:
            harness.frames.rgb.publish(rgb)
        harness.frames.depth.publish(depth)
        harness.frames.info.publish(info)
        sent += 1
        time.sleep(0.05)
    harness.wait_for(lambda: node._input_watch.counts['camera_info'] == sent, 10.0,
                     'every camera_info')
    counts = node._input_watch.counts
    assert counts == {'rgb': (sent + 1) // 2, 'depth': sent, 'camera_info': sent}
    losses = [w for w in node._input_watch.warnings if 'images are lost' in w]
    assert len(losses) == 1 and losses[0].startswith('/rgb/image_raw: '), losses
    assert 'even reliable (qos: reliable)' in losses[0] and 'Fix: give the camera' in losses[0]
    harness.wait_for(lambda: harness.diagnostics and status_values(harness.diagnostics[-1])[
        'received.rgb'] == str(counts['rgb']), 5.0, 'the counts on /diagnostics')


class FakeNode:
    """What InputWatch uses of a node, without ROS: no timer, a list of warnings."""

    def __init__(self):
        self.logged = []

    def create_timer(self, period, callback):
        return None

    def get_logger(self):
        return SimpleNamespace(warning=self.logged.append)

    def get_publishers_info_by_topic(self, topic):
        return [None]  # one publisher, matched


def fake_watch() -> tuple:
    """Return (FakeNode, its InputWatch, the subscriptions) of rgb, depth and camera_info."""
    subscriptions = {name: SimpleNamespace(topic_name=f'/{name}', get_publisher_count=lambda: 1)
                     for name in ('rgb', 'depth', 'camera_info')}
    node = FakeNode()
    return node, InputWatch(node, subscriptions, 'camera_info', True, 'the vd_ros profile'), \
        subscriptions


def assert_one_rgb_loss_warning(logged: list) -> None:
    """Check that the only warning logged is the RGB input's loss."""
    assert len(logged) == 1 and logged[0].startswith('/rgb: ') \
        and 'images are lost' in logged[0], logged


def test_a_short_stream_that_starts_late_in_a_window_is_judged_when_it_stops():
    node, watch, subscriptions = fake_watch()
    start = time.monotonic()
    # The timer checks every 0.5 s from the start. The camera sends 3 s at 30 Hz from 2.5 s on,
    # its first 8 RGB images lost (a link that starts badly): a window fixed at the watch's
    # start would hold 15 frames, too few to judge, and the next one none lost.
    for tick in range(7 * 30):
        frame = tick - 75
        if 0 <= frame < 90:
            for name in ('depth', 'camera_info') if frame < 8 else subscriptions:
                watch.count(name)
        if tick % 15 == 0:
            watch.check(start + tick / 30.0)
    assert watch.counts == {'rgb': 82, 'depth': 90, 'camera_info': 90}
    assert_one_rgb_loss_warning(node.logged)


def test_a_stalled_check_does_not_cut_the_stream_into_windows_too_small_to_judge():
    node, watch, subscriptions = fake_watch()
    start = time.monotonic()
    # 8 Hz, every second RGB image lost, and an executor that stalls: every other check sees
    # no new camera_info (each second's 8 frames land at once). Windows closed at each stall
    # would hold 8 frames each, too few to judge.
    for tick in range(8 * 2):  # checks every 0.5 s for 8 s
        if tick % 2 == 0:
            for frame in range(8):
                for name in subscriptions if frame % 2 == 0 else ('depth', 'camera_info'):
                    watch.count(name)
        watch.check(start + tick * 0.5)
    assert_one_rgb_loss_warning(node.logged)
