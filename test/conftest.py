"""ROS fixtures: a private DDS domain per test run, rclpy contexts, the node and a test harness.

Everything is real: rclpy, Fast DDS on loopback, the perception node and its ONNX Runtime
session. Only the model is tiny (``contract_model.py``) so the tests stay fast.
"""

import os
import threading

import pytest
from ros_harness import Harness, OUTPUT_TOPICS

from vd_ros.dds_transport import use_large_image_transport

# One DDS domain per test run (pid based) so parallel runs of several developers never see each
# other's topics; must be set before any rclpy context is initialised.
os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 200)
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
use_large_image_transport()


@pytest.fixture(scope='session')
def contract_model_file(tmp_path_factory):
    """Path of the tiny contract model (56x70 input, 3 classes)."""
    from contract_model import build_contract_model
    path = tmp_path_factory.mktemp('models') / 'tiny_contract.onnx'
    build_contract_model(str(path))
    return str(path)


@pytest.fixture(scope='session')
def full_model_file(tmp_path_factory):
    """Path of the tiny contract model with every optional output (nodes in contract_model)."""
    from contract_model import build_contract_model, tiny_contract
    path = tmp_path_factory.mktemp('models') / 'full_contract.onnx'
    build_contract_model(str(path), tiny_contract(completed_depth=True, depth_uncertainty=True,
                                                  descriptors=True))
    return str(path)


@pytest.fixture
def ros_context():
    """Yield an initialised rclpy context, shut down after the test."""
    rclpy = pytest.importorskip('rclpy')
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


@pytest.fixture
def perception(ros_context, contract_model_file):
    """Return a factory that starts the node (in-process) and a harness in one executor.

    Call ``perception(topics=..., **parameters)`` (``a__b`` stands for parameter ``a.b``;
    ``topics`` are the outputs the harness subscribes to; ``connect=False`` does not wait for
    the node's inputs and outputs to match, for a node not active yet); returns
    ``(node, harness)``. Both are destroyed after the test.
    """
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from vd_ros.perception_node import PerceptionNode

    started = []

    def start(topics=OUTPUT_TOPICS, connect=True, **parameters):
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
        if connect:
            harness.wait_connected(node)
        return node, harness

    yield start
    for node, harness, executor, thread in started:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        harness.node.destroy_node()
        thread.join(timeout=5.0)
