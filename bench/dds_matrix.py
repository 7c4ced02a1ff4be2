"""``python -m bench.dds_matrix``: what the node receives from every common Fast DDS set-up.

Each row of :data:`ROWS` starts the node (its own process, ``config/vd_ros.yaml``, the shipped
model unless ``--model``) and a camera (``vd_ros_replay`` in another process: real 7-Scenes
640x480 rgb8 + 16UC1 + camera_info) each with its own Fast DDS environment, the camera
publishing best effort or reliable and the node subscribing with ``qos: sensor_data`` or
``reliable``. The node's own ``/diagnostics`` say what arrived: ``received.<input>`` per stream,
``pairs_received``, and the input delay (stamp to pair) p50/p99 of the last 300 pairs. The
node's ``~/depth`` is subscribed, so the model runs as on a robot. The node's log is searched
for the warnings of :mod:`vd_ros.input_watch`.

``expect`` is what the README promises for the row: ``intact`` (at least 95 % of the frames
sent reach the node as pairs and on every stream), ``lossy`` (the sender's 512 KB
shared-memory segment: images are lost best effort, and reliable too on a busy machine, and
the node warns),
``unmatched`` (a best-effort camera and ``qos: reliable`` do not match: nothing arrives, and
the node warns). ``make test`` runs every row for a few seconds (test/test_dds_matrix.py).

Usage: python -m bench.dds_matrix [--seconds 20] [--rate 30] [--model PATH] [--rows 0,3]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import NamedTuple

from bench.ros_session import (bench_source, NODE_NAME, ROOT, start_node, start_spinning,
                               stop_node, stop_spinning)
from bench.soak import load_average, SHIPPED_MODEL

from vd_ros.dds_transport import BUILTIN_VARIABLE, PROFILE_PATH, PROFILE_VARIABLE

INTACT_FRACTION = 0.95
# A robot's own profile: a larger shared-memory segment and UDPv4, under its own names.
USER_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<profiles xmlns="http://www.eprosima.com">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>robot_shm</transport_id>
      <type>SHM</type>
      <segment_size>8388608</segment_size>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>robot_udp</transport_id>
      <type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="robot" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>robot_shm</transport_id>
        <transport_id>robot_udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""
USER = 'user profile'
# Set-up name -> the Fast DDS variables of a process (everything else unset).
SETUPS = {
    'Fast DDS defaults': {BUILTIN_VARIABLE: 'DEFAULT'},
    'LARGE_DATA': {BUILTIN_VARIABLE: 'LARGE_DATA'},
    'vd_ros profile': {PROFILE_VARIABLE: PROFILE_PATH},
    'vd_ros defaults': {},  # neither variable: vd_ros gives itself its profile
    USER: {PROFILE_VARIABLE: None},  # the file written by :func:`user_profile`
}
# What the node logs for each expected failure (vd_ros.input_watch).
WARNINGS = {'lossy': 'images are lost on the way', 'unmatched': 'not matched'}


class Row(NamedTuple):
    """One camera set-up against one node set-up.

    Attributes:
        sender: The camera's set-up (a key of :data:`SETUPS`).
        node: The node's set-up.
        publisher: The camera's QoS: ``sensor_data`` (best effort) or ``reliable``.
        qos: The node's ``qos`` parameter.
        expect: ``intact``, ``lossy`` or ``unmatched`` (see the module docstring).
    """

    sender: str
    node: str
    publisher: str
    qos: str
    expect: str


ROWS = (
    Row('Fast DDS defaults', 'vd_ros defaults', 'sensor_data', 'sensor_data', 'lossy'),
    Row('Fast DDS defaults', 'vd_ros defaults', 'reliable', 'sensor_data', 'lossy'),
    Row('Fast DDS defaults', 'vd_ros defaults', 'reliable', 'reliable', 'lossy'),
    Row('LARGE_DATA', 'LARGE_DATA', 'sensor_data', 'sensor_data', 'lossy'),
    Row('LARGE_DATA', 'LARGE_DATA', 'reliable', 'reliable', 'lossy'),
    Row('LARGE_DATA', 'vd_ros defaults', 'sensor_data', 'sensor_data', 'lossy'),
    Row('LARGE_DATA', 'vd_ros defaults', 'reliable', 'sensor_data', 'lossy'),
    Row('LARGE_DATA', 'vd_ros defaults', 'reliable', 'reliable', 'lossy'),
    Row('vd_ros profile', 'vd_ros defaults', 'sensor_data', 'sensor_data', 'intact'),
    Row('vd_ros profile', 'vd_ros defaults', 'sensor_data', 'reliable', 'unmatched'),
    Row('vd_ros profile', 'vd_ros defaults', 'reliable', 'sensor_data', 'intact'),
    Row('vd_ros profile', 'vd_ros defaults', 'reliable', 'reliable', 'intact'),
    Row(USER, USER, 'sensor_data', 'sensor_data', 'intact'),
    Row(USER, USER, 'reliable', 'reliable', 'intact'),
)


def user_profile(folder: str) -> str:
    """Write :data:`USER_PROFILE` into ``folder``; return its path."""
    path = os.path.join(folder, 'robot_fastdds.xml')
    with open(path, 'w') as stream:
        stream.write(USER_PROFILE)
    return path


def environment(setup: str, user_file: str) -> dict:
    """Return this process's environment with the Fast DDS variables of ``setup`` only."""
    env = {key: value for key, value in os.environ.items()
           if key not in (PROFILE_VARIABLE, BUILTIN_VARIABLE)}
    for key, value in SETUPS[setup].items():
        env[key] = user_file if value is None else value
    return env


