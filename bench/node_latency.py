"""End-to-end latency and throughput of the perception node, against the bare model call.

Replays real 7-Scenes frames at 30 Hz through the node (a separate process, as on a robot) over
real DDS with every output subscribed (point cloud included), and prints: the end-to-end
latency (input stamp to ``~/depth`` received) p50/p99, the sustained output rate, the node's
time per frame (its ``process`` stage: decode to last publish, from ``/diagnostics``) divided by
the bare ONNX Runtime call on the same inputs (target overhead < 15 %), and where the time goes
per stage.

Usage: python -m bench.node_latency [--model M.onnx] [--seconds 30] [--rate 30] [--providers cpu]

Without ``--model`` it measures a VD-sized model: ``python -m training.export_onnx`` (random
init ViT-S/14 RGB and depth branches at 336x448) run in a subprocess, so no torch is imported
here, and cached as ``models/bench_vd_336x448.onnx``. When the export is unavailable or fails it
falls back to the tiny contract test model and says so (the ratio then mostly shows the fixed
pre/post-processing cost). A model without ``seg_logits`` (no segmentation head) publishes no
segmentation; the bench then times the segmentation post-processing in this process on logits
shaped like a linear head's (41 classes on the patch grid) and says so.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

from bench.ros_session import OutputRecorder, ROOT, start_node, stop_node
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Header

from vd_ros.core.postprocess import colorize_labels, labels_from_logits
from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel
from vd_ros.replay import frame_messages, load_frames, SAMPLE_DIR

SHARED = os.environ.get('VD_ROS_SHARED', os.path.join(ROOT, '..', 'shared'))
OUTPUTS = ('segmentation', 'segmentation/color', 'depth', 'features', 'features/pca', 'points')
VD_MODEL = os.path.join(ROOT, 'models', 'bench_vd_336x448.onnx')
STAGES = ('decode', 'prepare_inputs', 'model', 'segmentation', 'segmentation_color', 'depth',
          'points', 'features', 'features_pca', 'process')


def export_vd_model(path: str = VD_MODEL) -> str:
    """Export (or reuse) the random-init VD model at 336x448; return why it failed, or ''."""
    if os.path.isfile(path):
        return ''
    if not os.path.isfile(os.path.join(ROOT, 'training', 'export_onnx.py')):
        return 'training/export_onnx.py is not in this checkout'
    print(f'exporting a random-init VD model to {path} (about a minute on 2 CPU cores)...',
          flush=True)
    result = subprocess.run([sys.executable, '-m', 'training.export_onnx', '--output', path,
                             '--input-size', '336', '448'],
                            cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0 or not os.path.isfile(path):
        return f'training.export_onnx exited {result.returncode}: {result.stderr[-400:]}'
    return ''


def tiny_model(folder: str) -> str:
    """Build the tiny contract model at 336x448 (test helper) and return its path."""
    sys.path.insert(0, os.path.join(ROOT, 'test'))
    from contract_model import build_contract_model, tiny_contract

    path = os.path.join(folder, 'contract_336x448.onnx')
    build_contract_model(path, tiny_contract(336, 448, channels=32, feature_dim=64))
    return path


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


def segmentation_ms(frame, contract, classes: int = 41, repeats: int = 10) -> dict:
    """Time labels and overlay in this process on linear-head-shaped logits (K on patch grid)."""
    _, _, letterbox = prepare_inputs(frame.rgb, frame.depth_m, contract)
    grid = [size // contract.patch_size for size in contract.input_size]
    logits = np.random.default_rng(0).standard_normal([classes] + grid).astype(np.float32)
    times = {'segmentation': [], 'segmentation_color': []}
    for _ in range(repeats):
        start = time.perf_counter()
        labels = labels_from_logits(logits, letterbox)
        middle = time.perf_counter()
        colorize_labels(labels, frame.rgb)
        times['segmentation'].append(middle - start)
        times['segmentation_color'].append(time.perf_counter() - middle)
    return {name: float(np.median(values) * 1e3) for name, values in times.items()}


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
    rclpy.init()
    recorder = OutputRecorder(OUTPUTS)
    executor = SingleThreadedExecutor()
    executor.add_node(recorder)
    threading.Thread(target=executor.spin, daemon=True).start()
    process = start_node(model_path, providers, os.path.join(folder, 'node.log'),
                         {'outputs.points': 'true'})
    try:
        recorder.wait_ready(process, timeout=120.0, topics=topics)
        sent = replay(recorder, frames, args.seconds, args.rate)
        time.sleep(3.0 + 2 * args.expected_frame_s)  # the last frame and a diagnostics period
        diagnostics = dict(recorder.diagnostics)
    finally:
        code = stop_node(process)
        executor.shutdown(timeout_sec=2.0)
        recorder.destroy_node()
        rclpy.try_shutdown()
    return sent, recorder, diagnostics, code


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
            failure = export_vd_model()
            if failure:
                model_path = tiny_model(folder)
                described = ('NOTE: tiny contract test model 336x448, NOT VD-sized (' + failure +
                             '); the ratio mostly shows the fixed pre/post-processing cost')
            else:
                model_path = VD_MODEL
                described = (f'{VD_MODEL}: random-init VD (ViT-S/14 RGB + depth branches, '
                             '336x448, untrained: timing only)')
        model = VDModel(model_path, providers)
        contract, outputs = model.contract, model.output_names
        bare_ms, calls = bare_model_ms(model, frames[0])
        del model  # free its threads before the node runs
        args.expected_frame_s = bare_ms / 1e3
        topics = [topic for topic in OUTPUTS
                  if 'seg_logits' in outputs or not topic.startswith('segmentation')]
        sent, recorder, diagnostics, code = run_node(model_path, providers, frames, args,
                                                     folder, topics)
    load_after = os.getloadavg()
    report(args, described, providers, code, sent, recorder, diagnostics, bare_ms, calls,
           None if 'seg_logits' in outputs else segmentation_ms(frames[0], contract),
           (load_before, load_after))


def report(args, described, providers, code, sent, recorder, diagnostics, bare_ms, calls,
           offline_segmentation, loads):
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
    if offline_segmentation:
        print('  (the model has no seg_logits output; segmentation post-processing timed in the '
              'bench process on 41-class patch-grid logits at 640x480: labels '
              f'{offline_segmentation["segmentation"]:.1f} ms, overlay '
              f'{offline_segmentation["segmentation_color"]:.1f} ms)')
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
