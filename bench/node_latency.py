"""End-to-end latency and throughput of the perception node, against the bare model call.

Replays real 7-Scenes frames at 30 Hz through the node (a separate process, as on a robot) over
real DDS with every output subscribed (point cloud included), and prints: the end-to-end
latency (input stamp to ``~/depth`` received) p50/p99, the sustained output rate, the node's
time per frame (its ``process`` stage: decode to last publish, from ``/diagnostics``) divided by
the bare ONNX Runtime call on the same inputs (target overhead < 15 %), and where the time goes
per stage.

Usage: python -m bench.node_latency [--model M.onnx] [--seconds 30] [--rate 30] [--providers cpu]

Without ``--model`` it measures a VD-sized model exported by ``bench/vd_export.py`` (random
init ViT-S/14 RGB and depth branches at 336x448 with an untrained 22-class linear head, made by
``python -m training.export_onnx`` in a subprocess, so no torch is imported here).
"""

import argparse
import os
import tempfile
import time

from bench.ros_session import NodeSession, OutputRecorder, ROOT
from bench.vd_export import export_random_vd_model
import numpy as np
from std_msgs.msg import Header

from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel
from vd_ros.replay import frame_messages, load_frames, SAMPLE_DIR

SHARED = os.environ.get('VD_ROS_SHARED', os.path.join(ROOT, '..', 'shared'))
OUTPUTS = ('segmentation', 'segmentation/color', 'depth', 'features', 'features/pca', 'points')
STAGES = ('decode', 'prepare_inputs', 'model', 'segmentation', 'segmentation_color', 'depth',
          'points', 'features', 'features_pca', 'process')


def bare_model_ms(model: VDModel, frame, budget_s: float = 30.0, repeats: int = 20) -> tuple:
    """Return (median ms, calls) of the ORT call with every output on a real frame.

    Calls until ``repeats`` are done or ``budget_s`` is spent (at least 3 calls).
    """
    rgb_in, pde, _ = prepare_inputs(frame.rgb, frame.depth_m, model.contract)
    model.run(rgb_in, pde)  # warm-up
    times = []
    deadline = time.monotonic() + budget_s
    while len(times) < repeats and (len(times) < 3 or time.monotonic() < deadline):
        start = time.perf_counter()
        model.run(rgb_in, pde)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3), len(times)


def replay(recorder: OutputRecorder, frames, seconds: float, rate: float) -> list:
    """Publish the frames in a loop at ``rate`` Hz; return [(stamp key, stamp seconds)]."""
    messages = [frame_messages(f, Header(frame_id='camera')) for f in frames]
    sent, period = [], 1.0 / rate
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        rgb, depth, info = messages[len(sent) % len(messages)]
        recorder.frames.publish(rgb, depth, info)
        sent.append(((rgb.header.stamp.sec, rgb.header.stamp.nanosec),
                     rgb.header.stamp.sec + rgb.header.stamp.nanosec * 1e-9))
        time.sleep(max(0.0, start + len(sent) * period - time.monotonic()))
    return sent


def run_node(model_path: str, providers, frames, args, folder: str, topics) -> tuple:
    """Start the node, replay, return (sent, recorder, diagnostics, exit code)."""
    with NodeSession(model_path, providers, os.path.join(folder, 'node.log'), OUTPUTS,
                     {'outputs.points': 'true'}, topics, timeout=120.0) as session:
        sent = replay(session.recorder, frames, args.seconds, args.rate)
        time.sleep(3.0 + 2 * args.expected_frame_s)  # the last frame and a diagnostics period
        diagnostics = dict(session.recorder.diagnostics)
    return sent, session.recorder, diagnostics, session.exit_code


def main():
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', help='ONNX model (default: VD-sized export, see above)')
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--providers', default='cpu')
    args = parser.parse_args()
    os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 200))
    kitchen = os.path.join(SHARED, 'data', '7scenes_redkitchen')
    source = kitchen if os.path.isdir(kitchen) else SAMPLE_DIR
    frames = load_frames(source, count=30, step=5 if source == kitchen else 1)
    providers = args.providers.split(',')
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        if args.model:
            model_path, described = args.model, args.model
        else:
            model_path = export_random_vd_model()
            described = (f'{model_path}: random-init VD (ViT-S/14 RGB + depth branches, '
                         '336x448, untrained linear head: timing only)')
        model = VDModel(model_path, providers)
        outputs = model.output_names
        bare_ms, calls = bare_model_ms(model, frames[0])
        del model  # free its threads before the node runs
        args.expected_frame_s = bare_ms / 1e3
        topics = [topic for topic in OUTPUTS
                  if 'seg_logits' in outputs or not topic.startswith('segmentation')]
        sent, recorder, diagnostics, code = run_node(model_path, providers, frames, args,
                                                     folder, topics)
    load_after = os.getloadavg()
    report(args, described, providers, code, sent, recorder, diagnostics, bare_ms, calls,
           (load_before, load_after))


def report(args, described, providers, code, sent, recorder, diagnostics, bare_ms, calls,
           loads):
    """Print the figures."""
    depth = recorder.received['depth']
    latencies = np.array([depth[s][1] - t for s, t in sent if s in depth]) * 1e3
    done = sorted(received for _, received in depth.values())
    rate = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 else 0.0
    stage = {name: float(diagnostics.get(f'stage_{name}_p50_ms', 'nan')) for name in STAGES}
    print(f'model: {described}')
    print(f'providers {providers}, node exit code {code}; CPU: {os.cpu_count()} cores, load '
          f'average {loads[0][0]:.1f} before, {loads[1][0]:.1f} after (shared machine)')
    print(f'frames sent: {len(sent)} at {args.rate:.0f} Hz over {args.seconds:.0f} s; '
          f'depth outputs received: {len(latencies)}; all outputs received: ' + ', '.join(
              f'{topic} {len(messages)}' for topic, messages in recorder.received.items()))
    if latencies.size:
        print(f'end-to-end latency (stamp -> ~/depth received): p50 '
              f'{np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms')
    print(f'sustained output rate: {rate:.2f} Hz; node drops: ' + (', '.join(
        f'{k[6:]} {v}' for k, v in diagnostics.items() if k.startswith('drops.') and v != '0')
        or 'none'))
    print('per-stage wall time in the node, p50 ms (from /diagnostics):')
    for name in STAGES:
        print(f'  {name:20s} {stage[name]:8.1f}')
    print(f'node statistics: pair received -> last output published p50 '
          f'{float(diagnostics.get("latency_p50_ms", "nan")):.1f} ms (includes waiting in the '
          f'mailbox), its ORT call p50 {float(diagnostics.get("model_p50_ms", "nan")):.1f} ms')
    node_ms, overhead_ms = stage['process'], stage['process'] - stage['model']
    print(f'bare ORT call (all outputs, median of {calls}): {bare_ms:.1f} ms; node time per '
          f'frame p50 {node_ms:.1f} ms (its own ORT call {stage["model"]:.1f} ms, everything '
          f'else {overhead_ms:.1f} ms)')
    print(f'ratio node / bare ORT = {node_ms / bare_ms:.2f}; node overhead = '
          f'{100 * overhead_ms / bare_ms:.1f} % of the bare call (target < 15 %)')


if __name__ == '__main__':
    main()
