"""The package also builds and tests the ROS way: colcon build + colcon test in the venv."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLCON = os.path.join(os.path.dirname(sys.executable), 'colcon')


def colcon(verb, work, timeout, extra=()):
    env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable),
                                                 os.environ.get('PATH', '')]))
    paths = ['--base-paths', ROOT, '--build-base', str(work / 'build'),
             '--install-base', str(work / 'install')]
    command = [COLCON, '--log-base', str(work / 'log'), verb, *paths, *extra]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


@pytest.mark.colcon
@pytest.mark.slow
def test_colcon_build_and_test(tmp_path):
    colcon('build', tmp_path, timeout=300)
    prefix = tmp_path / 'install' / 'vd_ros'
    for relative in ('share/ament_index/resource_index/packages/vd_ros',
                     'share/vd_ros/package.xml', 'lib/vd_ros/perception_node',
                     'lib/vd_ros/vd_ros_replay'):
        assert (prefix / relative).exists(), f'{relative} not installed'
    assert glob.glob(str(prefix / 'lib/python3*/site-packages/vd_ros/core/pde.py'))
    assert not glob.glob(str(prefix / 'lib/python3*/site-packages/training')), \
        'training/ must not be installed'
    # colcon test runs pytest from the package root with setup.cfg's testpaths; the quick
    # unit tests are enough here (the slow and ROS ones already ran in this session).
    output = colcon('test', tmp_path, timeout=600, extra=[
        '--event-handlers', 'console_direct+',
        '--pytest-args', '-m', 'not slow and not ros and not colcon'])
    assert ' passed' in output, output[-2000:]
    results = subprocess.run(
        [COLCON, 'test-result', '--test-result-base', str(tmp_path / 'build')],
        capture_output=True, text=True, timeout=60).stdout
    assert ' 0 errors, 0 failures' in results, results
