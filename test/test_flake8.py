"""flake8 with the ament configuration (99 columns, single quotes, google import order).

ament_flake8 runs in a fresh interpreter: flake8 forks worker processes, and forking a pytest
process that already holds rclpy / ONNX Runtime threads can deadlock.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ['vd_ros', 'training', 'test', 'launch', 'bench', 'tools', 'setup.py', 'conftest.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    paths = [os.path.join(ROOT, p) for p in SOURCES if os.path.exists(os.path.join(ROOT, p))]
    result = subprocess.run([sys.executable, '-m', 'ament_flake8.main', *paths],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert 'Checked files' in result.stdout and 'No problems found' in result.stdout
