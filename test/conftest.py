"""ROS fixtures: a private DDS domain per test run, rclpy contexts, the node and a test harness.

Everything is real: rclpy, Fast DDS on loopback, the perception node and its ONNX Runtime
session. Only the model is tiny (``contract_model.py``) so the tests stay fast.
"""

import os
import threading
import time

import pytest

# One DDS domain per test run (pid based) so parallel runs of several developers never see each
# other's topics; must be set before any rclpy context is initialised.
os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 200)
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')

OUTPUT_TOPICS = {
    'segmentation': 'Image', 'segmentation/color': 'Image', 'depth': 'Image',
    'depth/camera_info': 'CameraInfo', 'features': 'Image',
    'features/camera_info': 'CameraInfo', 'features/pca': 'Image', 'points': 'PointCloud2',
}


@pytest.fixture(scope='session')
def contract_model_file(tmp_path_factory):
    """Path of the tiny contract model (56x70 input, 3 classes)."""
    from contract_model import build_contract_model
    path = tmp_path_factory.mktemp('models') / 'tiny_contract.onnx'
    build_contract_model(str(path))
    return str(path)


@pytest.fixture
def ros_context():
    """Yield an initialised rclpy context, shut down after the test."""
    rclpy = pytest.importorskip('rclpy')
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


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
        for topic, type_name in topics.items():
            self.node.create_subscription(
                getattr(sensor_msgs, type_name), f'/{perception_name}/{topic}',
                lambda msg, topic=topic: self._store(topic, msg), reliable)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.perception_name = perception_name

    def _store(self, topic, msg):
        with self._lock:
            self.received[topic].append(msg)

    def _on_diagnostics(self, msg):
        with self._lock:
            self.diagnostics += [s for s in msg.status if s.name.endswith(self.perception_name)]

    def wait_for(self, predicate, timeout: float = 20.0, what: str = 'condition') -> None:
        """Wait until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return
            time.sleep(0.02)
        pytest.fail(f'timed out after {timeout} s waiting for {what}')

    def wait_connected(self, node, timeout: float = 20.0) -> None:
        """Wait until the perception node sees our subscriptions and we see its inputs."""
        def connected():
            return (self.frames.subscriber_count() > 0 and all(
                node._outputs[topic].get_subscription_count() > 0
                for topic in self.received if topic in node._outputs))
        self.wait_for(connected, timeout, 'DDS discovery between the test and the node')

    def latest_drops(self) -> dict:
        """Return the drop counters of the newest diagnostics status (empty if none yet)."""
        from vd_ros.diagnostics import status_values
        if not self.diagnostics:
            return {}
        values = status_values(self.diagnostics[-1])
        return {key[len('drops.'):]: int(value) for key, value in values.items()
                if key.startswith('drops.')}


@pytest.fixture
def perception(ros_context, contract_model_file):
    """Return a factory that starts the node (in-process) and a harness in one executor.

    Call ``perception(topics=..., **parameters)`` (``a__b`` stands for parameter ``a.b``;
    ``topics`` are the outputs the harness subscribes to); returns ``(node, harness)``. Both
    are destroyed after the test.
    """
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from vd_ros.perception_node import PerceptionNode

    started = []

    def start(topics=OUTPUT_TOPICS, **parameters):
        parameters = {'model_path': contract_model_file, 'providers': ['cpu'],
                      'qos': 'reliable', 'diagnostics_period_s': 0.2, **parameters}
        name = f'vd_perception_{len(started)}'
        node = PerceptionNode(name, context=ros_context, parameter_overrides=[
            Parameter(key.replace('__', '.'), value=value) for key, value in parameters.items()])
        harness = Harness(ros_context, name, topics)
        executor = MultiThreadedExecutor(num_threads=2, context=ros_context)
        executor.add_node(node)
        executor.add_node(harness.node)
        thread = threading.Thread(target=executor.spin, daemon=True)
        thread.start()
        started.append((node, harness, executor, thread))
        harness.wait_connected(node)
        return node, harness

    yield start
    for node, harness, executor, thread in started:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        harness.node.destroy_node()
        thread.join(timeout=5.0)
