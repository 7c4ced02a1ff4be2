"""Fast DDS transport settings for camera-sized images between processes on one machine.

What limits delivery is the *sender's* shared-memory segment: a sample that does not fit it
(Fast DDS's default and ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` both have 512 KB, less than
one 640x480 rgb8 image) goes out in fragments that a best-effort reader loses when the segment
runs full, whatever the reader's own transports. Measured on the 2-core development VM (Fast
DDS 3.2 of ROS 2 Kilted, 640x480 rgb8 + 16UC1 + camera_info at 30 Hz, 240 frames, to a bare
subscriber in another process): a best-effort sender with the default or the ``LARGE_DATA``
transports delivered 123-215 RGB and 29-119 depth images of 240 (to a reader with this profile,
the defaults, ``LARGE_DATA``, UDP with 4 MB buffers or TCP alike); a reliable sender with
either delivered 239-240 of 240 to a reliable reader on a quiet machine, but only 52-76 % of
the frames to the node at load 4-6 (``bench.dds_matrix``, two runs: repairs come too late for
a keep-last history); a sender with the profile :data:`PROFILE_PATH` (shared memory with a 16 MB
segment, UDPv4 for discovery and other hosts) delivered 240 of 240 best effort, and every frame
to the node in every QoS combination that matches.

So every process that sends images should use the profile (the camera driver too) or one of
its own with a segment of several MB. :func:`use_large_image_transport` gives the profile to
our own processes unless the user chose a transport set-up, and says what it did.
"""

import os
from typing import NamedTuple

PROFILE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'fastdds_large_images.xml')
PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
BUILTIN_VARIABLE = 'FASTDDS_BUILTIN_TRANSPORTS'
# What a best-effort reader needs from the sender of camera-sized images.
SENDER_ADVICE = (f'give the camera driver {PROFILE_VARIABLE}={PROFILE_PATH} (a 16 MB '
                 'shared-memory segment) or a profile of its own with a segment of several MB')


class TransportChoice(NamedTuple):
    """The Fast DDS set-up of this process.

    Attributes:
        profile: The profile file Fast DDS reads (None: none, built-in transports).
        ours: True when it is the vd_ros profile set by vd_ros.
        description: One line for the log saying what was chosen and why.
    """

    profile: str
    ours: bool
    description: str


def choose_transport(environ) -> TransportChoice:
    """Decide the Fast DDS set-up for ``environ`` without changing it.

    The user's explicit choice wins: a profile file (:data:`PROFILE_VARIABLE`) or a built-in
    transport set (:data:`BUILTIN_VARIABLE`, e.g. ``LARGE_DATA``) is left as it is; only an
    environment with neither gets :data:`PROFILE_PATH`.
    """
    profile, builtin = environ.get(PROFILE_VARIABLE), environ.get(BUILTIN_VARIABLE)
    if profile:
        whose = 'the vd_ros profile' if profile == PROFILE_PATH else 'your profile'
        also = (f'; {BUILTIN_VARIABLE}={builtin} applies where the profile sets no '
                'transports' if builtin else '')
        return TransportChoice(profile, False, f'Fast DDS: {whose} {profile} '
                               f'({PROFILE_VARIABLE}){also}')
    if builtin:
        return TransportChoice(None, False, (
            f'Fast DDS: {BUILTIN_VARIABLE}={builtin} as you set it; the vd_ros profile '
            f'({PROFILE_PATH}) is not loaded. Best-effort images from a sender whose '
            'shared-memory segment is smaller than one image (512 KB: the defaults and '
            f'LARGE_DATA) are lost on the way: {SENDER_ADVICE}'))
    return TransportChoice(PROFILE_PATH, True, (
        f'Fast DDS: the vd_ros profile {PROFILE_PATH} (16 MB shared memory, UDPv4; '
        f'{PROFILE_VARIABLE} and {BUILTIN_VARIABLE} were unset)'))


def use_large_image_transport(environ=None) -> TransportChoice:
    """Point Fast DDS at :data:`PROFILE_PATH` unless the user chose a transport set-up.

    Call it before ``rclpy.init`` (Fast DDS reads the variables when a participant is
    created), and log ``description`` of the result once a logger exists.

    Args:
        environ: The environment to change (default ``os.environ``).

    Returns:
        The :class:`TransportChoice` (``profile``: the file Fast DDS will read, or None).
    """
    environ = os.environ if environ is None else environ
    choice = choose_transport(environ)
    if choice.ours:
        environ[PROFILE_VARIABLE] = PROFILE_PATH
    return choice
