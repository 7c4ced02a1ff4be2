"""The bench recorder reads the stamp of a serialized output without deserializing it."""

from bench.ros_session import serialized_stamp
import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, PointCloud2


@pytest.mark.parametrize('message_type', [Image, PointCloud2])
def test_serialized_stamp_is_the_header_stamp(message_type):
    msg = message_type()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1733011200, 987654321
    msg.header.frame_id = 'camera_color_optical_frame'
    assert serialized_stamp(serialize_message(msg)) == (1733011200, 987654321)


def test_serialized_stamp_reads_a_negative_second():
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = -5, 7
    assert serialized_stamp(serialize_message(msg)) == (-5, 7)
