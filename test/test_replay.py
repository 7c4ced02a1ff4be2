"""vd_ros_replay: dataset folders and rosbag2 decoded right, frames published over DDS."""

import os
import shutil

import cv2
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from ros_harness import replay_into
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from vd_ros.image_codec import decode_depth
from vd_ros.replay import bag_frames, detect_format, frame_messages, load_frames


def test_formats_are_detected(shared_data):
    assert detect_format(os.path.join(shared_data, '7scenes_redkitchen')) == '7scenes'
    assert detect_format(os.path.join(shared_data, 'ycbv')) == 'ycbv'
    assert detect_format(os.path.join(shared_data, 'ycbv', 'frames', '0001')) == 'ycbv'
    assert detect_format(os.path.join(shared_data, 'open3d_rgbd')) == 'open3d'
    with pytest.raises(ValueError, match='not a 7-Scenes'):
        detect_format(shared_data)


def test_seven_scenes_frames_are_metres_with_scaled_intrinsics(shared_data):
    folder = os.path.join(shared_data, '7scenes_redkitchen')
    frame, = load_frames(folder, start=5, count=1)
    raw = cv2.imread(os.path.join(folder, 'frame-000005.depth.png'), cv2.IMREAD_UNCHANGED)
    valid = (raw > 0) & (raw < 65535)
    np.testing.assert_allclose(frame.depth_m[valid], raw[valid] / 1000.0, rtol=1e-6)
    assert not frame.depth_m[~valid].any()
    assert frame.intrinsics[0, 0] == 585.0 and frame.rgb.shape == (480, 640, 3)
    half, = load_frames(folder, start=5, count=1, scale=0.5)
    assert half.rgb.shape == (240, 320, 3)
    assert half.intrinsics[0, 0] == 292.5
    assert half.intrinsics[0, 2] == pytest.approx((320 + 0.5) * 0.5 - 0.5)


def test_tum_folder_is_associated_and_decoded(shared_data, tmp_path):
    other = os.path.join(shared_data, 'open3d_rgbd', 'other_formats')
    (tmp_path / 'rgb').mkdir()
    (tmp_path / 'depth').mkdir()
    shutil.copy(os.path.join(other, 'TUM_color.png'), tmp_path / 'rgb' / '1.000000.png')
    shutil.copy(os.path.join(other, 'TUM_depth.png'), tmp_path / 'depth' / '1.010000.png')
    (tmp_path / 'rgb.txt').write_text('# timestamp filename\n1.000000 rgb/1.000000.png\n')
    (tmp_path / 'depth.txt').write_text('1.010000 depth/1.010000.png\n')
    frame, = load_frames(str(tmp_path))
    raw = cv2.imread(os.path.join(other, 'TUM_depth.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(frame.depth_m, raw / 5000.0, rtol=1e-6)
    assert frame.intrinsics[0, 0] == 525.0


def test_depth_messages_round_trip_in_both_encodings():
    frame, = load_frames('sample', count=1)
    header = Header(frame_id='cam')
    rgb, depth_mm, info = frame_messages(frame, header, '16UC1')
    np.testing.assert_array_equal(decode_depth(depth_mm), frame.depth_m)  # integer mm data
    _, depth_m, _ = frame_messages(frame, header, '32FC1')
    assert np.isnan(np.frombuffer(bytes(depth_m.data), np.float32)).sum() == (
        frame.depth_m == 0).sum()
    assert (info.width, info.height, info.k[0], info.k[2]) == (640, 480, 525.0, 319.5)
    assert rgb.encoding == 'rgb8' and rgb.header.frame_id == 'cam'


def test_rosbag2_triples_are_paired_by_stamp(tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import get_typestore, Stores

    frames = load_frames('sample', count=2, scale=0.25)
    path = tmp_path / 'bag'
    with Writer(path, version=8) as writer:
        topics = {'/cam/color': 'sensor_msgs/msg/Image', '/cam/depth': 'sensor_msgs/msg/Image',
                  '/cam/color/camera_info': 'sensor_msgs/msg/CameraInfo'}
        typestore = get_typestore(Stores.ROS2_JAZZY)
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore)
                       for topic, msgtype in topics.items()}
        for index, frame in enumerate(frames):
            header = Header(frame_id='cam')
            header.stamp.sec = 100 + index
            rgb, depth, info = frame_messages(frame, header)
            for topic, msg in (('/cam/color/camera_info', info), ('/cam/color', rgb),
                               ('/cam/depth', depth)):
                writer.write(connections[topic], (100 + index) * 10**9, serialize_message(msg))
    triples = list(bag_frames(str(path)))
    assert len(triples) == 2
    for index, (rgb, depth, info) in enumerate(triples):
        assert isinstance(rgb, Image) and isinstance(info, CameraInfo)
        assert rgb.header.stamp.sec == depth.header.stamp.sec == 100 + index
        np.testing.assert_array_equal(decode_depth(depth), frames[index].depth_m)
    assert detect_format(str(path)) == 'rosbag2'


@pytest.mark.ros
@pytest.mark.slow
def test_cli_publishes_every_frame_with_one_stamp(ros_context):
    from rclpy.node import Node

    from vd_ros.qos import qos_profile

    node = Node('replay_listener', context=ros_context)
    stamps = {'rgb': [], 'depth': [], 'info': []}
    for key, topic, msg_type in (('rgb', 'rgb/image_raw', Image),
                                 ('depth', 'depth/image_raw', Image),
                                 ('info', 'rgb/camera_info', CameraInfo)):
        node.create_subscription(msg_type, topic, lambda msg, key=key: stamps[key].append(
            (msg.header.stamp.sec, msg.header.stamp.nanosec)), qos_profile('reliable'))
    result = replay_into(ros_context, node, '--source', 'sample', '--scale', '0.25',
                         '--rate', '20', '--loops', '2', '--qos', 'reliable')
    assert 'published 6 frames' in result.stderr
    assert len(stamps['rgb']) == 6, stamps
    assert stamps['rgb'] == stamps['depth'] == stamps['info']
