"""Watch the node's inputs: count every message, warn once when one is silent or loses images.

A transport that cannot carry the camera's images fails silently: the graph shows the
publisher, nothing (or only camera_info) arrives, and no error is raised anywhere. So
:class:`InputWatch` counts the messages of each input (``received.<input>`` on
``/diagnostics``) and, once per input, logs a warning naming the topic and the likely cause:

* publishers on the topic that the node did not match for :data:`SILENCE_S` (incompatible
  QoS, e.g. a best-effort camera and ``qos: reliable``);
* a matched publisher but not one message for :data:`SILENCE_S` (the sender's samples cannot
  reach this process with the Fast DDS set-ups of the two);
* an image input that gets fewer than :data:`LOSS_FRACTION` of the camera frames whose
  camera_info arrived within :data:`LOSS_WINDOW_S` (camera-sized samples lost on the way: a
  sender's shared-memory segment smaller than one image and a best-effort subscription). A
  window starts with the stream's first camera_info and ends after :data:`LOSS_WINDOW_S`, or
  early when camera_info stops (a short recording's losses are judged too), once it holds
  :data:`LOSS_MIN_FRAMES` camera_info messages; a smaller one stays open.
"""

import threading
import time

from rclpy.qos import ReliabilityPolicy

from vd_ros.dds_transport import SENDER_ADVICE

SILENCE_S = 3.0  # no message (or no match) this long while a publisher exists: warn
LOSS_WINDOW_S = 3.0  # images are compared with camera_info over windows this long
# Fewer images than this share of camera_info messages: warn. The share a set-up must
# deliver to count as working (README, DDS transport): below it the node never loses silently.
LOSS_FRACTION = 0.95
# camera_info messages a window needs before it is judged: with 20, one image that lands in
# the next window (19 of 20) is not a loss.
LOSS_MIN_FRAMES = 20
CHECK_PERIOD_S = 0.5


class InputWatch:
    """Per-input message counts and the one-time transport warnings of a node.

    Attributes:
        counts: Input name -> messages received.
        warnings: The warnings logged so far (each input and kind once).
    """

    def __init__(self, node, subscriptions: dict, reference: str, reliable: bool,
                 transport: str):
        """Watch ``subscriptions`` (input name -> rclpy subscription) of ``node``.

        Args:
            node: The rclpy node (its logger and graph).
            subscriptions: Input name -> subscription; call :meth:`count` for every message.
            reference: The input every camera frame arrives on (camera_info), against which
                the other inputs' losses are judged.
            reliable: Whether the subscriptions are reliable (the advice differs).
            transport: One line describing this process's Fast DDS set-up.
        """
        self._node, self._subscriptions = node, dict(subscriptions)
        self._reference, self._reliable, self._transport = reference, reliable, transport
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self._subscriptions, 0)
        self.warnings = []
        self._warned = set()
        self._last = dict.fromkeys(self._subscriptions)  # monotonic time of the last message
        self._waiting_since = {}  # (input, 'match' | 'message') -> monotonic time
        self._window = (time.monotonic(), dict(self.counts))  # (start, counts at the start)
        self._reference_seen = 0  # reference messages counted at the last check
        self._timer = node.create_timer(CHECK_PERIOD_S, self.check)

    def count(self, name: str) -> None:
        """Count one message on input ``name``."""
        with self._lock:
            self.counts[name] += 1
            self._last[name] = time.monotonic()

    def check(self, now: float = None) -> None:
        """Look at every input once (the timer calls it); warn about what went wrong."""
        now = time.monotonic() if now is None else now
        with self._lock:
            counts, last = dict(self.counts), dict(self._last)
        for name, subscription in self._subscriptions.items():
            self._check_silence(name, subscription, last[name], now)
        start, before = self._window
        stopped = counts[self._reference] == self._reference_seen  # none since the last check
        self._reference_seen = counts[self._reference]
        frames = counts[self._reference] - before[self._reference]
        if frames == 0:
            self._window = (now, counts)  # no frame yet: the window starts with the first
        elif (now - start >= LOSS_WINDOW_S or stopped) and frames >= LOSS_MIN_FRAMES:
            # A window too small to judge stays open: a stalled executor (no camera_info for
            # one check) or a slow camera must not cut the stream into windows never judged.
            self._window = (now, counts)
            self._check_losses({name: counts[name] - before[name] for name in counts},
                               now - start)

    def _waited(self, key: tuple, waiting: bool, now: float) -> float:
        """Return how long ``waiting`` has held for ``key`` (0 when it does not hold)."""
        if not waiting:
            self._waiting_since.pop(key, None)
            return 0.0
        return now - self._waiting_since.setdefault(key, now)

    def _check_silence(self, name: str, subscription, last: float, now: float) -> None:
        topic = subscription.topic_name
        matched = subscription.get_publisher_count()
        offered = self._node.get_publishers_info_by_topic(topic)
        if self._waited((name, 'match'), len(offered) > matched, now) >= SILENCE_S:
            best_effort = [info for info in offered if
                           info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT]
            cause = ('a best-effort publisher and this node subscribing reliable (qos: '
                     'reliable) never match: set qos: sensor_data' if self._reliable and
                     best_effort else 'incompatible QoS (reliability, durability)')
            self._warn((name, 'match'), (
                f'{topic}: {len(offered) - matched} of {len(offered)} publisher(s) on the '
                f'topic not matched for {SILENCE_S:.0f} s: {cause}'))
        # Only an input that never received anything: a stream that worked and paused is not
        # a transport problem (its losses are judged in _check_losses).
        silent = matched > 0 and last is None
        if self._waited((name, 'message'), silent, now) >= SILENCE_S:
            self._warn((name, 'message'), (
                f'{topic}: {matched} publisher(s) matched but no message for '
                f'{SILENCE_S:.0f} s. Likely cause: the samples of the sender cannot reach this '
                'process with the two Fast DDS set-ups (images larger than its '
                f'shared-memory segment, or transports that do not overlap); here '
                f'{self._transport}. Fix: {SENDER_ADVICE}'))

    def _check_losses(self, arrived: dict, window_s: float) -> None:
        frames = arrived[self._reference]
        for name, subscription in self._subscriptions.items():
            if name == self._reference or arrived[name] >= LOSS_FRACTION * frames:
                continue
            how = ('even reliable (qos: reliable) on a busy machine' if self._reliable else
                   'to a best-effort subscription (qos: sensor_data)')
            cause = ("most likely the sender's Fast DDS shared-memory segment is smaller than "
                     'one image (512 KB: Fast DDS defaults and FASTDDS_BUILTIN_TRANSPORTS='
                     f'LARGE_DATA), which loses camera-sized samples {how}; else the machine '
                     f'is overloaded. Fix: {SENDER_ADVICE}')
            self._warn((name, 'loss'), (
                f'{subscription.topic_name}: {arrived[name]} images arrived in the last '
                f'{window_s:.0f} s against {frames} camera_info messages: images are lost on '
                f'the way; {cause}'))

    def _warn(self, key: tuple, message: str) -> None:
        """Log ``message`` as a warning once per ``key``."""
        if key in self._warned:
            return
        self._warned.add(key)
        self.warnings.append(message)
        self._node.get_logger().warning(message)

    def destroy(self) -> None:
        """Stop the checks."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
