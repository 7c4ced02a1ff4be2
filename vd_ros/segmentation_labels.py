"""The ``~/segmentation/labels`` topic: what each label id of ``~/segmentation`` means.

A latched ``std_msgs/String`` (reliable, transient local, depth 1: a subscriber that joins
later still gets it) published once when the node is configured with a segmentation output.
Its data is JSON::

    {"class_names": ["background", "mug", ...], "colors": [[0, 0, 0], [255, 0, 0], ...]}

``class_names[i]`` names label id ``i``; ``colors[i]`` is the RGB colour ``~/segmentation/color``
paints it with: the model's ``class_colors`` (from the class list it was trained with) where
given, else the node's default palette (``vd_ros.core.postprocess.label_palette``).
"""

import json

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from vd_ros.core.contract import ModelContract
from vd_ros.core.postprocess import class_palette

LABELS_TOPIC = 'segmentation/labels'
LABELS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


def segmentation_palette(contract: ModelContract) -> np.ndarray:
    """Return the (256 or K, 3) uint8 colours of the label ids of ``contract``'s head."""
    return class_palette(contract.class_colors, max(256, len(contract.class_names)))


def labels_json(contract: ModelContract) -> str:
    """Return the JSON of the labels message (module docstring)."""
    palette = segmentation_palette(contract)[:len(contract.class_names)]
    return json.dumps({'class_names': list(contract.class_names),
                       'colors': palette.astype(int).tolist()})


def publish_segmentation_labels(node, contract: ModelContract):
    """Create the latched ``~/segmentation/labels`` publisher of ``node`` and publish once.

    Args:
        node: The rclpy node.
        contract: The model's contract (its ``class_names`` and ``class_colors``).

    Returns:
        The publisher (destroy it with the node's other publishers).
    """
    publisher = node.create_publisher(String, f'~/{LABELS_TOPIC}', LABELS_QOS)
    publisher.publish(String(data=labels_json(contract)))
    return publisher
