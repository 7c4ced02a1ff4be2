"""The perception node end to end over real DDS: real 7-Scenes frames in, every output checked.

Expected values come from independent facts: the measured depth of the frame (completed depth
must equal it on valid pixels), a least-squares scale fitted here by hand for the holes (global
alignment; local alignment is checked against ``vd_ros.core.depth_alignment``), the
tiny model's features computed by ONNX Runtime directly, the camera model for the scaled
intrinsics and the back-projected points.
"""

import os

from contract_model import build_contract_model, COMPLETED_FACTOR, depth_of, tiny_contract
import numpy as np
import pytest
from std_msgs.msg import Header

from vd_ros.core.depth_alignment import align_depth
from vd_ros.core.preprocess import prepare_inputs
from vd_ros.diagnostics import status_values
from vd_ros.image_codec import image_to_array
from vd_ros.latest_mailbox import LatestMailbox
from vd_ros.replay import frame_messages, load_frames

FRAME_ID = 'kitchen_rgb_optical_frame'


@pytest.fixture(scope='module')
def kitchen_frame(shared_data):
    """One real 7-Scenes frame (640x480 RGB, Kinect depth in metres, K with fx = 585)."""
    frame, = load_frames(os.path.join(shared_data, '7scenes_redkitchen'), start=40, count=1)
    return frame


def stamp_of(msg):
    return msg.header.stamp.sec, msg.header.stamp.nanosec


@pytest.mark.ros
def test_every_output_arrives_with_input_header_and_right_values(perception, kitchen_frame):
    node, harness = perception(outputs__points=True, points__stride=4,
                               depth__alignment='global')
    rgb_msg, depth_msg, info_msg = frame_messages(kitchen_frame, Header(frame_id=FRAME_ID))
    harness.frames.publish(rgb_msg, depth_msg, info_msg)
    harness.wait_for(lambda: all(harness.received.values()), what='all eight outputs')
    out = {topic: msgs[0] for topic, msgs in harness.received.items()}
    for topic, msg in out.items():
        assert stamp_of(msg) == stamp_of(rgb_msg), topic
        assert msg.header.frame_id == FRAME_ID, topic

    contract = node.contract
    measured = kitchen_frame.depth_m  # what the node decodes from the 16UC1 message
    labels = image_to_array(out['segmentation'])
    assert out['segmentation'].encoding == 'mono8' and labels.shape == (480, 640)
    assert labels.max() < len(contract.class_names)
    colour = image_to_array(out['segmentation/color'])
    assert out['segmentation/color'].encoding == 'rgb8' and colour.shape == (480, 640, 3)
    np.testing.assert_array_equal(colour[labels == 0], kitchen_frame.rgb[labels == 0])

    depth = image_to_array(out['depth'])
    assert out['depth'].encoding == '32FC1' and depth.shape == (480, 640)
    valid = (measured >= 0.1) & (measured <= 10.0)
    assert 0.5 < valid.mean() < 1.0  # the frame has holes to fill
    np.testing.assert_array_equal(depth[valid], measured[valid])
    # Holes: the model's depth (a known function of the RGB input), scaled by the least-squares
    # factor between prediction and measurement on the valid pixels.
    rgb_in, _, letterbox = prepare_inputs(kitchen_frame.rgb, measured, contract)
    predicted = letterbox.restore(depth_of(rgb_in)[0, 0], 'linear')
    p, m = predicted[valid], measured[valid]
    scale = np.dot(p, m) / np.dot(p, p)
    holes = ~valid & np.isfinite(depth)
    assert holes.sum() == (~valid).sum()  # every hole got a value in range here
    np.testing.assert_allclose(depth[holes], scale * predicted[holes], rtol=1e-4)
    assert out['depth/camera_info'].k.tolist() == info_msg.k.tolist()

    features = image_to_array(out['features'])
    assert out['features'].encoding == '32FC6' and features.shape == (4, 5, 6)
    rgb_in, pde, _ = prepare_inputs(kitchen_frame.rgb, np.where(valid, measured, 0), contract)
    direct = node.model.run(rgb_in, pde, ['features'])['features'][0]  # (D, h, w)
    np.testing.assert_allclose(features, direct.transpose(1, 2, 0), rtol=1e-5, atol=1e-6)
    grid_info = out['features/camera_info']
    assert (grid_info.height, grid_info.width) == (4, 5)
    # 640x480 letterboxed to 70x52 (+2 rows of padding on top) in 70x56, then 14 px patches.
    fx, cx, cy = 585.0, 320.0, 240.0
    assert grid_info.k[0] == pytest.approx(fx * 70 / 640 / 14)
    assert grid_info.k[2] == pytest.approx(((cx + 0.5) * 70 / 640) / 14 - 0.5)
    assert grid_info.k[5] == pytest.approx(((cy + 0.5) * 52 / 480 + 2) / 14 - 0.5)
    # The PCA at the model input's content resolution (one colour per patch, no padding).
    pca = image_to_array(out['features/pca'])
    assert out['features/pca'].encoding == 'rgb8' and pca.shape == (52, 70, 3)
    assert (pca[:12, :14] == pca[0, 0]).all()  # the first patch: rows 2-15 of the input

    cloud = out['points']
    points = np.frombuffer(bytes(cloud.data), dtype=np.float32).reshape(-1, 4)[:, :3]
    assert cloud.width == np.isfinite(depth[::4, ::4]).sum() == len(points)
    v, u = 0, 0  # the first pixel of the strided grid, valid in this frame's completed depth
    z = depth[v, u]
    np.testing.assert_allclose(points[0], [(u - cx) * z / fx, (v - cy) * z / fx, z], rtol=1e-5)

    harness.wait_for(lambda: harness.diagnostics and int(status_values(
        harness.diagnostics[-1])['frames_processed']) >= 1, what='diagnostics with a frame')
    values = status_values(harness.diagnostics[-1])
    assert values['active_provider'] == 'CPUExecutionProvider'
    assert sum(harness.latest_drops().values()) == 0


