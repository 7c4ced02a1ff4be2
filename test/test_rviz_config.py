"""The rviz2 layout follows the node: its topics are the node's real topics, in any namespace."""

import os

import pytest
from ros_harness import OUTPUT_TOPICS
from vd_ros.rviz_layout import layout, resolve, TEMPLATE_NODE, write_layout
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, 'rviz', 'vd_ros.rviz')
INPUTS = {'/rgb/image_raw', '/depth/image_raw'}
VISUAL = {'segmentation/color', 'depth', 'features/pca', 'points'}
# Published only by models with depth_uncertainty: shown, but not by the tiny default model.
CONDITIONAL = {'depth/confidence'}


def topics_of(parsed: dict) -> set:
    displays = parsed['Visualization Manager']['Displays']
    for display in displays:
        assert display['Class'].startswith('rviz_default_plugins/'), display['Class']
    return {d['Topic']['Value'] for d in displays if 'Topic' in d}


def test_default_layout_shows_inputs_and_every_visual_output():
    with open(TEMPLATE) as stream:
        topics = topics_of(yaml.safe_load(stream))
    outputs = {f'{TEMPLATE_NODE}/{name}' for name in {*OUTPUT_TOPICS, *CONDITIONAL}}
    assert topics <= INPUTS | outputs, f'unknown topics {sorted(topics - INPUTS - outputs)}'
    assert topics >= INPUTS | {f'{TEMPLATE_NODE}/{name}' for name in VISUAL | CONDITIONAL}
    with open(os.path.join(ROOT, 'launch', 'vd_ros.launch.py')) as stream:
        assert f"default_value='{TEMPLATE_NODE[1:]}'" in stream.read()


def test_names_resolve_like_ros():
    assert resolve('rgb/image_raw', '') == '/rgb/image_raw'
    assert resolve('rgb/image_raw', '/cam/') == '/cam/rgb/image_raw'
    assert resolve('/abs/topic', 'cam') == '/abs/topic'
    with open(TEMPLATE) as stream:
        template = yaml.safe_load(stream)
    assert layout(template, '', 'vd_perception', 'rgb/image_raw',
                  'depth/image_raw') == template


@pytest.mark.ros
def test_layout_topics_are_the_node_topics_under_a_namespace(ros_context, contract_model_file):
    from rclpy.parameter import Parameter

    from vd_ros.perception_node import PerceptionNode

    node = PerceptionNode(
        'perc', namespace='cam', context=ros_context,
        cli_args=['--ros-args', '-r', 'rgb/image_raw:=/test/color'],
        parameter_overrides=[Parameter('model_path', value=contract_model_file),
                             Parameter('providers', value=['cpu']),
                             Parameter('outputs.points', value=True)])
    try:
        published = {publisher.topic_name for publisher in node.publishers}
        subscribed = {subscription.topic_name for subscription in node.subscriptions}
    finally:
        node.destroy_node()
    path = write_layout(TEMPLATE, 'cam', 'perc', '/test/color', 'depth/image_raw')
    try:
        with open(path) as stream:
            topics = topics_of(yaml.safe_load(stream))
    finally:
        os.remove(path)
    assert {'/test/color', '/cam/depth/image_raw'} <= subscribed
    conditional = {f'/cam/perc/{name}' for name in CONDITIONAL}
    assert topics - conditional <= published | subscribed, sorted(
        topics - conditional - published - subscribed)
    assert topics >= {'/test/color', '/cam/depth/image_raw'} | {
        f'/cam/perc/{name}' for name in VISUAL}
