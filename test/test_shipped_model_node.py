"""The node as a robot runs it: started as the README says, on the shipped models, real frames.

``perception_node --ros-args --params-file config/vd_ros.yaml -p
model_path:=models/vd_cpu_int8.onnx`` (the default; and the float fallback
``models/vd_cpu.onnx``), ``~/points`` enabled too, in its own process; a real 7-Scenes frame
goes in over DDS and every output must come back with sane content: the completed depth equals
the measured depth on every valid pixel and is finite and metric elsewhere, its confidence is 1
there and in [0, 1) on the filled pixels (the files have depth_uncertainty), the segmentation
ids are classes of the model's head, the features are finite, the point cloud's points finite
and in range.
"""

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from ros_harness import Harness, OUTPUT_TOPICS, ROOT
from std_msgs.msg import Header

from vd_ros.dds_transport import PROFILE_PATH
from vd_ros.image_codec import decode_depth, image_to_array
from vd_ros.inference import VDModel
from vd_ros.replay import frame_messages, load_frames

MODELS = {'int8': os.path.join('models', 'vd_cpu_int8.onnx'),  # the default
          'fp32': os.path.join('models', 'vd_cpu.onnx')}  # the documented fallback
NODE = 'vd_perception'
TOPICS = {**OUTPUT_TOPICS, 'depth/confidence': 'Image'}


def cloud_xyz(msg) -> np.ndarray:
    """Return the (N, 3) float32 x, y, z of a PointCloud2 message."""
    offsets = {field.name: field.offset for field in msg.fields}
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(-1, msg.point_step)
    return np.stack([raw[:, offsets[axis]:offsets[axis] + 4].copy().view(np.float32)[:, 0]
                     for axis in 'xyz'], axis=1)


@pytest.fixture(params=sorted(MODELS))
def shipped_node(request, tmp_path):
    """Start the node from the virtual environment's console script; stop it after the test."""
    model = MODELS[request.param]
    executable = os.path.join(os.path.dirname(sys.executable), 'perception_node')
    log = open(tmp_path / 'node.log', 'w')
    process = subprocess.Popen(
        [executable, '--ros-args', '--params-file', 'config/vd_ros.yaml', '-p',
         f'model_path:={model}', '-p', 'outputs.points:=true'],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield process, tmp_path / 'node.log', model
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
    try:
        assert process.wait(timeout=20) == 0, (tmp_path / 'node.log').read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.mark.ros
@pytest.mark.slow
def test_shipped_model_answers_a_real_frame_on_every_output(ros_context, shipped_node,
                                                            shared_data):
    """Check: one real frame in, every output back with sane content (module docstring)."""
    from rclpy.executors import SingleThreadedExecutor

    process, log, model = shipped_node
    frame, = load_frames(os.path.join(shared_data, '7scenes_redkitchen'), start=250, count=1)
    harness = Harness(ros_context, NODE, TOPICS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(harness.node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        harness.wait_for(lambda: process.poll() is None and harness.frames.subscriber_count()
                         and all(s.get_publisher_count() for s in harness._outputs.values()),
                         60.0, 'the node to subscribe and publish every output')
        rgb_msg, depth_msg, info_msg = frame_messages(frame, Header(frame_id='camera'))
        # Best effort in (the README's qos: sensor_data): send again until one went through.
        for _ in range(30):
            harness.frames.publish(rgb_msg, depth_msg, info_msg)
            if harness.poll(lambda: all(harness.received.values()), 2.0):
                break
        harness.wait_for(lambda: all(harness.received.values()), 10.0, 'every output')
    finally:
        executor.shutdown(timeout_sec=2.0)
        harness.node.destroy_node()
    assert set(harness.received) == set(TOPICS)
    stamp = rgb_msg.header.stamp
    outputs = {}
    for topic, messages in harness.received.items():
        match = [m for m in messages if m.header.stamp == stamp]
        assert match, f'{topic}: no output with the frame stamp'
        outputs[topic] = match[0]
    contract = VDModel(os.path.join(ROOT, model), ['cpu']).contract
    height, width = frame.rgb.shape[:2]

    measured = decode_depth(depth_msg)
    valid = (measured >= 0.1) & (measured <= 10.0)  # the parameter file's depth limits
    depth = image_to_array(outputs['depth'])
    assert depth.shape == (height, width) and outputs['depth'].encoding == '32FC1'
    assert valid.mean() > 0.5
    np.testing.assert_array_equal(depth[valid], measured[valid])
    filled = depth[~valid]
    assert np.isfinite(filled).mean() > 0.95  # holes filled, NaN only outside [0.1, 10] m
    assert np.nanmin(filled) >= 0.1 and np.nanmax(filled) <= 10.0

    confidence = image_to_array(outputs['depth/confidence'])
    assert confidence.shape == (height, width) and outputs['depth/confidence'].encoding == '32FC1'
    assert np.isfinite(confidence).all() and confidence.min() >= 0.0
    assert (confidence[valid] == 1.0).all()
    holes = ~valid & np.isfinite(depth)
    # Filled pixels: a real expected error, neither 0 nor everything (exp(-1) = 100 %).
    assert (confidence[holes] < 1.0).mean() > 0.99
    assert 0.5 < np.median(confidence[holes]) < 0.99

    labels = image_to_array(outputs['segmentation'])
    assert labels.shape == (height, width)
    assert labels.max() < len(contract.class_names) == 22
    assert len(np.unique(labels)) >= 2  # a kitchen is not one class
    overlay = image_to_array(outputs['segmentation/color'])
    assert overlay.shape == (height, width, 3)

    features = image_to_array(outputs['features'])
    assert features.shape[2] == contract.feature_dim == 192
    assert np.isfinite(features).all() and features.std() > 0
    info = outputs['features/camera_info']
    assert (info.height, info.width) == features.shape[:2]
    assert outputs['depth/camera_info'].k[0] == pytest.approx(info_msg.k[0])
    assert image_to_array(outputs['features/pca']).shape[2] == 3

    points = cloud_xyz(outputs['points'])
    assert len(points) > 1000 and np.isfinite(points).all()
    assert 0.1 <= points[:, 2].min() and points[:, 2].max() <= 10.0
    # This checkout's node ran (its profile), with the vd_ros profile chosen for it.
    assert f'the vd_ros profile {PROFILE_PATH}' in log.read_text()
