"""Pure numpy parts of vd_ros, shared with training: no ROS, no ONNX Runtime, no torch."""
