"""End-to-end latency and throughput of the perception node, against the bare model call.

Replays real 7-Scenes 640x480 frames at 30 Hz (``vd_ros_replay`` in its own process, as a
camera driver is) through the node (another process) over real DDS with every output
subscribed (``~/depth/confidence`` too for a model with ``depth_uncertainty``), once without
and once with ``~/points``, and prints for each run: the sustained
output rate, the end-to-end latency (input stamp to ``~/depth`` received) p50/p99 (and p50 of
the first and the second half of the run: a queue would make it grow) and to the last output
of each frame (every subscribed topic received), the drops by cause, the
node's time per frame split into the model call and everything else (non-model work: its wall
time, and its CPU time, which leaves out the waits for a core and for the GIL) with the
p50 of every stage (from ``/diagnostics``), and the node's peak resident memory. The same
figures for the bare ONNX Runtime call on the same frame, with the node's thread settings,
come first. Latency is measured on the stamps: the replayer stamps every frame with the time
it publishes it (one clock on one machine). The gap to the camera: frames answered (a
``~/depth`` received) of frames sent, and the node's output rate over the input rate. A summary
table for the README ends it.

Usage: python -m bench.node_latency [--model M.onnx] [--seconds 20] [--rate 30]
    [--providers cpu] [--points off,on] [--param NAME=VALUE ...]

Without ``--model`` it measures the shipped ``models/vd_cpu.onnx``, else a random-init export
of the CPU preset (``bench/vd_export.py``, made by ``python -m training.export_onnx`` in a
subprocess, so no torch is imported here).
"""

import argparse
import os
import tempfile
import time

from bench.ros_session import bench_frames, NodeSession, start_replay
from bench.vd_export import bench_model
import numpy as np

from vd_ros.core.preprocess import prepare_inputs
from vd_ros.dds_transport import use_large_image_transport
from vd_ros.inference import VDModel

FRAMES = 30  # distinct frames, replayed in a loop
OUTPUTS = ('segmentation', 'segmentation/color', 'depth', 'features', 'features/pca', 'points')


def bare_model_ms(model: VDModel, frame, budget_s: float = 30.0, repeats: int = 30) -> np.ndarray:
    """Return the times in ms of the ORT call with every output on a real frame.

    Calls until ``repeats`` are done or ``budget_s`` is spent (at least 5 calls).
    """
    rgb_in, pde, _ = prepare_inputs(frame.rgb, frame.depth_m, model.contract)
    model.run(rgb_in, pde)  # warm-up
    times = []
    deadline = time.monotonic() + budget_s
    while len(times) < repeats and (len(times) < 5 or time.monotonic() < deadline):
        start = time.perf_counter()
        model.run(rgb_in, pde)
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e3


def peak_rss_mb(pid: int) -> float:
    """Return the peak resident memory (VmHWM) of a process in MB, NaN when unreadable."""
    try:
        with open(f'/proc/{pid}/status') as status:
            for line in status:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float('nan')


