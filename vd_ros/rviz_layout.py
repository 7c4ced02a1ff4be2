"""The rviz2 layout of a node started under any namespace and name.

``rviz/vd_ros.rviz`` shows the default setup (node ``/vd_perception``, inputs
``/rgb/image_raw`` and ``/depth/image_raw``). The launch file rewrites its topics with
:func:`write_layout` for the namespace, node name and input remappings it was given, so rviz2
shows what the node really publishes and reads.
"""

import os
import tempfile

import yaml

TEMPLATE_NODE = '/vd_perception'
TEMPLATE_INPUTS = {'rgb': '/rgb/image_raw', 'depth': '/depth/image_raw'}


def resolve(name: str, namespace: str) -> str:
    """Return the absolute name of topic or node ``name`` in ``namespace`` (ROS rules)."""
    if name.startswith('/'):
        return name
    return '/' + '/'.join(part for part in (namespace.strip('/'), name) if part)


def layout(template: dict, namespace: str, node_name: str, rgb_topic: str,
           depth_topic: str) -> dict:
    """Return ``template`` (a parsed rviz layout) with every topic moved to the given setup.

    Args:
        template: The parsed default layout.
        namespace: Node namespace ('' for none).
        node_name: Node name.
        rgb_topic: Colour input as given to the node's remapping (relative names resolve in
            the namespace).
        depth_topic: Depth input, same rules.

    Returns:
        A new layout; the template is not changed.
    """
    moved = {TEMPLATE_INPUTS['rgb']: resolve(rgb_topic, namespace),
             TEMPLATE_INPUTS['depth']: resolve(depth_topic, namespace)}
    node = resolve(node_name, namespace)
    result = yaml.safe_load(yaml.safe_dump(template))  # a deep copy
    for display in result['Visualization Manager']['Displays']:
        topic = display.get('Topic', {}).get('Value')
        if topic in moved:
            display['Topic']['Value'] = moved[topic]
        elif topic is not None and topic.startswith(TEMPLATE_NODE + '/'):
            display['Topic']['Value'] = node + topic[len(TEMPLATE_NODE):]
    return result


def write_layout(template_path: str, namespace: str, node_name: str, rgb_topic: str,
                 depth_topic: str) -> str:
    """Write the :func:`layout` of the template file to a temporary file; return its path."""
    with open(template_path) as stream:
        template = yaml.safe_load(stream)
    handle, path = tempfile.mkstemp(prefix='vd_ros_', suffix='.rviz')
    with os.fdopen(handle, 'w') as stream:
        yaml.safe_dump(layout(template, namespace, node_name, rgb_topic, depth_topic), stream,
                       sort_keys=False)
    return path
