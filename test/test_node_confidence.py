"""~/depth/confidence over real DDS: values from the model's depth_uncertainty, the threshold.

The tiny model's uncertainty is ``UNCERTAINTY_SHARE * mean rgb`` times its completed depth, so
the expected confidence of a hole is ``exp(-UNCERTAINTY_SHARE * mean rgb)`` on the model grid,
mapped to the camera, computed here from the prepared input; measured pixels must have
confidence 1.
"""

import math
import os

from contract_model import build_contract_model, tiny_contract, UNCERTAINTY_SHARE
import numpy as np
import pytest
from std_msgs.msg import Header

from vd_ros.core.preprocess import prepare_inputs
from vd_ros.image_codec import image_to_array
from vd_ros.replay import frame_messages, load_frames

FRAME_ID = 'kitchen_rgb_optical_frame'
TOPICS = {'depth': 'Image', 'depth/confidence': 'Image'}
STRIDE = 4


@pytest.fixture(scope='module')
def kitchen_frame(shared_data):
    """One real 7-Scenes frame (640x480, Kinect depth with holes)."""
    frame, = load_frames(os.path.join(shared_data, '7scenes_redkitchen'), start=40, count=1)
    return frame


def expected_confidence(frame, contract) -> np.ndarray:
    """Return the hole confidence the node must publish for the tiny model, camera size."""
    rgb_in, _, letterbox = prepare_inputs(frame.rgb, frame.depth_m, contract)
    relative = UNCERTAINTY_SHARE * rgb_in[0].mean(axis=0)  # (H, W): uncertainty / depth
    return letterbox.restore(np.exp(-relative), 'linear')


@pytest.mark.ros
def test_confidence_has_the_input_header_one_on_measured_and_drops_pixels_below_threshold(
        perception, kitchen_frame, tmp_path):
    path = tmp_path / 'uncertainty.onnx'
    build_contract_model(str(path), tiny_contract(completed_depth=True, depth_uncertainty=True))
    expected = expected_confidence(kitchen_frame, tiny_contract())
    measured = kitchen_frame.depth_m
    valid = (measured >= 0.1) & (measured <= 10.0)
    threshold = float(np.median(expected[~valid]))
    node, harness = perception(topics={**TOPICS, 'points': 'PointCloud2'}, model_path=str(path),
                               depth__alignment='global', depth__min_confidence=threshold,
                               outputs__points=True, points__stride=STRIDE)
    assert node.contract.contract_version == 3
    rgb_msg, depth_msg, info_msg = frame_messages(kitchen_frame, Header(frame_id=FRAME_ID))
    harness.frames.publish(rgb_msg, depth_msg, info_msg)
    harness.wait_for(lambda: all(harness.received.values()), what='depth and its confidence')
    msg = harness.received['depth/confidence'][0]
    assert msg.header.stamp == rgb_msg.header.stamp and msg.header.frame_id == FRAME_ID
    assert msg.encoding == '32FC1'
    confidence = image_to_array(msg)
    assert confidence.shape == measured.shape and np.isfinite(confidence).all()
    np.testing.assert_array_equal(confidence[valid], 1.0)
    np.testing.assert_allclose(confidence[~valid], expected[~valid], rtol=1e-5)
    assert confidence.min() >= math.exp(-UNCERTAINTY_SHARE) - 1e-6
    depth = image_to_array(harness.received['depth'][0])
    np.testing.assert_array_equal(depth[valid], measured[valid])  # never dropped
    dropped = ~valid & (confidence < threshold)
    assert dropped.sum() > 0.3 * (~valid).sum()
    assert np.isnan(depth[dropped]).all()
    assert np.isfinite(depth[~valid & (confidence >= threshold)]).all()
    points = harness.received['points'][0]  # the dropped pixels are not back-projected
    assert points.width * points.height == np.isfinite(depth[::STRIDE, ::STRIDE]).sum()
    assert points.width * points.height < valid[::STRIDE, ::STRIDE].sum() + \
        (~valid[::STRIDE, ::STRIDE]).sum() * 0.7


@pytest.mark.ros
def test_a_model_without_depth_uncertainty_gets_no_confidence_topic_and_says_why(
        perception, kitchen_frame, tmp_path, capfd):
    path = tmp_path / 'completion.onnx'
    build_contract_model(str(path), tiny_contract(completed_depth=True))
    node, harness = perception(topics=TOPICS, model_path=str(path), depth__min_confidence=0.9)
    assert 'depth/confidence' not in node._outputs and 'depth' in node._outputs
    assert 'no depth_uncertainty output (contract v3): no ~/depth/confidence' in \
        capfd.readouterr().err  # rclpy logs to stderr
    harness.frames.publish(*frame_messages(kitchen_frame, Header(frame_id=FRAME_ID)))
    harness.wait_for(lambda: harness.received['depth'], what='the depth output')
    assert node.last_computed == ['completed_depth']
    depth = image_to_array(harness.received['depth'][0])
    holes = kitchen_frame.depth_m == 0
    assert np.isfinite(depth[holes]).mean() > 0.9  # the threshold has nothing to act on
    assert not harness.received['depth/confidence']
