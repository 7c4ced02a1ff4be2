"""The camera_info of each frame, from per-frame streams and from latched (published once) cameras.

Cameras publish ``camera_info`` either with every frame (volatile, stamped like the images) or
once, latched (transient local; :class:`vd_ros.camera_info_input.CameraInfoInput` receives
both). The :class:`CameraInfoCache` hands the worker the camera_info of a frame:

* the one stamped like the frame, when it has arrived;
* else, for a camera that publishes camera_info with every frame (the previous frame found
  its own), it waits up to ``wait_s`` for the frame's own, or until the newest to arrive is
  stamped after the frame (then the frame's own was lost): executor threads may handle it
  after the frame's images, and it may say something new (a bad K must be counted, not
  replaced by the previous one). It normally arrives within milliseconds;
* else, when every camera_info kept says the same (only stamps differ: a latched message, or
  a camera whose camera_info stamps never match its images), the newest one at once;
* else (the intrinsics changed recently) it waits up to ``wait_s`` for the frame's own;
* after a wait without the frame's own, the newest one.

Every frame answered with a camera_info not stamped like it is counted (``borrowed``, on
``/diagnostics`` as ``camera_info_borrowed``): all frames for a latched camera_info, and for a
per-frame camera the frames whose own was lost or came later than the wait.
"""

from collections import OrderedDict
import copy
import threading

from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo

from vd_ros.sync import stamp_nanoseconds


def _content(msg: CameraInfo) -> bytes:
    """Return ``msg`` serialized without its stamp: equal for a fixed camera (NaN included)."""
    unstamped = copy.copy(msg)
    unstamped.header = copy.copy(msg.header)
    unstamped.header.stamp = type(msg.header.stamp)()
    return serialize_message(unstamped)


class CameraInfoCache:
    """The recent camera_info messages, by stamp; thread safe.

    Attributes:
        kept: How many recent messages are kept to match frames by stamp.
        borrowed: Lookups answered with a message stamped unlike the frame, since the last
            :meth:`clear`.
    """

    def __init__(self, kept: int = 16):
        """Create an empty cache keeping the ``kept`` newest messages."""
        self.kept = int(kept)
        self._messages = OrderedDict()  # stamp ns -> CameraInfo, in arrival order
        self._contents = OrderedDict()  # stamp ns -> serialized without stamp
        self._arrived = threading.Condition()
        self._per_frame = False  # the previous lookup found the frame's own camera_info
        self.borrowed = 0

    def add(self, msg: CameraInfo) -> None:
        """Keep ``msg`` (replacing one with the same stamp) and wake up waiting lookups."""
        stamp = stamp_nanoseconds(msg)
        with self._arrived:
            for table, value in ((self._messages, msg), (self._contents, _content(msg))):
                table[stamp] = value
                table.move_to_end(stamp)
                while len(table) > self.kept:
                    table.popitem(last=False)
            self._arrived.notify_all()

    def clear(self) -> None:
        """Forget every message."""
        with self._arrived:
            self._messages.clear()
            self._contents.clear()
            self._per_frame = False
            self.borrowed = 0

    def lookup(self, stamp_ns: int, tolerance_ns: int, wait_s: float):
        """Return the camera_info of the frame stamped ``stamp_ns`` (see the module docstring).

        Args:
            stamp_ns: The frame's stamp.
            tolerance_ns: Largest stamp difference that still counts as the frame's own.
            wait_s: Longest wait for the frame's own message when the intrinsics changed.

        Returns:
            A CameraInfo, or None when none arrived at all.
        """
        def matching():
            return next((info for stamp, info in reversed(self._messages.items())
                         if abs(stamp - stamp_ns) <= tolerance_ns), None)

        def settled():  # the frame's own, a newer one (it will not come), or nothing can differ
            contents = list(self._contents.values())
            # Newer by arrival, not any stamp kept: one stamped in the future (a clock jump)
            # must not end the wait of the frames after it.
            last_stamp = next(reversed(self._messages), None)
            return (matching() is not None or
                    (last_stamp is not None and last_stamp > stamp_ns + tolerance_ns) or
                    (not self._per_frame and contents and
                     all(c == contents[0] for c in contents[1:])))

        with self._arrived:
            self._arrived.wait_for(settled, wait_s)
            info = matching()
            self._per_frame = info is not None
            if info is None and self._messages:
                info = next(reversed(self._messages.values()))
                self.borrowed += 1
            return info
