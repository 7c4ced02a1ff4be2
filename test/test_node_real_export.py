"""The two halves together: a model exported by training/export_onnx.py, run by the node.

The node tests use a hand-made contract model; this one checks that a real Vanishing Depth
export (tiny ViT, YCB-Video head) loads in the node and that what the node publishes over DDS
equals eager PyTorch on the same frame.
"""

import os

import numpy as np
import pytest
from std_msgs.msg import Header

from vd_ros.core.postprocess import labels_from_logits
from vd_ros.core.preprocess import prepare_inputs
from vd_ros.image_codec import image_to_array
from vd_ros.replay import frame_messages, load_frames

torch = pytest.importorskip('torch')

TOPICS = {'segmentation': 'Image', 'depth': 'Image', 'features': 'Image'}


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """Export a tiny random-init VD model with a linear YCB-Video head to ONNX."""
    from training.data.label_layouts import get_layout
    from training.export.exporter import export_onnx
    from training.models import build_model
    from training.models.heads import build_seg_head

    torch.manual_seed(0)
    model = build_model({'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}}).eval()
    class_names = get_layout('ycbv').class_names
    head = build_seg_head('linear', model.feature_dim, len(class_names)).eval()
    path = str(tmp_path_factory.mktemp('export') / 'tiny_vd.onnx')
    export_onnx(model, head, path, input_size=(112, 154), class_names=class_names)
    return path, model, head


@pytest.mark.ros
def test_node_outputs_equal_eager_torch_on_a_real_frame(perception, exported, shared_data):
    path, model, head = exported
    frame, = load_frames(os.path.join(shared_data, '7scenes_redkitchen'), start=200, count=1)
    node, harness = perception(topics=TOPICS, model_path=path)
    rgb_msg, depth_msg, info_msg = frame_messages(frame, Header(frame_id='cam'))
    harness.frames.publish(rgb_msg, depth_msg, info_msg)
    harness.wait_for(lambda: all(harness.received.values()), what='the three outputs')
    assert node.contract.trained is False and len(node.contract.class_names) == 22

    measured = frame.depth_m
    valid = (measured >= 0.1) & (measured <= 10.0)  # the node's default depth limits
    rgb_in, pde, letterbox = prepare_inputs(frame.rgb, np.where(valid, measured, 0),
                                            node.contract)
    with torch.no_grad():
        rgb, code = torch.from_numpy(rgb_in), torch.from_numpy(pde)
        features = model(rgb, code)['features'][0].numpy()  # (D, h, w)
        logits = head(model.encode(rgb, code).maps)[0].numpy()  # (K, h, w)

    published = image_to_array(harness.received['features'][0])  # (h, w, D)
    assert published.shape == features.transpose(1, 2, 0).shape
    scale = np.abs(features).max()
    assert np.abs(published - features.transpose(1, 2, 0)).max() <= 1e-4 * scale + 1e-5

    labels = image_to_array(harness.received['segmentation'][0])
    expected = labels_from_logits(logits, letterbox)
    # ORT and torch logits differ by float rounding: argmax may flip where two classes tie.
    assert (labels == expected).mean() > 0.999
    depth = image_to_array(harness.received['depth'][0])
    np.testing.assert_array_equal(depth[valid], measured[valid])
    assert np.isfinite(depth).mean() > 0.99
