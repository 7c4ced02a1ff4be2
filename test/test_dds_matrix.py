"""The node receives from every common Fast DDS set-up, or says why not (bench.dds_matrix).

Each row runs the node and a camera (``vd_ros_replay``, real 7-Scenes VGA frames) in two
processes with their own Fast DDS environments for 3 s at 30 Hz, and checks the node's own
``/diagnostics`` counts and log: ``intact`` rows deliver at least 95 % of the frames on every
stream, ``lossy`` rows deliver them or the node warns that images are lost (never silently),
the ``unmatched`` row gets nothing and the node warns about the QoS. ``make bench`` measures
the same rows for 20 s with the shipped model (README "DDS transport").
"""

from bench.dds_matrix import (DiagnosticsListener, meets_expectation, ROWS, run_row, USER,
                              user_profile)
import pytest

SECONDS = 3.0
# What the node's first log line says about each set-up: the user's choice is kept.
TRANSPORT_LINES = {'vd_ros defaults': 'the vd_ros profile', 'LARGE_DATA':
                   'FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA as you set it', USER: 'your profile'}


@pytest.fixture(scope='module')
def listener():
    """Yield a /diagnostics listener in its own rclpy context for all rows."""
    rclpy = pytest.importorskip('rclpy')
    context = rclpy.Context()
    rclpy.init(context=context)
    listener = DiagnosticsListener(subscribe_depth=False, context=context)
    yield listener
    listener.close()
    context.try_shutdown()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize('row', ROWS, ids=lambda row: '-'.join(row[:4]).replace(' ', '_'))
def test_node_receives_or_warns(row, listener, contract_model_file, tmp_path, shared_data):
    result = run_row(row, listener, contract_model_file, SECONDS, 30.0, str(tmp_path),
                     user_profile(str(tmp_path)))
    assert result['node_exit_code'] == 0, result['log']
    assert TRANSPORT_LINES[row.node] in result['node_transport'], result['node_transport']
    assert result['frames_sent'] >= 0.9 * SECONDS * 30
    assert meets_expectation(result), result