class DiagnosticsListener:
    """An rclpy node that keeps the node's latest ``/diagnostics`` values.

    With ``subscribe_depth`` it also takes the node's ``~/depth`` (serialized, not read), so
    the node computes its outputs as it would for a robot.
    """

    def __init__(self, subscribe_depth: bool, context=None):
        """Create the node (in ``context``, default rclpy's) and spin it in a thread."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import Image

        from vd_ros.diagnostics import status_values
        from vd_ros.qos import qos_profile

        self.node = Node('vd_ros_dds_matrix', context=context)
        self.values, self._status_values = {}, status_values
        self._lock = threading.Lock()
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._store, 10)
        if subscribe_depth:
            self.node.create_subscription(Image, f'/{NODE_NAME}/depth', lambda msg: None,
                                          qos_profile('reliable'), raw=True)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        self._spinner = start_spinning(self._executor)

    def _store(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith(NODE_NAME):
                with self._lock:
                    self.values = self._status_values(status)

    def latest(self) -> dict:
        """Return the latest values (empty before the first status)."""
        with self._lock:
            return dict(self.values)

    def clear(self) -> None:
        """Forget the values (before the next row's node starts)."""
        with self._lock:
            self.values = {}

    def close(self) -> None:
        """Stop spinning (the spin thread ended) and destroy the node."""
        stop_spinning(self._executor, self._spinner)
        self.node.destroy_node()


def run_row(row: Row, listener: DiagnosticsListener, model: str, seconds: float, rate: float,
            folder: str, user_file: str) -> dict:
    """Run one row; return what the node counted, and what it warned.

    Raises:
        RuntimeError: When the node does not come up or the camera fails.
    """
    name = re.sub(r'[^a-z0-9]+', '_', '-'.join(row[:4]).lower())
    log_path = os.path.join(folder, f'node_{name}.log')
    listener.clear()
    node = start_node(model, ['cpu'], log_path, {'qos': row.qos, 'diagnostics_period_s': 0.5},
                      env=environment(row.node, user_file))
    try:
        deadline = time.monotonic() + 60.0
        while not listener.latest():  # configured and active: the first diagnostics came
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'the node did not come up (log {log_path})')
            time.sleep(0.1)
        folder_frames, step = bench_source()
        loops = max(1, int(round(seconds * rate / 30)))
        camera = subprocess.run(
            [sys.executable, '-m', 'vd_ros.replay', '--source', folder_frames, '--step',
             str(step), '--count', '30', '--rate', str(rate), '--loops', str(loops), '--qos',
             row.publisher, '--wait-subscribers', '5' if row.expect == 'unmatched' else '20'],
            cwd=ROOT, env=environment(row.sender, user_file), capture_output=True, text=True,
            timeout=seconds + 120)
        published = re.search(r'published (\d+) frames', camera.stderr)
        if camera.returncode != 0 or not published:
            raise RuntimeError(f'the camera failed: {camera.stderr[-2000:]}')
        time.sleep(1.5)  # the last frames, then two diagnostics periods
        values = listener.latest()
    finally:
        exit_code = stop_node(node)
    with open(log_path) as stream:
        log = stream.read()
    sent = int(published.group(1))
    received = {key: int(values.get(f'received.{key}', 0))
                for key in ('rgb', 'depth', 'camera_info')}
    pairs = int(values.get('pairs_received', 0))
    delivered = min(pairs, *received.values()) / sent
    warnings = [line.split(']: ', 1)[-1] for line in log.splitlines()
                if '[WARN]' in line and (any(text in line for text in WARNINGS.values()) or
                                         'no message for' in line)]
    transport = next((line.split(']: ', 1)[-1] for line in log.splitlines()
                      if 'Fast DDS:' in line), '')
    return {'row': row._asdict(), 'frames_sent': sent, 'received': received, 'pairs': pairs,
            'delivered': round(delivered, 4), 'intact': delivered >= INTACT_FRACTION,
            'input_delay_p50_ms': float(values.get('input_delay_p50_ms', 'nan')),
            'input_delay_p99_ms': float(values.get('input_delay_p99_ms', 'nan')),
            'warnings': warnings, 'node_transport': transport, 'node_exit_code': exit_code,
            'log': log_path}


