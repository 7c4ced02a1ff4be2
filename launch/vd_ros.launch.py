r"""Launch the vd_ros perception node (managed by default, autostarted), optionally with rviz2.

Example::

    ros2 launch vd_ros vd_ros.launch.py model:=models/vd_cpu_int8.onnx namespace:=camera \\
        rgb_topic:=/camera/color/image_raw depth_topic:=/camera/aligned_depth_to_color/image_raw \\
        camera_info_topic:=/camera/color/camera_info providers:="['cuda', 'cpu']" rviz:=true

``managed:=true`` (default) starts a lifecycle node; ``autostart:=true`` (default) configures
and activates it, ``autostart:=false`` leaves that to your lifecycle manager. ``managed:=false``
starts a plain node that activates itself.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import AndSubstitution, LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

from vd_ros.dds_transport import PROFILE_VARIABLE, use_large_image_transport
from vd_ros.rviz_layout import write_layout


def _change_state(node, transition: int, **kwargs) -> EmitEvent:
    """Return the action asking lifecycle node action ``node`` for ``transition``."""
    return EmitEvent(event=ChangeState(
        lifecycle_node_matcher=lambda action: action is node, transition_id=transition),
        **kwargs)


def _transport_env() -> dict:
    """Return the Fast DDS variable the node needs beyond the launching environment."""
    choice = use_large_image_transport(dict(os.environ))
    return {PROFILE_VARIABLE: choice.profile} if choice.ours else {}


def _rviz(context, share: str) -> list:
    """Start rviz2 with the layout moved to this launch's namespace, node name and inputs."""
    values = {name: LaunchConfiguration(name).perform(context)
              for name in ('namespace', 'node_name', 'rgb_topic', 'depth_topic')}
    path = write_layout(os.path.join(share, 'rviz', 'vd_ros.rviz'), **values)
    return [Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
                 arguments=['-d', path])]


def generate_launch_description():
    """Return the launch description (arguments, node, its autostart, optional rviz)."""
    share = get_package_share_directory('vd_ros')
    arguments = [
        DeclareLaunchArgument('model', description='exported ONNX model (model_path), e.g. the '
                              'shipped models/vd_cpu_int8.onnx'),
        DeclareLaunchArgument('config', default_value=os.path.join(share, 'config',
                                                                   'vd_ros.yaml'),
                              description='parameter file of the node'),
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument('node_name', default_value='vd_perception',
                              description='node name'),
        DeclareLaunchArgument('managed', default_value='true',
                              description='lifecycle node (true) or plain node (false)'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='configure and activate the managed node at start'),
        DeclareLaunchArgument('rgb_topic', default_value='rgb/image_raw',
                              description='colour image input'),
        DeclareLaunchArgument('depth_topic', default_value='depth/image_raw',
                              description='depth image input, registered to the colour camera'),
        DeclareLaunchArgument('camera_info_topic', default_value='rgb/camera_info',
                              description='camera_info of the colour camera'),
        DeclareLaunchArgument('providers', default_value="['cuda', 'cpu']",
                              description='ONNX Runtime providers: tensorrt, cuda, cpu'),
        DeclareLaunchArgument('rviz', default_value='false', description='start rviz2'),
    ]
    managed = LaunchConfiguration('managed')
    node_arguments = {
        'package': 'vd_ros', 'executable': 'perception_node',
        'name': LaunchConfiguration('node_name'), 'namespace': LaunchConfiguration('namespace'),
        'output': 'screen', 'emulate_tty': True,
        'parameters': [LaunchConfiguration('config'), {
            'model_path': LaunchConfiguration('model'),
            'providers': ParameterValue(LaunchConfiguration('providers')),
            'managed': ParameterValue(managed, value_type=bool),
        }],
        'remappings': [('rgb/image_raw', LaunchConfiguration('rgb_topic')),
                       ('depth/image_raw', LaunchConfiguration('depth_topic')),
                       ('rgb/camera_info', LaunchConfiguration('camera_info_topic'))],
        # Fast DDS loses VGA images without a large shared-memory segment (dds_transport);
        # a transport set-up the user chose stays as it is.
        'additional_env': _transport_env(),
    }
    managed_node = LifecycleNode(**node_arguments, condition=IfCondition(managed))
    plain_node = Node(**node_arguments, condition=UnlessCondition(managed))
    autostart = IfCondition(AndSubstitution(managed, LaunchConfiguration('autostart')))
    # Activate after the first configure only: a later deactivate by the user must hold.
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=managed_node, start_state='configuring', goal_state='inactive',
        entities=[_change_state(managed_node, Transition.TRANSITION_ACTIVATE)]),
        condition=autostart)
    configure = _change_state(managed_node, Transition.TRANSITION_CONFIGURE,
                              condition=autostart)
    rviz = OpaqueFunction(function=_rviz, args=[share],
                          condition=IfCondition(LaunchConfiguration('rviz')))
    return LaunchDescription([*arguments, managed_node, plain_node, activate, configure, rviz])
