r"""Launch the vd_ros perception node, optionally with rviz2.

Example::

    ros2 launch vd_ros vd_ros.launch.py model:=models/vd.onnx namespace:=camera \\
        rgb_topic:=/camera/color/image_raw depth_topic:=/camera/aligned_depth_to_color/image_raw \\
        camera_info_topic:=/camera/color/camera_info providers:="['cuda', 'cpu']" rviz:=true
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    """Return the launch description (arguments, node, optional rviz)."""
    share = get_package_share_directory('vd_ros')
    arguments = [
        DeclareLaunchArgument('model', description='exported ONNX model (model_path)'),
        DeclareLaunchArgument('config', default_value=os.path.join(share, 'config',
                                                                   'vd_ros.yaml'),
                              description='parameter file of the node'),
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
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
    node = Node(
        package='vd_ros', executable='perception_node', name='vd_perception',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('config'), {
            'model_path': LaunchConfiguration('model'),
            'providers': ParameterValue(LaunchConfiguration('providers')),
        }],
        remappings=[('rgb/image_raw', LaunchConfiguration('rgb_topic')),
                    ('depth/image_raw', LaunchConfiguration('depth_topic')),
                    ('rgb/camera_info', LaunchConfiguration('camera_info_topic'))],
        # Fast DDS drops ~1 MB images with its default transports; LARGE_DATA delivers them.
        additional_env={'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'},
    )
    rviz = Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
                arguments=['-d', os.path.join(share, 'rviz', 'vd_ros.rviz')],
                condition=IfCondition(LaunchConfiguration('rviz')))
    return LaunchDescription([*arguments, node, rviz])