def meets_expectation(result: dict) -> bool:
    """Return True when a row did what the README promises (see the module docstring).

    A ``lossy`` row may deliver everything on a lucky run; it must never lose silently.
    """
    expect = result['row']['expect']
    if expect == 'intact':
        return result['intact']
    warned = any(WARNINGS[expect] in line for line in result['warnings'])
    if expect == 'unmatched':
        return result['pairs'] == 0 and warned
    return result['intact'] or warned


def delay(result: dict) -> str:
    """Return the input delay p50 / p99 of a row in ms ('-' without pairs)."""
    if not result['pairs']:
        return '-'
    return f'{result["input_delay_p50_ms"]:.1f} / {result["input_delay_p99_ms"]:.1f}'


def table(results: list) -> str:
    """Return the rows as a markdown table."""
    lines = ['| camera | node | camera QoS | node `qos` | sent | rgb / depth / info received '
             '| pairs | delivered | input delay p50 / p99 ms | node warned | as expected |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for result in results:
        row, received = result['row'], result['received']
        warned = '; '.join(sorted({text for text in WARNINGS.values()
                                   if any(text in line for line in result['warnings'])}))
        lines.append(
            f'| {row["sender"]} | {row["node"]} | '
            f'{"reliable" if row["publisher"] == "reliable" else "best effort"} | '
            f'{row["qos"]} | {result["frames_sent"]} | {received["rgb"]} / {received["depth"]}'
            f' / {received["camera_info"]} | {result["pairs"]} | '
            f'{100 * result["delivered"]:.1f} % | {delay(result)} | {warned or "-"} | '
            f'{row["expect"]}: {"yes" if meets_expectation(result) else "NO"} |')
    return '\n'.join(lines)


def main():
    """Run the rows and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--model', default=SHIPPED_MODEL)
    parser.add_argument('--rows', help='comma-separated row numbers (default all)')
    parser.add_argument('--out', default=None, help='folder for logs and dds_matrix.json')
    args = parser.parse_args()
    import rclpy

    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 200))
    folder = args.out or tempfile.mkdtemp(prefix='vd_ros_dds_matrix_')
    os.makedirs(folder, exist_ok=True)
    user_file = user_profile(folder)
    rows = ([ROWS[int(i)] for i in args.rows.split(',')] if args.rows else list(ROWS))
    print(f'{len(rows)} rows, {args.seconds:g} s at {args.rate:g} Hz each, model {args.model}; '
          f'load {load_average()}', flush=True)
    rclpy.init()
    listener = DiagnosticsListener(subscribe_depth=True)
    results = []
    try:
        for row in rows:
            result = run_row(row, listener, args.model, args.seconds, args.rate, folder,
                             user_file)
            results.append(result)
            print(f'{row}: delivered {100 * result["delivered"]:.1f} %, received '
                  f'{result["received"]}, pairs {result["pairs"]}, warnings '
                  f'{len(result["warnings"])}; load {load_average()}', flush=True)
    finally:
        listener.close()
        rclpy.try_shutdown()
    with open(os.path.join(folder, 'dds_matrix.json'), 'w') as stream:
        json.dump(results, stream, indent=2)
    print(table(results))
    print(f'load {load_average()}; logs in {folder}')
    raise SystemExit(0 if all(meets_expectation(r) for r in results) else 1)


if __name__ == '__main__':
    main()
