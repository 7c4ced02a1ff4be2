"""Fast DDS transport settings for camera-sized images between processes on one machine.

Measured on the 2-core development VM (Fast DDS of ROS 2 Kilted, 640x480 rgb8 + 16UC1 depth +
camera_info at 30 Hz from one process to a bare subscriber in another, 240 frames, the
subscriber running the shipped model in a second thread):

- ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` (TCP, shared memory with its default 512 KB
  segment): best effort delivered 229 of 240 RGB images and 1 of 240 depth images; reliable
  delivered all, but in ``bench.node_latency`` (the node under load) the RGB images came in
  bursts, up to 125 ms late at p90, and 35-42 of 600 frames were dropped as ``unsynced``;
- the profile :data:`PROFILE_PATH` (shared memory with a 16 MB segment, UDPv4 for discovery
  and other hosts): 240 of 240 of every stream, best effort and reliable, p99 at most 12 ms.

Every process that exchanges images needs it (the camera driver too: a segment belongs to the
process that sends).
"""

import os

PROFILE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'fastdds_large_images.xml')
PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'


def use_large_image_transport(environ=None) -> str:
    """Point Fast DDS at :data:`PROFILE_PATH` unless a profile file is set already.

    Call it before ``rclpy.init`` (Fast DDS reads the variable when a participant is created).

    Args:
        environ: The environment to change (default ``os.environ``).

    Returns:
        The profile file Fast DDS will read.
    """
    environ = os.environ if environ is None else environ
    return environ.setdefault(PROFILE_VARIABLE, PROFILE_PATH)
