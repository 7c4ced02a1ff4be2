"""The QoS profiles of the camera topics, by name: shared by the node and the replay CLI.

``qos:=sensor_data`` (best effort, the camera drivers' default) or ``qos:=reliable`` (depth 5),
the node's ``qos`` parameter and ``vd_ros_replay --qos`` take the same names.
"""

from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy


def qos_profile(name: str) -> QoSProfile:
    """Return the QoS profile called ``sensor_data`` or ``reliable`` (depth 5).

    Raises:
        ValueError: For another name.
    """
    if name == 'sensor_data':
        return qos_profile_sensor_data
    if name == 'reliable':
        return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    raise ValueError(f"qos must be 'sensor_data' or 'reliable', got {name!r}")
