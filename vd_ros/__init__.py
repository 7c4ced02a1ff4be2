"""vd_ros: Vanishing Depth RGB-D perception for ROS 2 (runtime package, no torch)."""

import os

# The Open3D RGB-D sample frames installed with the package (sample_data/README.md). Defined
# here, not in ``vd_ros.replay``, so that code without ROS (training on a GPU machine) finds it.
SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sample_data',
                          'open3d_rgbd')