def run_node(model_path: str, providers, args, folder: str, points: bool) -> dict:
    """Start the node, replay, and return the figures of the run."""
    topics = [topic for topic in OUTPUTS if points or topic != 'points']
    if not args.segmentation:
        topics = [topic for topic in topics if not topic.startswith('segmentation')]
    if args.confidence:
        topics.append('depth/confidence')
    parameters = {'outputs.points': str(points).lower(),
                  **dict(p.split('=', 1) for p in args.param)}
    loops = max(1, round(args.seconds * args.rate / FRAMES))
    with NodeSession(model_path, providers, os.path.join(folder, f'node_{points}.log'), topics,
                     parameters, topics, timeout=120.0, keep_messages=False) as session:
        camera = start_replay(args.rate, loops, FRAMES,
                              os.path.join(folder, f'replay_{points}.log'))
        camera.wait(timeout=3 * args.seconds + 60)
        time.sleep(3.0)  # the last frame and a diagnostics period
        diagnostics = dict(session.recorder.diagnostics)
        rss = peak_rss_mb(session.process.pid)
    received = session.recorder.received  # topic -> {(sec, nanosec) stamp: (msg, received s)}
    depth = received['depth']
    latencies = np.array([arrival - (sec + nanosec * 1e-9)
                          for (sec, nanosec), (_, arrival) in sorted(depth.items())]) * 1e3
    # Stamp -> the frame's last output received, for frames whose every output arrived.
    last_output = np.array([max(received[topic][stamp][1] for topic in topics)
                            - (stamp[0] + stamp[1] * 1e-9) for stamp in sorted(depth)
                            if all(stamp in received[topic] for topic in topics)]) * 1e3
    done = sorted(time_received for _, time_received in depth.values())
    stages = {key[len('stage_'):-len('_p50_ms')]: float(value)
              for key, value in diagnostics.items()
              if key.startswith('stage_') and key.endswith('_p50_ms')}
    return {'points': points, 'exit_code': session.exit_code, 'sent': loops * FRAMES,
            'answered': len(depth),
            'camera_exit_code': camera.returncode,
            'received': {topic: len(messages)
                         for topic, messages in session.recorder.received.items()},
            'latencies': latencies, 'last_output': last_output, 'stages': stages,
            'rss_mb': rss,
            'rate': (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 else 0.0,
            'drops': {key[len('drops.'):]: int(value) for key, value in diagnostics.items()
                      if key.startswith('drops.') and value != '0'}}


def main():
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', help='ONNX model (default: see above)')
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--providers', default='cpu')
    parser.add_argument('--points', default='off,on',
                        help='runs: off (every output but ~/points), on (with it) or both')
    parser.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                        help='extra node parameter, e.g. intra_op_threads=2 (repeatable)')
    args = parser.parse_args()
    use_large_image_transport()
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 200))
    model_path, described = (args.model, args.model) if args.model else bench_model()
    frames = bench_frames(FRAMES)
    providers = args.providers.split(',')
    threads = int(dict(p.split('=', 1) for p in args.param).get('intra_op_threads', 0))
    load_before = os.getloadavg()
    model = VDModel(model_path, providers, intra_op_threads=threads)
    args.segmentation = 'seg_logits' in model.output_names
    args.confidence = 'depth_uncertainty' in model.output_names
    bare = bare_model_ms(model, frames[0])
    bare_threads = model.intra_op_threads
    del model  # free its threads before the node runs
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for points in args.points.split(','):
            runs.append(run_node(model_path, providers, args, folder, points == 'on'))
    print(f'model: {described}')
    print(f'providers {providers}, {os.cpu_count()} cores, load average (1/5/15 min) '
          f'{"/".join(f"{v:.1f}" for v in load_before)} before, '
          f'{"/".join(f"{v:.1f}" for v in os.getloadavg())} after (shared machine)')
    print(f'\nbare ONNX Runtime call (all outputs, {bare_threads} intra-op thread(s), '
          f'{bare.size} calls): p50 {np.median(bare):.1f} ms, p99 {np.percentile(bare, 99):.1f} '
          f'ms, at most {1e3 / np.median(bare):.1f} Hz back to back')
    for run in runs:
        report(run, args)
    summary(bare, runs, args.rate)


