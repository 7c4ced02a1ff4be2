"""Throughput, latency and drop statistics of the node, published as ``diagnostic_msgs``.

:class:`NodeStatistics` is thread safe: the subscription callbacks count arrivals and drops,
the worker thread records latencies, a timer turns a snapshot into a
``diagnostic_msgs/DiagnosticStatus`` with :func:`diagnostic_status` (the node's whole status,
model and stage times included: :class:`NodeDiagnostics`). :class:`DropLog` counts a dropped
frame and logs it, throttled per cause.
"""

from collections import Counter, deque
import threading
import time
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np

# Why a frame was not turned into outputs; the keys of the drop counters.
DROP_CAUSES = (
    'stale',                 # overwritten in the mailbox by a newer pair before processing
    'unsynced',              # a camera frame that never became a pair (streams apart in
                             # time, or one of its images lost on the way)
    'bad_encoding',          # unsupported encoding or malformed image message
    'size_mismatch',         # RGB, depth and camera_info sizes disagree
    'oversized',             # more pixels than max_input_pixels (processing would stall)
    'non_finite',            # NaN/Inf where no value may be missing (camera_info K)
    'empty_depth',           # no valid depth pixel at all
    'camera_info_missing',   # no camera_info received yet
    'camera_info_mismatch',  # camera_info of another size, or with an invalid K
    'model_error',           # ONNX Runtime failed on the frame
    'processing_error',      # any other exception while post-processing or publishing
)


class NodeStatistics:
    """Counters and rolling latency windows of a perception node.

    Attributes:
        window: Number of recent frames kept for percentiles and rate.
    """

    def __init__(self, window: int = 300):
        """Create empty statistics.

        Args:
            window: Number of recent processed frames used for percentiles and the rate.
        """
        self.window = int(window)
        self._lock = threading.Lock()
        self._drops = Counter(dict.fromkeys(DROP_CAUSES, 0))
        self._pairs = 0
        self._processed = 0
        self._unobserved = 0
        self._done_times = deque(maxlen=self.window)
        self._latencies = deque(maxlen=self.window)
        self._model_times = deque(maxlen=self.window)
        self._input_delays = deque(maxlen=self.window)

    def count_pair(self, input_delay_s: float = None) -> None:
        """Count one synchronized RGB-depth pair received.

        Args:
            input_delay_s: Time from the pair's stamp to its arrival (transport and pairing,
                when the camera stamps at publishing); None when unknown.
        """
        with self._lock:
            self._pairs += 1
            if input_delay_s is not None:
                self._input_delays.append(input_delay_s)

    def count_unobserved(self) -> None:
        """Count one pair skipped because no output had a subscriber (not a drop)."""
        with self._lock:
            self._unobserved += 1

    def count_drop(self, cause: str) -> int:
        """Count one dropped frame and return the total for that cause.

        Raises:
            KeyError: For a cause not in :data:`DROP_CAUSES`.
        """
        if cause not in DROP_CAUSES:
            raise KeyError(f'unknown drop cause {cause!r}; known: {DROP_CAUSES}')
        with self._lock:
            self._drops[cause] += 1
            return self._drops[cause]

    def record_frame(self, latency_s: float, model_s: float, done: float = None) -> None:
        """Record one processed frame.

        Args:
            latency_s: Time from receiving the pair to the last output published.
            model_s: Time of the ONNX Runtime call alone.
            done: Monotonic completion time (default now).
        """
        with self._lock:
            self._processed += 1
            self._latencies.append(latency_s)
            self._model_times.append(model_s)
            self._done_times.append(time.monotonic() if done is None else done)

    def snapshot(self) -> dict:
        """Return counters, output rate (Hz) and latency percentiles (ms) as a dict."""
        with self._lock:
            latencies = np.array(self._latencies, dtype=np.float64) * 1e3
            model_times = np.array(self._model_times, dtype=np.float64) * 1e3
            input_delays = np.array(self._input_delays, dtype=np.float64) * 1e3
            done = list(self._done_times)
            result = {'pairs_received': self._pairs, 'frames_processed': self._processed,
                      'frames_unobserved': self._unobserved, 'drops': dict(self._drops)}
        result['rate_hz'] = ((len(done) - 1) / (done[-1] - done[0])
                             if len(done) > 1 and done[-1] > done[0] else 0.0)
        for name, values in (('latency', latencies), ('model', model_times),
                             ('input_delay', input_delays)):
            for q in (50, 99):
                result[f'{name}_p{q}_ms'] = float(np.percentile(values, q)) if values.size else 0.0
        return result


