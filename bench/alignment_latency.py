"""Time of depth alignment (``vd_ros.core.depth_alignment.align_depth``) at 640x480.

Aligns a prediction to real 7-Scenes Kinect depth as the node does (measured depth outside
[0.1, 10] m invalid), in four cases: the dense frame with its holes (the node's normal input)
and VOID-style 1500, 500 and 150 points drawn from its valid pixels. Prints the wall time
(median and p90) and the process CPU time (median; less sensitive to other processes on a
shared machine) per call, in ms, for local and global alignment, with the load average. A
figure-printing script, not a test.

Usage: python -m bench.alignment_latency [--frames 10] [--repeats 10]
"""

import argparse
import os
import time

import numpy as np

from vd_ros.core.depth_alignment import align_depth, ALIGNMENTS
from vd_ros.replay import load_frames, SAMPLE_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('VD_ROS_SHARED', os.path.join(ROOT, '..', 'shared'))
POINTS = (1500, 500, 150)


def inputs(depth_m: np.ndarray, rng: np.random.Generator) -> dict:
    """Return the measured depth of each case: 'dense' and the point counts."""
    depth = np.where((depth_m >= 0.1) & (depth_m <= 10.0), depth_m, 0.0).astype(np.float32)
    cases = {'dense': depth}
    valid = np.flatnonzero(depth)
    for count in POINTS:
        sparse = np.zeros(depth.size, np.float32)
        chosen = rng.choice(valid, count, replace=False)
        sparse[chosen] = depth.ravel()[chosen]
        cases[f'{count} points'] = sparse.reshape(depth.shape)
    return cases


def timed(function, repeats: int) -> tuple:
    """Return (wall ms, CPU ms) arrays of ``repeats`` calls after one warm-up call."""
    function()
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return np.array(wall) * 1e3, np.array(cpu) * 1e3


def main():
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=10)
    args = parser.parse_args()
    kitchen = os.path.join(SHARED, 'data', '7scenes_redkitchen')
    source = kitchen if os.path.isdir(kitchen) else SAMPLE_DIR
    frames = load_frames(source, count=args.frames, step=10 if source == kitchen else 1)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    times = {}
    for frame in frames:
        height, width = frame.depth_m.shape
        rows, cols = np.mgrid[0:height, 0:width]
        # A tilted plane: relative depth with the wrong scale and shape, as an untrained model's.
        predicted = (0.8 + 0.002 * cols + 0.001 * rows).astype(np.float32)
        for case, measured in inputs(frame.depth_m, rng).items():
            for alignment in ALIGNMENTS:
                wall, cpu = timed(lambda: align_depth(predicted, measured, False, alignment),
                                  args.repeats)
                entry = times.setdefault((case, alignment), ([], []))
                entry[0].extend(wall)
                entry[1].extend(cpu)
    load_after = os.getloadavg()
    print(f'align_depth at {width}x{height} on {len(frames)} frames of {source}, '
          f'{args.repeats} calls each; CPU: {os.cpu_count()} cores, load average '
          f'{load_before[0]:.1f} before, {load_after[0]:.1f} after (shared machine)')
    print(f'{"input":12s} {"alignment":9s} {"wall p50":>9s} {"wall p90":>9s} {"CPU p50":>9s}')
    for (case, alignment), (wall, cpu) in times.items():
        print(f'{case:12s} {alignment:9s} {np.percentile(wall, 50):9.2f} '
              f'{np.percentile(wall, 90):9.2f} {np.percentile(cpu, 50):9.2f}')


if __name__ == '__main__':
    main()
