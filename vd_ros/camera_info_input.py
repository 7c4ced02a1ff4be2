"""Subscribe to camera_info from per-frame (volatile) and latched (transient local) publishers.

A volatile subscription matches both kinds of publisher but never gets a message published
before it matched: a camera that publishes its camera_info once, latched, at start is missed.
A transient local subscription gets that message, but does not match volatile publishers, and
their nodes log a QoS warning about it. So :class:`CameraInfoInput` always subscribes
volatile, watches the topic's publishers, and adds a transient local subscription once a
latched publisher shows up. A latched publisher then reaches both subscriptions; the
:class:`vd_ros.camera_info_cache.CameraInfoCache` keeps one copy per stamp.
"""

from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo

WATCH_PERIOD_S = 0.5  # how often the topic's publishers are checked for a latched one


class CameraInfoInput:
    """The camera_info subscriptions of a node.

    Attributes:
        subscriptions: The rclpy subscriptions: the volatile one, and the transient local one
            once a latched publisher was seen.
    """

    def __init__(self, node, topic: str, qos, callback):
        """Subscribe ``callback`` to ``topic`` with ``qos`` and start watching for latching.

        Args:
            node: The rclpy node.
            topic: camera_info topic (relative names resolve in the node's namespace).
            qos: QoS of the volatile subscription (the node's input QoS).
            callback: Called with every CameraInfo (a latched one possibly twice).
        """
        self._node = node
        self._callback = callback
        self.subscriptions = [node.create_subscription(CameraInfo, topic, callback, qos)]
        self._watch = node.create_timer(WATCH_PERIOD_S, self._add_latched_subscription)

    def _add_latched_subscription(self) -> None:
        """Subscribe transient local, with the publisher's reliability, to a latched one."""
        topic = self.subscriptions[0].topic_name
        latched = [info.qos_profile for info in self._node.get_publishers_info_by_topic(topic)
                   if info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL]
        if not latched:
            return
        self._node.destroy_timer(self._watch)
        self._watch = None
        self.subscriptions.append(self._node.create_subscription(
            CameraInfo, topic, self._callback,
            QoSProfile(depth=1, reliability=latched[0].reliability,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL)))

    def destroy(self) -> None:
        """Destroy the subscriptions and the watch timer."""
        for subscription in self.subscriptions:
            self._node.destroy_subscription(subscription)
        self.subscriptions = []
        if self._watch is not None:
            self._node.destroy_timer(self._watch)
            self._watch = None