def diagnostic_status(name: str, hardware_id: str, snapshot: dict, extra: dict = None,
                      warn_on_drops: dict = None) -> DiagnosticStatus:
    """Build a ``DiagnosticStatus`` from a :meth:`NodeStatistics.snapshot`.

    Args:
        name: Status name (the node's fully qualified name).
        hardware_id: Hardware id field (the active execution provider).
        snapshot: Output of :meth:`NodeStatistics.snapshot`.
        extra: More key/value pairs (model file, providers, sync implementation).
        warn_on_drops: The previous snapshot's drop counters; new drops since then make the
            level WARN.

    Returns:
        The status, level OK, or WARN when frames were dropped since ``warn_on_drops``.
    """
    values = {key: value for key, value in snapshot.items() if key != 'drops'}
    values.update({f'drops.{cause}': count for cause, count in snapshot['drops'].items()})
    values.update(extra or {})
    new_drops = {cause: count - (warn_on_drops or {}).get(cause, 0)
                 for cause, count in snapshot['drops'].items()}
    new_drops = {cause: count for cause, count in new_drops.items() if count > 0}
    status = DiagnosticStatus()
    status.name = name
    status.hardware_id = hardware_id
    if new_drops:
        status.level = DiagnosticStatus.WARN
        status.message = 'dropped frames: ' + ', '.join(
            f'{cause} {count}' for cause, count in sorted(new_drops.items()))
    else:
        status.level = DiagnosticStatus.OK
        status.message = f'{snapshot["rate_hz"]:.1f} Hz'
    status.values = [KeyValue(key=key, value=_format(value)) for key, value in values.items()]
    return status


def status_values(status: DiagnosticStatus) -> dict:
    """Return the key/value pairs of a status as a dict of strings (for readers and tests)."""
    return {pair.key: pair.value for pair in status.values}


def _format(value) -> str:
    """Format a diagnostic value: floats with 3 decimals, everything else with str()."""
    return f'{value:.3f}' if isinstance(value, float) else str(value)


