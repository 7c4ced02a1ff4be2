"""vd_ros: Vanishing Depth RGB-D perception for ROS 2 (runtime package, no torch)."""
