"""vd_ros.qos: the two input QoS profiles by name; the node does not load the replay CLI."""

import subprocess
import sys

import pytest
from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

from vd_ros.qos import qos_profile


def test_sensor_data_is_best_effort_volatile_and_reliable_keeps_five():
    sensor = qos_profile('sensor_data')
    assert sensor.reliability == ReliabilityPolicy.BEST_EFFORT
    assert sensor.durability == DurabilityPolicy.VOLATILE
    reliable = qos_profile('reliable')
    assert reliable.reliability == ReliabilityPolicy.RELIABLE
    assert reliable.history == HistoryPolicy.KEEP_LAST and reliable.depth == 5


@pytest.mark.parametrize('name', ['best_effort', 'Reliable', ''])
def test_another_name_is_refused_with_the_two_known_ones(name):
    with pytest.raises(ValueError, match="qos must be 'sensor_data' or 'reliable'"):
        qos_profile(name)


def test_the_node_does_not_load_the_replay_cli():
    code = 'import sys, vd_ros.perception_node; print(sorted(sys.modules).count("vd_ros.replay"))'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '0'