class UnsyncedFrameCounter:
    """Count camera frames that never became an RGB-depth pair.

    Every camera frame comes with a ``camera_info`` carrying the RGB image's stamp, so the node
    notes those stamps (:meth:`note_frame`) and the stamps of the pairs the synchronizer emits
    (:meth:`note_pair`). A frame still unpaired ``horizon_s`` after a newer frame arrived is
    counted as unsynced (its RGB or depth partner is missing or too far apart in time). Stamps
    that jump by more than ``horizon_s`` (a looping bag, a reset simulation, one frame stamped
    in the past or future) start a new timeline; the frames still pending from the old one may
    still be paired for ``horizon_s`` of wall-clock time, then the unpaired ones are counted.
    """

    def __init__(self, horizon_s: float = 1.0, tolerance_s: float = 0.0):
        """Create the counter.

        Args:
            horizon_s: How long after newer frames a frame may still be paired.
            tolerance_s: Largest difference between a pair's stamp and its camera_info's.
        """
        self.horizon_s = float(horizon_s)
        self.horizon_ns = int(horizon_s * 1e9)
        self.tolerance_ns = int(tolerance_s * 1e9)
        self._lock = threading.Lock()
        self._pending = {}  # stamp_ns -> paired?
        self._retired = deque()  # (monotonic time of the jump, pending of the old timeline)
        self._paired = deque(maxlen=64)  # stamps of the latest pairs

    def note_frame(self, stamp_ns: int, now: float = None) -> int:
        """Note a camera frame's stamp; return how many older frames just expired unpaired.

        Args:
            stamp_ns: The frame's stamp.
            now: Monotonic time in seconds (default now).
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            unpaired = 0
            while self._retired and self._retired[0][0] <= now - self.horizon_s:
                unpaired += sum(not p for p in self._retired.popleft()[1].values())
            if self._pending and abs(stamp_ns - max(self._pending)) > self.horizon_ns:
                self._retired.append((now, self._pending))
                self._pending = {}
            paired = any(abs(s - stamp_ns) <= self.tolerance_ns for s in self._paired)
            self._pending[stamp_ns] = self._pending.get(stamp_ns, False) or paired
            newest = max(self._pending)
            expired = [s for s in self._pending if s < newest - self.horizon_ns]
            return unpaired + sum(not self._pending.pop(s) for s in expired)

    def note_pair(self, stamp_ns: int) -> None:
        """Note that the synchronizer emitted a pair with this (RGB) stamp."""
        with self._lock:
            self._paired.append(stamp_ns)  # in case its camera_info arrives after the pair
            for pending in [self._pending, *(old for _, old in self._retired)]:
                for stamp in pending:
                    if abs(stamp - stamp_ns) <= self.tolerance_ns:
                        pending[stamp] = True


class DropLog:
    """Counts dropped frames and logs them, at most once per cause and throttle period."""

    def __init__(self, stats: NodeStatistics, warn: Callable[[str], None],
                 period_s: Callable[[], float], clock: Callable[[], float] = time.monotonic):
        """Store where drops are counted and logged.

        Args:
            stats: The counters.
            warn: Logs one warning line.
            period_s: Returns the current throttle period (``log_throttle_s``), seconds.
            clock: Monotonic time in seconds.
        """
        self._stats, self._warn, self._period_s, self._clock = stats, warn, period_s, clock
        self._last_log = {}

    def __call__(self, cause: str, message: str) -> None:
        """Count one frame dropped for ``cause``; log ``message`` unless logged recently."""
        total = self._stats.count_drop(cause)
        now = self._clock()
        if now - self._last_log.get(cause, -np.inf) >= self._period_s():
            self._last_log[cause] = now
            self._warn(f'dropped frame ({cause}, {total} so far): {message}')


class NodeDiagnostics:
    """Builds the node's ``/diagnostics`` message; WARN when frames were dropped since the last.

    Attributes:
        name: The status name (the node's fully qualified name).
    """

    def __init__(self, name: str):
        """Start with no drops seen."""
        self.name = name
        self._last_drops = {}

    def array(self, snapshot: dict, model, sync_implementation: str, stages: dict,
              input_counts: dict, stamp) -> DiagnosticArray:
        """Return the message of one period.

        Args:
            snapshot: :meth:`NodeStatistics.snapshot`.
            model: The running ``vd_ros.inference.VDModel``.
            sync_implementation: How RGB and depth are paired.
            stages: ``vd_ros.stage_timer.StageTimer.snapshot``.
            input_counts: Input name -> messages received (``received.<input>``).
            stamp: The header stamp (``builtin_interfaces/Time``).
        """
        extra = {'model_path': model.path, 'model_trained': model.contract.trained,
                 'active_provider': model.active_provider,
                 'requested_providers': ','.join(model.requested_providers),
                 'sync_implementation': sync_implementation, **stages}
        extra.update({f'received.{name}': count for name, count in input_counts.items()})
        status = diagnostic_status(self.name, model.active_provider, snapshot, extra,
                                   self._last_drops)
        self._last_drops = snapshot['drops']
        array = DiagnosticArray()
        array.header.stamp = stamp
        array.status = [status]
        return array
