"""Rolling wall-clock times of the named stages of the node's per-frame work.

The worker thread wraps each stage in ``with timer.stage('name'):``; the diagnostics timer
reads :meth:`StageTimer.snapshot` (median and p99 per stage, in ms) from another thread, so
``/diagnostics`` and the benchmark show where a frame's time goes.
"""

from collections import deque
import contextlib
import threading
import time

import numpy as np


class StageTimer:
    """Thread-safe rolling windows of stage durations.

    Attributes:
        window: Number of recent durations kept per stage.
    """

    def __init__(self, window: int = 300):
        """Create an empty timer.

        Args:
            window: Number of recent durations kept per stage for the percentiles.

        Raises:
            ValueError: For a window below 1.
        """
        if int(window) < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self.window = int(window)
        self._lock = threading.Lock()
        self._times = {}

    def record(self, name: str, seconds: float) -> None:
        """Record one duration of stage ``name``."""
        with self._lock:
            self._times.setdefault(name, deque(maxlen=self.window)).append(float(seconds))

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time the body of a ``with`` block as one run of stage ``name`` (also on error)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(name, time.perf_counter() - start)

    def snapshot(self) -> dict:
        """Return ``{'stage_<name>_p50_ms': ..., 'stage_<name>_p99_ms': ...}`` per stage.

        Stages are in the order they were first recorded.
        """
        with self._lock:
            times = {name: np.array(values) * 1e3 for name, values in self._times.items()}
        return {f'stage_{name}_p{q}_ms': float(np.percentile(values, q))
                for name, values in times.items() for q in (50, 99)}