@pytest.mark.ros
def test_outputs_without_subscribers_are_not_computed(perception, kitchen_frame):
    node, harness = perception(topics={'depth': 'Image'})
    messages = frame_messages(kitchen_frame, Header(frame_id=FRAME_ID))
    harness.frames.publish(*messages)
    harness.wait_for(lambda: harness.received['depth'], what='the depth output')
    assert node.last_computed == ['depth']
    # Only the depth stages ran: no labels, overlay or feature products were made.
    stages = {key.rsplit('_p', 1)[0] for key in node.stages.snapshot()}
    assert stages == {'stage_decode', 'stage_prepare_inputs', 'stage_model', 'stage_depth',
                      'stage_depth_alignment', 'stage_process', 'stage_non_model',
                      'stage_non_model_cpu'}


@pytest.mark.ros
def test_local_alignment_is_the_default_and_keeps_measured_depth(perception, kitchen_frame):
    node, harness = perception(topics={'depth': 'Image'})
    assert node.parameters.values['depth.alignment'] == 'local'
    harness.frames.publish(*frame_messages(kitchen_frame, Header(frame_id=FRAME_ID)))
    harness.wait_for(lambda: harness.received['depth'], what='the depth output')
    depth = image_to_array(harness.received['depth'][0])
    measured = kitchen_frame.depth_m
    valid = (measured >= 0.1) & (measured <= 10.0)
    np.testing.assert_array_equal(depth[valid], measured[valid])
    rgb_in, _, letterbox = prepare_inputs(kitchen_frame.rgb, measured, node.contract)
    predicted = letterbox.restore(depth_of(rgb_in)[0, 0], 'linear')
    expected, _, _ = align_depth(predicted, np.where(valid, measured, 0), alignment='local')
    global_fill, _, _ = align_depth(predicted, np.where(valid, measured, 0), alignment='global')
    holes = ~valid
    np.testing.assert_allclose(depth[holes], expected[holes], rtol=1e-5)
    # The tiny model's depth is not the scene's: local alignment changes the holes.
    assert np.abs(expected[holes] - global_fill[holes]).mean() > 0.05


@pytest.mark.ros
@pytest.mark.parametrize('alignment', ['local', 'global'])
def test_a_completed_depth_output_is_aligned_locally_or_kept_as_predicted(
        perception, kitchen_frame, tmp_path, alignment):
    path = tmp_path / 'completion_head.onnx'
    build_contract_model(str(path), tiny_contract(completed_depth=True))
    node, harness = perception(topics={'depth': 'Image'}, model_path=str(path),
                               depth__alignment=alignment)
    assert node.contract.contract_version == 2
    harness.frames.publish(*frame_messages(kitchen_frame, Header(frame_id=FRAME_ID)))
    harness.wait_for(lambda: harness.received['depth'], what='the depth output')
    assert node.last_computed == ['completed_depth']
    depth = image_to_array(harness.received['depth'][0])
    measured = kitchen_frame.depth_m
    valid = (measured >= 0.1) & (measured <= 10.0)
    np.testing.assert_array_equal(depth[valid], measured[valid])
    # Holes: the head's metric depth (COMPLETED_FACTOR x the tiny depth), locally aligned to the
    # measurement (local) or as predicted (global), NaN outside [depth.min_m, depth.max_m].
    rgb_in, _, letterbox = prepare_inputs(kitchen_frame.rgb, measured, node.contract)
    metric = letterbox.restore(COMPLETED_FACTOR * depth_of(rgb_in)[0, 0], 'linear')
    if alignment == 'local':
        metric, _, _ = align_depth(metric, np.where(valid, measured, 0), alignment='local')
    expected = np.where((metric >= 0.1) & (metric <= 10.0), metric, np.nan)
    np.testing.assert_allclose(depth[~valid], expected[~valid], rtol=1e-5)
    aligned = 'stage_depth_alignment_p50_ms' in node.stages.snapshot()
    assert aligned == (alignment == 'local')


def test_mailbox_keeps_only_the_newest_item():
    box = LatestMailbox()
    assert box.put('a') is False
    assert box.put('b') is True  # 'a' was never taken: dropped
    assert box.take(timeout=0.1) == 'b'
    assert box.take(timeout=0.05) is None
    box.close()
    assert box.closed and box.take() is None
