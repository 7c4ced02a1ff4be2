"""bench.process_cpu: the CPU share of processes over a window, kept after they exit."""

import math
import os
import subprocess
import sys
import time

from bench.process_cpu import cpu_seconds, CpuWindow

BUSY = 'import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass'


def test_a_busy_process_uses_a_core_a_sleeping_one_none_and_an_exit_keeps_the_figure():
    busy = subprocess.Popen([sys.executable, '-c', BUSY])
    idle = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1.5)'])
    time.sleep(0.2)  # both started (the interpreter's own start is not measured)
    window = CpuWindow({'busy': busy.pid, 'idle': idle.pid})
    window.sample()  # before start: nothing
    assert all(math.isnan(value) for value in window.cores().values())
    window.start()
    while busy.poll() is None:
        window.sample()
        time.sleep(0.02)
    time.sleep(0.3)
    window.sample()  # busy is gone: its last figure stays
    cores = window.cores()
    idle.wait()
    assert 0.2 < cores['busy'] <= 1.1  # a whole core when the machine has one free
    assert cores['idle'] < 0.05
    assert math.isnan(cpu_seconds(busy.pid))  # the process is gone
    assert cpu_seconds(os.getpid()) > 0
