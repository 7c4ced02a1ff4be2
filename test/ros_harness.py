"""The test harness: a node that feeds the perception node and records its outputs.

:func:`replay_into` feeds a node from another process (``vd_ros_replay``).
"""

import os
import subprocess
import sys
import threading
import time

import pytest

OUTPUT_TOPICS = {
    'segmentation': 'Image', 'segmentation/color': 'Image', 'depth': 'Image',
    'depth/camera_info': 'CameraInfo', 'features': 'Image',
    'features/camera_info': 'CameraInfo', 'features/pca': 'Image', 'points': 'PointCloud2',
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Harness:
    """A test node that feeds frames to the perception node and records everything it sends.

    Attributes:
        node: The test's own rclpy node (namespace of the perception node's inputs).
        received: Output topic -> list of messages, in arrival order.
        diagnostics: Received ``DiagnosticStatus`` of the perception node, in order.
    """

    def __init__(self, context, perception_name: str, topics=OUTPUT_TOPICS):
        """Create the node, publishers of the three inputs and subscribers of the outputs."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs import msg as sensor_msgs

        from vd_ros.replay import FramePublisher

        self.node = Node('vd_ros_test_harness', context=context)
        self.frames = FramePublisher(self.node, qos='reliable')
        self.received = {topic: [] for topic in topics}
        self.diagnostics = []
        self._lock = threading.Lock()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._outputs = {topic: self.node.create_subscription(
            getattr(sensor_msgs, type_name), f'/{perception_name}/{topic}',
            lambda msg, topic=topic: self._store(topic, msg), reliable)
            for topic, type_name in topics.items()}
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.perception_name = perception_name

    def _store(self, topic, msg):
        with self._lock:
            self.received[topic].append(msg)

    def _on_diagnostics(self, msg):
        with self._lock:
            self.diagnostics += [s for s in msg.status if s.name.endswith(self.perception_name)]

    def wait_for(self, predicate, timeout: float = 60.0, what: str = 'condition') -> None:
        """Wait until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
        if not self.poll(predicate, timeout):
            pytest.fail(f'timed out after {timeout} s waiting for {what}')

    def poll(self, predicate, timeout: float) -> bool:
        """Return whether ``predicate()`` became true within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            time.sleep(0.02)
        return False

    def wait_connected(self, node, timeout: float = 60.0) -> None:
        """Wait until every input and every recorded output is matched on both ends.

        Each writer must have matched its reader and each reader its writer, camera_info
        included: a volatile message published before its reader is matched is lost for good,
        and DDS discovery of the endpoints finishes in any order (slowly on a loaded machine).
        """
        inputs = [sub for sub in node.subscriptions
                  if sub.topic_name.endswith(('/image_raw', '/camera_info'))]
        writers = (self.frames.rgb, self.frames.depth, self.frames.info)
        outputs = [topic for topic in self.received if topic in node._outputs]

        def connected():
            return (len(inputs) == len(writers) and
                    all(writer.get_subscription_count() > 0 for writer in writers) and
                    all(sub.get_publisher_count() > 0 for sub in inputs) and
                    all(node._outputs[topic].get_subscription_count() > 0 and
                        self._outputs[topic].get_publisher_count() > 0 for topic in outputs))
        self.wait_for(connected, timeout, 'DDS discovery between the test and the node')

    def call(self, srv_type, service: str, request, timeout: float = 60.0,
             resend_s: float = None):
        """Call ``service`` of type ``srv_type`` over DDS; return the response.

        Args:
            srv_type: The service type.
            service: Its name.
            request: The request.
            timeout: Seconds to wait for the service and for the response.
            resend_s: For a query that may be sent twice (e.g. ``get_state``): send it again
                after this many seconds without a response. Right after discovery a reply can
                be lost while the client's reply reader is still being matched (Fast DDS; the
                request side is ros2/rmw_fastrtps#238); None waits for the one request.
        """
        client = self.node.create_client(srv_type, service)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                pytest.fail(f'service {service} not available within {timeout} s')
            deadline = time.monotonic() + timeout
            while True:
                future = client.call_async(request)
                remaining = deadline - time.monotonic()
                if self.poll(future.done, remaining if resend_s is None
                             else min(resend_s, remaining)):
                    return future.result()
                if time.monotonic() >= deadline:
                    pytest.fail(f'timed out after {timeout} s waiting for the response of '
                                f'{service}')
        finally:
            self.node.destroy_client(client)

    def latest_drops(self) -> dict:
        """Return the drop counters of the newest diagnostics status (empty if none yet)."""
        from vd_ros.diagnostics import status_values
        if not self.diagnostics:
            return {}
        values = status_values(self.diagnostics[-1])
        return {key[len('drops.'):]: int(value) for key, value in values.items()
                if key.startswith('drops.')}


def replay_into(ros_context, node, *arguments):
    """Spin ``node`` while ``vd_ros_replay`` runs with ``arguments`` in its own process.

    Waits 1 s after the replayer exits for the last messages, then destroys ``node``.

    Returns:
        The replayer's ``subprocess.CompletedProcess`` (it must have exited with 0).
    """
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    result = subprocess.run(
        [sys.executable, '-m', 'vd_ros.replay', *arguments, '--wait-subscribers', '20'],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    time.sleep(1.0)
    executor.shutdown(timeout_sec=2.0)
    spinner.join(timeout=5.0)  # a node destroyed under a spinning executor can abort the run
    node.destroy_node()
    assert result.returncode == 0, result.stderr[-2000:]
    return result
