"""Bad input over real DDS: the node survives, counts the drop by cause, processes the next frame.

Also: a missing, corrupt or contract-mismatched model stops the node at start with a message
that names the file.
"""

import copy
import json
import os
import subprocess
import sys
import time

from contract_model import build_contract_model, tiny_contract
import numpy as np
import pytest
from rclpy.time import Time
from std_msgs.msg import Header

from vd_ros.core.contract import ContractError
from vd_ros.image_codec import array_to_image
from vd_ros.inference import ModelLoadError
from vd_ros.replay import frame_messages, load_frames

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stamped(messages, stamp):
    """Deep copies of messages, all with ``stamp``."""
    out = [copy.deepcopy(msg) for msg in messages]
    for msg in out:
        msg.header.stamp = stamp
    return out


@pytest.mark.ros
@pytest.mark.slow
def test_every_bad_input_is_dropped_counted_and_the_next_frame_processed(perception):
    node, harness = perception(topics={'depth': 'Image'}, max_input_pixels=160 * 120)
    frame, = load_frames('sample', count=1, scale=0.25)  # real frame, 160x120
    good = frame_messages(frame, Header(frame_id='cam'))
    clock = harness.node.get_clock()
    sent_good = []

    def send_good():
        msgs = stamped(good, clock.now().to_msg())
        harness.frames.publish(*msgs, restamp=False)
        sent_good.append(msgs[0].header.stamp)
        harness.wait_for(lambda: any(m.header.stamp == sent_good[-1]
                                     for m in harness.received['depth']),
                         what='the good frame after a bad one')

    def expect_drop(cause, rgb, depth, info, send_info=True):
        before = harness.latest_drops().get(cause, 0)
        stamp = clock.now().to_msg()
        rgb, depth, info = stamped((rgb, depth, info), stamp)
        if send_info:
            harness.frames.info.publish(info)
        harness.frames.depth.publish(depth)
        harness.frames.rgb.publish(rgb)
        harness.wait_for(lambda: harness.latest_drops().get(cause, 0) > before,
                         what=f'a counted {cause} drop')
        send_good()

    rgb, depth, info = good
    # camera_info never received yet: the very first pair is dropped.
    expect_drop('camera_info_missing', rgb, depth, info, send_info=False)
    # An encoding the node cannot read as colour, and a message whose data is too short.
    expect_drop('bad_encoding', array_to_image(np.zeros((120, 160, 3), np.uint16), 'rgb16',
                                               rgb.header), depth, info)
    short = copy.deepcopy(depth)
    short.data = bytes(depth.data)[:-7]
    expect_drop('bad_encoding', rgb, short, info)
    # More pixels than max_input_pixels (this node: 160 x 120): dropped before decoding.
    big, = load_frames('sample', count=1, scale=0.3)
    expect_drop('oversized', *frame_messages(big, Header(frame_id='cam')))
    # Depth of another size than the colour image.
    expect_drop('size_mismatch', rgb,
                array_to_image(np.full((60, 80), 1000, np.uint16), '16UC1'), info)
    # No valid depth at all: zeros, and a 32FC1 image of NaN and Inf only.
    expect_drop('empty_depth', rgb, array_to_image(np.zeros((120, 160), np.uint16), '16UC1'),
                info)
    nan_inf = np.where(np.arange(120 * 160).reshape(120, 160) % 2, np.nan, np.inf)
    expect_drop('empty_depth', rgb, array_to_image(nan_inf.astype(np.float32), '32FC1'), info)
    # camera_info of another size, and one with a NaN focal length.
    other_size = copy.deepcopy(info)
    other_size.width = 320
    expect_drop('camera_info_mismatch', rgb, depth, other_size)
    nan_k = copy.deepcopy(info)
    nan_k.k[0] = float('nan')
    expect_drop('non_finite', rgb, depth, nan_k)
    # RGB and depth 0.5 s apart never pair; stamped 3 s back, the frame starts a timeline of
    # its own, counted at the first camera frame 1 s (wall clock) after it.
    before = harness.latest_drops().get('unsynced', 0)
    old = Time(nanoseconds=clock.now().nanoseconds - 3 * 10**9)
    harness.frames.info.publish(stamped([info], old.to_msg())[0])
    harness.frames.depth.publish(stamped(
        [depth], Time(nanoseconds=old.nanoseconds + 5 * 10**8).to_msg())[0])
    harness.frames.rgb.publish(stamped([rgb], old.to_msg())[0])
    send_good()
    time.sleep(1.1)
    send_good()
    harness.wait_for(lambda: harness.latest_drops().get('unsynced', 0) == before + 1,
                     what='a counted unsynced drop')
    assert node.stats.snapshot()['frames_processed'] == len(sent_good)


