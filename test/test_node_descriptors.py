"""~/descriptors over real DDS: the model's descriptors output with the intrinsics of its grid.

The tiny model's descriptors are its features upsampled 4x (nearest) and L2-normalised, so the
published image must hold unit vectors equal to the normalised features of each patch, and the
camera_info must be the camera's intrinsics scaled to the 4x finer grid of the model input.
"""

import os

from contract_model import build_contract_model, tiny_contract
import numpy as np
import pytest
from std_msgs.msg import Header

from vd_ros.image_codec import image_to_array
from vd_ros.replay import frame_messages, load_frames

FRAME_ID = 'kitchen_rgb_optical_frame'
TOPICS = {'descriptors': 'Image', 'descriptors/camera_info': 'CameraInfo',
          'descriptors/pca': 'Image', 'features': 'Image'}


@pytest.fixture(scope='module')
def kitchen_frame(shared_data):
    """One real 7-Scenes frame (640x480)."""
    frame, = load_frames(os.path.join(shared_data, '7scenes_redkitchen'), start=40, count=1)
    return frame


@pytest.mark.ros
def test_descriptors_are_unit_vectors_on_the_4x_grid_with_its_intrinsics(
        perception, kitchen_frame, tmp_path):
    path = tmp_path / 'descriptors.onnx'
    contract = tiny_contract(height=42, width=56, descriptors=True)  # 3 x 4 patches, 4:3
    build_contract_model(str(path), contract)
    node, harness = perception(topics=TOPICS, model_path=str(path))
    assert node.contract.contract_version == 4
    rgb_msg, depth_msg, info_msg = frame_messages(kitchen_frame, Header(frame_id=FRAME_ID))
    harness.frames.publish(rgb_msg, depth_msg, info_msg)
    harness.wait_for(lambda: all(harness.received.values()), what='descriptors and features')
    msg = harness.received['descriptors'][0]
    assert msg.header.stamp == rgb_msg.header.stamp and msg.header.frame_id == FRAME_ID
    assert msg.encoding == '32FC6'
    descriptors = image_to_array(msg)  # (h', w', D)
    assert descriptors.shape == (12, 16, 6)
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=2), 1.0, rtol=1e-5)
    features = image_to_array(harness.received['features'][0])  # (3, 4, D)
    unit = features / np.linalg.norm(features, axis=2, keepdims=True)
    np.testing.assert_allclose(descriptors[::4, ::4], unit, rtol=1e-4, atol=1e-5)
    info = harness.received['descriptors/camera_info'][0]
    assert (info.height, info.width) == (12, 16)
    scale = 16 / 640  # camera 640 px wide -> 56 px model input (no padding) -> 16 cells
    k = np.array(info_msg.k).reshape(3, 3)
    np.testing.assert_allclose(info.k[0], k[0, 0] * scale, rtol=1e-6)
    np.testing.assert_allclose(info.k[2], (k[0, 2] + 0.5) * scale - 0.5, rtol=1e-6)
    pca = harness.received['descriptors/pca'][0]
    assert pca.encoding == 'rgb8' and pca.header.stamp == rgb_msg.header.stamp
    colours = image_to_array(pca)  # at the model input's resolution, one colour per cell
    assert colours.shape == (42, 56, 3) and len(np.unique(colours.reshape(-1, 3), axis=0)) > 1


@pytest.mark.ros
def test_a_model_without_descriptors_gets_no_descriptor_topic(perception, tmp_path):
    path = tmp_path / 'plain.onnx'
    build_contract_model(str(path), tiny_contract())
    node, _ = perception(topics={'features': 'Image'}, model_path=str(path))
    assert 'descriptors' not in node._outputs and 'features' in node._outputs


def test_a_swap_that_adds_or_drops_descriptors_is_refused():
    from types import SimpleNamespace

    from vd_ros.model_reload import _configured_difference
    plain, with_descriptors = tiny_contract(), tiny_contract(descriptors=True)
    running = SimpleNamespace(output_names=plain.outputs, contract=plain)
    swapped = SimpleNamespace(output_names=with_descriptors.outputs, contract=with_descriptors)
    assert _configured_difference(running, swapped) == 'adds the descriptors output'
    assert _configured_difference(swapped, running) == 'lacks the descriptors output'
    assert _configured_difference(swapped, swapped) == ''
