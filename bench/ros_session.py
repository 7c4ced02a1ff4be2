"""Run the perception node as a subprocess and record its outputs (bench and demo).

:func:`start_node` launches ``python -m vd_ros.perception_node`` with the repository's
parameter file; :class:`OutputRecorder` is an rclpy node that publishes frames to it and keeps
what comes back, with the receive time of every message.
"""

import os
import struct
import subprocess
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from vd_ros.diagnostics import status_values
from vd_ros.qos import qos_profile
from vd_ros.replay import FramePublisher, load_frames, SAMPLE_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('VD_ROS_SHARED', os.path.join(ROOT, '..', 'shared'))
NODE_NAME = 'vd_perception'
# Every output of the node (~/points only with outputs.points:=true).
OUTPUT_TOPICS = ('segmentation', 'segmentation/color', 'depth', 'depth/camera_info', 'features',
                 'features/camera_info', 'features/pca', 'points')


def output_type(topic: str):
    """Return the message type of the node's output ``topic``."""
    if topic == 'points':
        return PointCloud2
    return CameraInfo if topic.endswith('camera_info') else Image


def bench_source() -> tuple:
    """Return ``(folder, step)`` of the bench frames.

    Real 7-Scenes VGA frames (every 5th) from ../shared, else the in-repo sample (every frame).
    """
    kitchen = os.path.join(SHARED, 'data', '7scenes_redkitchen')
    return (kitchen, 5) if os.path.isdir(kitchen) else (SAMPLE_DIR, 1)


def bench_frames(count: int = 30) -> list:
    """Return ``count`` frames of :func:`bench_source`."""
    folder, step = bench_source()
    return load_frames(folder, count=count, step=step)


def start_replay(rate: float, loops: int, count: int = 30, log_path: str = None,
                 qos: str = 'reliable') -> subprocess.Popen:
    """Replay ``loops`` passes over ``count`` bench frames at ``rate`` Hz in a new process.

    The camera is its own process, as a driver is on a robot (``vd_ros_replay``; every
    triple is stamped with the time it is published). It waits up to 30 s for a subscriber.
    """
    folder, step = bench_source()
    command = [sys.executable, '-m', 'vd_ros.replay', '--source', folder, '--step', str(step),
               '--count', str(count), '--rate', str(rate), '--loops', str(loops),
               '--qos', qos, '--wait-subscribers', '30']
    return _popen_logged(command, log_path)


def start_node(model_path: str, providers=('cpu',), log_path: str = None,
               parameters: dict = None, env: dict = None) -> subprocess.Popen:
    """Start the perception node with ``config/vd_ros.yaml`` and a model; return the process.

    ``parameters`` adds ``-p name:=value`` overrides (e.g. ``{'outputs.points': 'true'}``;
    a later one wins); ``env`` replaces the environment (default this process's).
    """
    providers_list = '[' + ', '.join(f"'{p}'" for p in providers) + ']'
    command = [sys.executable, '-m', 'vd_ros.perception_node', '--ros-args',
               '--params-file', os.path.join(ROOT, 'config', 'vd_ros.yaml'),
               '-p', f'model_path:={model_path}', '-p', f'providers:={providers_list}',
               '-p', 'qos:=reliable']
    for name, value in (parameters or {}).items():
        command += ['-p', f'{name}:={value}']
    return _popen_logged(command, log_path, start_new_session=True, env=env)


def _popen_logged(command: list, log_path: str = None, **kwargs) -> subprocess.Popen:
    """Start ``command`` in the repository root with stdout and stderr to ``log_path``.

    The parent closes its copy of the log file at once; the child keeps its own.
    """
    if not log_path:
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT, **kwargs)
    with open(log_path, 'w') as output:
        return subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                **kwargs)


def stop_node(process: subprocess.Popen) -> int:
    """Ctrl-C the node and return its exit code."""
    import signal

    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def serialized_stamp(data: bytes) -> tuple:
    """Return (sec, nanosec) of a serialized message that starts with a std_msgs/Header.

    The CDR encapsulation (4 bytes, the second 1 for little endian) comes first, then the
    stamp's int32 sec and uint32 nanosec.
    """
    return struct.unpack_from('<iI' if data[1] == 1 else '>iI', data, 4)