def report(run: dict, args) -> None:
    """Print the figures of one node run."""
    latencies, stages = run['latencies'], run['stages']
    print(f'\nnode, every output subscribed {"with" if run["points"] else "except"} ~/points '
          f'(exit code {run["exit_code"]}, camera {run["camera_exit_code"]}): {run["sent"]} '
          f'frames sent at {args.rate:.0f} Hz '
          f'over {args.seconds:.0f} s; received ' + ', '.join(
              f'{topic} {count}' for topic, count in run['received'].items()))
    print(f'  frames answered {run["answered"]} of {run["sent"]} sent '
          f'({100 * run["answered"] / run["sent"]:.0f} %); node rate / input rate '
          f'{run["rate"] / args.rate:.2f}')
    print(f'  output rate {run["rate"]:.2f} Hz; drops by cause: ' + (', '.join(
        f'{cause} {count}' for cause, count in run['drops'].items()) or 'none'))
    if latencies.size:
        half = latencies.size // 2
        print(f'  end-to-end latency (stamp -> ~/depth received) p50 '
              f'{np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} '
              f'ms; p50 first half {np.median(latencies[:max(half, 1)]):.1f} ms, second half '
              f'{np.median(latencies[half:]):.1f} ms')
    if run['last_output'].size:
        print(f'  latency to the last output of a frame p50 '
              f'{np.percentile(run["last_output"], 50):.1f} ms, p99 '
              f'{np.percentile(run["last_output"], 99):.1f} ms')
    print(f'  per frame p50: model {stages.get("model", np.nan):.1f} ms, non-model '
          f'{non_model_ms(stages):.1f} ms wall ({stages.get("non_model_cpu", np.nan):.1f} ms '
          f'CPU); peak RSS {run["rss_mb"]:.0f} MB')
    print('  stages p50 ms: ' + ', '.join(
        f'{name} {value:.1f}' for name, value in stages.items()))


def non_model_ms(stages: dict) -> float:
    """Return the node's non-model time per frame (its own stage, else process - model)."""
    if 'non_model' in stages:
        return stages['non_model']
    return stages.get('process', np.nan) - stages.get('model', np.nan)


def summary(bare: np.ndarray, runs: list, input_rate: float) -> None:
    """Print the README table: one column for the bare call, one per node run."""
    names = ['bare ORT call'] + [f'node, {"with" if r["points"] else "no"} points'
                                 for r in runs]
    rows = [('output rate [Hz]', [f'{1e3 / np.median(bare):.1f}'] +
             [f'{r["rate"]:.1f}' for r in runs]),
            (f'output rate / input rate ({input_rate:.0f} Hz)',
             [f'{1e3 / np.median(bare) / input_rate:.2f}'] +
             [f'{r["rate"] / input_rate:.2f}' for r in runs]),
            ('frames answered of sent', ['-'] + [
                f'{r["answered"]} of {r["sent"]} ({100 * r["answered"] / r["sent"]:.0f} %)'
                for r in runs]),
            ('latency p50 / p99 [ms]', [f'{np.median(bare):.0f} / {np.percentile(bare, 99):.0f}']
             + [f'{np.percentile(r["latencies"], 50):.0f} / '
                f'{np.percentile(r["latencies"], 99):.0f}' if r['latencies'].size else '-'
                for r in runs]),
            ('latency to the last output p50 / p99 [ms]', ['-'] + [
                f'{np.percentile(r["last_output"], 50):.0f} / '
                f'{np.percentile(r["last_output"], 99):.0f}' if r['last_output'].size else '-'
                for r in runs]),
            ('model call p50 [ms]', [f'{np.median(bare):.0f}'] +
             [f'{r["stages"].get("model", np.nan):.0f}' for r in runs]),
            ('non-model work p50, wall / CPU [ms]', ['-'] + [
                f'{non_model_ms(r["stages"]):.1f} / {r["stages"].get("non_model_cpu", np.nan):.1f}'
                for r in runs]),
            ('drops by cause', ['-'] + [', '.join(f'{c} {n}' for c, n in r['drops'].items())
                                        or 'none' for r in runs]),
            ('peak RSS [MB]', ['-'] + [f'{r["rss_mb"]:.0f}' for r in runs])]
    print('\n| figure | ' + ' | '.join(names) + ' |')
    print('|---|' + '---:|' * len(names))
    for label, values in rows:
        print(f'| {label} | ' + ' | '.join(values) + ' |')


if __name__ == '__main__':
    main()
