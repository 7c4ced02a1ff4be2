"""CPU time of processes over a window of a benchmark run, read from Linux's /proc."""

import math
import os
import time

_TICKS = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds of a process so far, NaN when it is gone."""
    try:
        with open(f'/proc/{pid}/stat') as stream:
            # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
            fields = stream.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return float('nan')
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


class CpuWindow:
    """Samples several processes' CPU time from a start to their last sample.

    A process that exits keeps the figures of its last sample, so sample it often enough.

    Attributes:
        started: Whether :meth:`start` was called.
    """

    def __init__(self, pids: dict):
        """Watch ``pids`` (name -> process id); nothing is sampled before :meth:`start`."""
        self._pids = pids
        self._first = self._last = None
        self.started = False

    def _read(self) -> tuple:
        return time.monotonic(), {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def start(self) -> None:
        """Take the first sample."""
        self._first = self._last = self._read()
        self.started = True

    def sample(self) -> None:
        """Take a sample; a process that has exited keeps its previous figure."""
        if not self.started:
            return
        now, values = self._read()
        previous = self._last[1]
        self._last = now, {name: previous[name] if math.isnan(value) else value
                           for name, value in values.items()}

    def cores(self) -> dict:
        """Return name -> CPU seconds per second of the window (1.0: a core), NaN if empty."""
        if self._first is None or self._last[0] <= self._first[0]:
            return {name: float('nan') for name in self._pids}
        span = self._last[0] - self._first[0]
        return {name: (self._last[1][name] - self._first[1][name]) / span
                for name in self._pids}
