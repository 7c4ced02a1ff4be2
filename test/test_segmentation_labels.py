"""The latched ``~/segmentation/labels`` topic and the class colours, over real DDS.

Facts: the class names and colours written into the model file, the VOC palette (label 1 =
(128, 0, 0), 2 = (0, 128, 0)) for a model without colours, and the overlay blend
``(rgb + colour) / 2`` at ``segmentation.alpha`` 0.5.
"""

import dataclasses
import json
import os
import threading

from contract_model import build_contract_model, tiny_contract
import numpy as np
import pytest
from std_msgs.msg import Header

from vd_ros.image_codec import image_to_array
from vd_ros.replay import frame_messages, load_frames
from vd_ros.segmentation_labels import labels_json

NAMES = ('background', 'table', 'chair')
COLOURS = ((0, 0, 0), (250, 10, 10), (10, 10, 250))
SEGMENTATION = {'segmentation': 'Image', 'segmentation/color': 'Image'}


def test_labels_json_carries_names_and_colours_or_the_default_palette():
    coloured = dataclasses.replace(tiny_contract(class_names=NAMES), class_colors=COLOURS)
    assert json.loads(labels_json(coloured)) == {'class_names': list(NAMES),
                                                 'colors': [list(c) for c in COLOURS]}
    plain = json.loads(labels_json(tiny_contract(class_names=NAMES)))
    assert plain['colors'] == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]


@pytest.fixture
def coloured_model(tmp_path):
    """Return the path of a tiny contract model whose three classes have colours."""
    path = str(tmp_path / 'coloured.onnx')
    build_contract_model(path, dataclasses.replace(tiny_contract(class_names=NAMES),
                                                   class_colors=COLOURS))
    return path


def subscribe_labels(harness, name):
    """Subscribe late (after the node published) to ``~/segmentation/labels``; return the list."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String
    received, lock = [], threading.Lock()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)

    def store(msg):
        with lock:
            received.append(msg)
    harness.node.create_subscription(String, f'/{name}/segmentation/labels', store, latched)
    return received


@pytest.mark.ros
def test_labels_arrive_latched_and_colour_the_overlay(perception, coloured_model, shared_data):
    node, harness = perception(topics=SEGMENTATION, model_path=coloured_model)
    labels_topic = f'/{harness.perception_name}/segmentation/labels'
    assert node.count_publishers(labels_topic) == 1
    received = subscribe_labels(harness, harness.perception_name)
    harness.wait_for(lambda: received, what='the latched labels message')
    assert json.loads(received[0].data) == {'class_names': list(NAMES),
                                            'colors': [list(c) for c in COLOURS]}

    frame, = load_frames(os.path.join(shared_data, '7scenes_redkitchen'), start=40, count=1)
    harness.frames.publish(*frame_messages(frame, Header(frame_id='camera')))
    harness.wait_for(lambda: all(harness.received.values()), what='both segmentation outputs')
    labels = image_to_array(harness.received['segmentation'][0])
    overlay = image_to_array(harness.received['segmentation/color'][0]).astype(int)
    rgb = frame.rgb.astype(int)
    for class_id in (1, 2):
        where = labels == class_id
        assert where.any(), class_id
        expected = (rgb[where] + np.array(COLOURS[class_id])) / 2.0
        assert np.abs(overlay[where] - expected).max() <= 0.5 + 1e-9
    assert len(received) == 1  # published once, on configure


@pytest.mark.ros
def test_no_labels_topic_without_the_segmentation_output(perception):
    node, harness = perception(topics={'depth': 'Image'}, outputs__segmentation=False)
    assert node.count_publishers(f'/{harness.perception_name}/segmentation/labels') == 0