class OutputRecorder(Node):
    """Publishes frames to the node and records its outputs and diagnostics.

    Attributes:
        frames: Publisher of the node's three inputs.
        received: Output topic -> {(sec, nanosec) stamp: (message, receive time in s)}; the
            message is None unless ``keep_messages``. Without ``keep_messages`` the outputs
            arrive serialized and only their header stamp is read: a camera-sized message
            is never deserialized, so the recorder takes little of the CPU it measures.
        diagnostics: Latest key/value dict of the node's diagnostics.
    """

    def __init__(self, topics, keep_messages: bool = True):
        """Subscribe to ``/vd_perception/<topic>`` for every topic (:func:`output_type`)."""
        super().__init__('vd_ros_recorder')
        self.keep_messages = keep_messages
        self.frames = FramePublisher(self, 'reliable')
        self.received = {topic: {} for topic in topics}
        self.diagnostics = {}
        self._lock = threading.Lock()
        for topic in topics:
            self.create_subscription(output_type(topic), f'/{NODE_NAME}/{topic}',
                                     lambda msg, topic=topic: self._store(topic, msg),
                                     qos_profile('reliable'), raw=not keep_messages)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _store(self, topic, msg):
        now = self.get_clock().now().nanoseconds * 1e-9
        if self.keep_messages:
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        else:
            stamp, msg = serialized_stamp(msg), None
        with self._lock:
            self.received[topic][stamp] = (msg, now)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.endswith(NODE_NAME):
                self.diagnostics = status_values(status)

    def complete(self, stamp) -> bool:
        """Return True when every recorded topic has a message with ``stamp``."""
        with self._lock:
            return all(stamp in messages for messages in self.received.values())

    def wait_ready(self, process, timeout: float = 60.0, topics=None) -> None:
        """Wait until the node subscribes to our inputs and publishes to our outputs.

        Args:
            process: The node's process.
            timeout: Seconds to wait.
            topics: The outputs to wait for (default all recorded ones); a model without a
                segmentation head has no segmentation publishers.

        Raises:
            RuntimeError: When the node exits or does not connect in time.
        """
        deadline = time.monotonic() + timeout
        names = [f'/{NODE_NAME}/{topic}' for topic in (self.received if topics is None
                                                       else topics)]
        subscriptions = [s for s in self.subscriptions if s.topic_name in names]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f'the node exited with code {process.returncode}')
            if self.frames.subscriber_count() > 0 and self.frames.info.get_subscription_count(
                    ) > 0 and all(s.get_publisher_count() > 0 for s in subscriptions):
                return
            time.sleep(0.1)
        raise RuntimeError(f'the node did not connect within {timeout} s')


def start_spinning(executor) -> threading.Thread:
    """Spin an rclpy executor in a daemon thread; return the thread."""
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return thread


def stop_spinning(executor, thread: threading.Thread) -> None:
    """Shut the executor down and wait for its spin thread to end.

    A spin thread still inside the executor when the process exits makes it abort
    ("terminate called without an active exception"; 3 of 5 ``bench.dds_matrix`` runs did).
    """
    executor.shutdown(timeout_sec=2.0)
    thread.join(timeout=5.0)


class NodeSession:
    """The node as a subprocess plus a spinning :class:`OutputRecorder`, as a context manager.

    ``with NodeSession(model, providers, log, OUTPUTS) as session:`` initialises rclpy, starts
    both, waits until they are connected and yields the session; on exit it stops the node
    (``session.exit_code``) and shuts rclpy down.

    Attributes:
        recorder: The :class:`OutputRecorder`.
        process: The node's process.
        exit_code: The node's exit status after the ``with`` block, else None.
    """

    def __init__(self, model_path: str, providers, log_path: str, topics,
                 parameters: dict = None, ready_topics=None, timeout: float = 60.0,
                 keep_messages: bool = True):
        """Store what to start; see :func:`start_node` and :class:`OutputRecorder`."""
        self._start = (model_path, providers, log_path, parameters)
        self._topics, self._ready_topics, self._timeout = topics, ready_topics, timeout
        self._keep_messages = keep_messages
        self.recorder = self.process = self.exit_code = None

    def __enter__(self) -> 'NodeSession':
        """Start rclpy, the recorder and the node; wait for the connections."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        rclpy.init()
        self.recorder = OutputRecorder(self._topics, self._keep_messages)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.recorder)
        self._spinner = start_spinning(self._executor)
        self.process = start_node(*self._start)
        try:
            self.recorder.wait_ready(self.process, self._timeout, self._ready_topics)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        """Stop the node (Ctrl-C), the executor and rclpy."""
        import rclpy

        self.exit_code = stop_node(self.process)
        stop_spinning(self._executor, self._spinner)
        self.recorder.destroy_node()
        rclpy.try_shutdown()
