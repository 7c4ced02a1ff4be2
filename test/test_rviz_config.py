"""rviz/vd_ros.rviz stays in step with the node: it parses and shows the node's real topics."""

import os

from ros_harness import OUTPUT_TOPICS
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = '/vd_perception'  # the node name in launch/vd_ros.launch.py
INPUTS = {'/rgb/image_raw', '/depth/image_raw'}
VISUAL = {'segmentation/color', 'depth', 'features/pca', 'points'}


def test_rviz_layout_shows_inputs_and_every_visual_output():
    with open(os.path.join(ROOT, 'rviz', 'vd_ros.rviz')) as stream:
        layout = yaml.safe_load(stream)
    displays = layout['Visualization Manager']['Displays']
    topics = {d['Topic']['Value'] for d in displays if 'Topic' in d}
    outputs = {f'{NODE}/{name}' for name in OUTPUT_TOPICS}
    assert topics <= INPUTS | outputs, f'unknown topics {sorted(topics - INPUTS - outputs)}'
    assert topics >= INPUTS | {f'{NODE}/{name}' for name in VISUAL}
    for display in displays:
        assert display['Class'].startswith('rviz_default_plugins/'), display['Class']
    with open(os.path.join(ROOT, 'launch', 'vd_ros.launch.py')) as stream:
        assert f"name='{NODE[1:]}'" in stream.read()
