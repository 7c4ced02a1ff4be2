"""The node started the two ways users start it, each fed a real frame over DDS.

* ``launch/vd_ros.launch.py`` from a ``colcon build`` install, run by the real ``launch`` /
  ``launch_ros`` libraries (``shared/tools/ros2_launch.py``): a managed node autostarted to
  active, with a namespace, a node name and remapped inputs; and one left unconfigured;
* the installed console commands ``perception_node --ros-args --params-file
  config/vd_ros.yaml`` and ``vd_ros_replay`` by name, as the README runs them (pip users).
"""

import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ros_harness import Harness
from std_msgs.msg import Header

from vd_ros.image_codec import image_to_array
from vd_ros.replay import frame_messages, FramePublisher, load_frames

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('VD_ROS_SHARED', os.path.join(ROOT, '..', 'shared'))
ROS2_LAUNCH = os.path.join(SHARED, 'tools', 'ros2_launch.py')
BIN = os.path.dirname(sys.executable)


def feed_until_depth(harness, publisher, timeout=90.0):
    """Publish a real frame every 0.5 s until the node's depth output arrives."""
    frame, = load_frames('sample', count=1, scale=0.25)
    messages = frame_messages(frame, Header(frame_id='cam'))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not harness.received['depth']:
        publisher.publish(*messages)
        time.sleep(0.5)
    assert harness.received['depth'], f'no ~/depth output within {timeout} s'
    msg = harness.received['depth'][-1]
    assert (msg.height, msg.width, msg.encoding) == (120, 160, '32FC1')