@pytest.mark.ros
def test_missing_corrupt_and_mismatched_models_fail_at_start(ros_context, tmp_path):
    from rclpy.parameter import Parameter

    from vd_ros.perception_node import PerceptionNode

    def start(path):
        return PerceptionNode('vd_perception_bad', context=ros_context, parameter_overrides=[
            Parameter('model_path', value=str(path)), Parameter('providers', value=['cpu'])])

    with pytest.raises(ModelLoadError, match=f'{tmp_path}/absent.onnx: model file not found'):
        start(tmp_path / 'absent.onnx')
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'garbage' * 20)
    with pytest.raises(ModelLoadError, match=f'{corrupt}: ONNX Runtime cannot load'):
        start(corrupt)
    future = tmp_path / 'future.onnx'
    meta = json.loads(tiny_contract().to_json())
    meta['contract_version'] = 5
    build_contract_model(str(future), metadata=json.dumps(meta))
    with pytest.raises(ContractError, match=f'{future}: model contract version 5 found'):
        start(future)
    with pytest.raises(ValueError, match='model_path is empty'):
        start('')
    model = tmp_path / 'model.onnx'
    build_contract_model(str(model))
    with pytest.raises(ValueError, match="depth.alignment must be one of .* got 'affine'"):
        PerceptionNode('vd_perception_bad', context=ros_context, parameter_overrides=[
            Parameter('model_path', value=str(model)), Parameter('providers', value=['cpu']),
            Parameter('depth.alignment', value='affine')])


@pytest.mark.ros
@pytest.mark.parametrize('value, implementation', [
    (False, 'vd_ros.sync'), ('false', 'vd_ros.sync'), (True, 'message_filters'),
    ('TRUE', 'message_filters')])
def test_use_message_filters_takes_a_bool_or_a_string(perception, value, implementation):
    # -p sync.use_message_filters:=false and YAML false both arrive as a BOOL parameter.
    if implementation == 'message_filters':
        pytest.importorskip('message_filters', reason='ROS 2 message_filters not importable')
    node, _ = perception(topics={}, sync__use_message_filters=value)
    assert node.sync_implementation == implementation


@pytest.mark.ros
@pytest.mark.slow
def test_console_entry_point_exits_with_the_file_named(tmp_path):
    missing = tmp_path / 'missing.onnx'
    result = subprocess.run(
        [sys.executable, '-m', 'vd_ros.perception_node', '--ros-args', '-p',
         f'model_path:={missing}'], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert f'cannot start: {missing}: model file not found' in result.stderr
    assert 'Traceback' not in result.stderr  # shutdown must not trip over the half-built node


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize('override, expected', [
    ('sync.slop:=5.0', 'Parameter sync.slop out of range'),
    ('diagnostics_period_s:=1', "expecting type 'DOUBLE'"),
    ('providers:=cpu', "expecting type 'STRING_ARRAY'"),
])
def test_console_entry_point_rejects_a_bad_parameter_cleanly(tmp_path, override, expected):
    model = tmp_path / 'model.onnx'
    build_contract_model(str(model))
    result = subprocess.run(
        [sys.executable, '-m', 'vd_ros.perception_node', '--ros-args', '-p',
         f'model_path:={model}', '-p', override], capture_output=True, text=True, timeout=60,
        cwd=ROOT)
    assert result.returncode == 1
    assert 'cannot start: ' in result.stderr and expected in result.stderr
    assert 'Traceback' not in result.stderr