def stop(process):
    """Ctrl-C the process group; return its exit code and output."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return process.returncode, output


@pytest.fixture
def spinning_harness(ros_context):
    """Return a factory of harnesses for a node name, spun in a background executor."""
    import threading

    from rclpy.executors import SingleThreadedExecutor

    executors = []

    def make(name, rgb, depth, info):
        harness = Harness(ros_context, name, topics={'depth': 'Image'})
        publisher = FramePublisher(harness.node, 'sensor_data', rgb, depth, info)
        executor = SingleThreadedExecutor(context=ros_context)
        executor.add_node(harness.node)
        threading.Thread(target=executor.spin, daemon=True).start()
        executors.append((executor, harness))
        return harness, publisher

    yield make
    for executor, harness in executors:
        executor.shutdown(timeout_sec=2.0)
        harness.node.destroy_node()


@pytest.fixture(scope='module')
def colcon_install(tmp_path_factory):
    """Return the environment of a ``colcon build`` install of the package."""
    if not os.path.isfile(ROS2_LAUNCH):
        pytest.skip(f'{ROS2_LAUNCH} not found (set VD_ROS_SHARED)')
    work = tmp_path_factory.mktemp('colcon')
    env = dict(os.environ, PATH=os.pathsep.join([BIN, os.environ.get('PATH', '')]))
    build = subprocess.run(
        [os.path.join(BIN, 'colcon'), '--log-base', str(work / 'log'), 'build',
         '--base-paths', ROOT, '--build-base', str(work / 'build'),
         '--install-base', str(work / 'install')],
        cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix = work / 'install' / 'vd_ros'
    site, = glob.glob(str(prefix / 'lib' / 'python3*' / 'site-packages'))
    env.update(AMENT_PREFIX_PATH=os.pathsep.join([str(prefix),
                                                  env.get('AMENT_PREFIX_PATH', '')]),
               PYTHONPATH=os.pathsep.join([site, env.get('PYTHONPATH', '')]))
    return env


def launch(env, cwd, *arguments):
    """Start ``ros2 launch vd_ros vd_ros.launch.py ARGUMENTS`` in its own process group."""
    return subprocess.Popen(
        [sys.executable, ROS2_LAUNCH, 'vd_ros', 'vd_ros.launch.py', *arguments],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def lifecycle_state(harness, node: str) -> str:
    """Return the lifecycle state label of ``node`` (fully qualified name)."""
    from lifecycle_msgs.srv import GetState
    return harness.call(GetState, f'{node}/get_state', GetState.Request(), timeout=60,
                        resend_s=5.0).current_state.label


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.colcon
def test_launch_file_autostarts_a_managed_node(tmp_path, contract_model_file, colcon_install,
                                               spinning_harness):
    process = launch(colcon_install, tmp_path, f'model:={contract_model_file}',
                     'namespace:=cam', 'node_name:=perc', "providers:=['cpu']",
                     'rgb_topic:=/test/color', 'depth_topic:=/test/depth',
                     'camera_info_topic:=/test/info')
    try:
        harness, publisher = spinning_harness('cam/perc', '/test/color', '/test/depth',
                                              '/test/info')
        feed_until_depth(harness, publisher)
        assert lifecycle_state(harness, '/cam/perc') == 'active'
    finally:
        code, output = stop(process)
    assert 'active provider CPUExecutionProvider' in output, output[-3000:]
    assert code == 0, output[-3000:]


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.colcon
def test_launch_file_without_autostart_leaves_the_node_to_its_manager(
        tmp_path, contract_model_file, colcon_install, spinning_harness):
    process = launch(colcon_install, tmp_path, f'model:={contract_model_file}',
                     'autostart:=false', "providers:=['cpu']")
    try:
        harness, _ = spinning_harness('vd_perception', 'rgb/image_raw', 'depth/image_raw',
                                      'rgb/camera_info')
        assert lifecycle_state(harness, '/vd_perception') == 'unconfigured'
    finally:
        code, output = stop(process)
    assert 'active provider' not in output, output[-3000:]  # the model was never loaded
    assert code == 0, output[-3000:]


def installed_environment() -> dict:
    """Return the environment of a user who ran ``source .venv/bin/activate``: no PYTHONPATH."""
    env = dict(os.environ, PATH=os.pathsep.join([BIN, os.environ.get('PATH', '')]))
    env.pop('PYTHONPATH', None)
    return env


@pytest.mark.ros
@pytest.mark.slow
def test_installed_console_commands_as_the_readme_runs_them(tmp_path, contract_model_file,
                                                            spinning_harness):
    env = installed_environment()
    for command in ('perception_node', 'vd_ros_replay'):
        assert shutil.which(command, path=env['PATH']) == os.path.join(BIN, command), \
            f'{command} is not installed in {BIN}: run make'
    imported = subprocess.run(
        [sys.executable, '-c', 'import vd_ros.perception_node, vd_ros.replay'], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr[-2000:]  # vd_ros imports from anywhere
    # vd_ros_adapt finds the checkout it was installed from (training/ is not installed).
    adapt = subprocess.run([os.path.join(BIN, 'vd_ros_adapt'), '--help'], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
    assert adapt.returncode == 0, adapt.stderr[-2000:]
    assert '--replay' in adapt.stdout

    node = subprocess.Popen(
        ['perception_node', '--ros-args', '--params-file', 'config/vd_ros.yaml',
         '-p', f'model_path:={contract_model_file}', '-p', "providers:=['cpu']",
         '-p', 'depth.max_m:=2.0'],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    replay = subprocess.Popen(
        ['vd_ros_replay', '--source', 'sample', '--rate', '5', '--scale', '0.25'],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        harness, _ = spinning_harness('vd_perception', 'rgb/image_raw', 'depth/image_raw',
                                      'rgb/camera_info')
        harness.wait_for(lambda: harness.received['depth'], timeout=90,
                         what='~/depth from frames sent by vd_ros_replay')
        depth = image_to_array(harness.received['depth'][-1])
        assert depth.shape == (120, 160)
        # depth.max_m came from the command line on top of the file: nothing beyond 2 m.
        assert np.nanmax(depth) <= 2.0
    finally:
        replay_code, replay_output = stop(replay)
        code, output = stop(node)
    assert 'pairing RGB and depth with' in output, output[-3000:]
    assert code == 0, output[-3000:]
    assert replay_code == 0, replay_output[-3000:]
