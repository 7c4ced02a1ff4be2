"""End-to-end latency and throughput of the perception node, against the bare model call.

Replays real frames at 30 Hz through the node (a separate process, as on a robot) over real
DDS, and prints the end-to-end latency (input stamp to output received) p50/p99, the sustained
output rate, and the node's time per frame (pair received to last output published, from its
/diagnostics) divided by the bare ONNX Runtime call on the same inputs (target overhead < 15 %).

Usage: python -m bench.node_latency [--model M.onnx] [--seconds 20] [--providers cpu]
Without --model it measures the tiny contract test model at 336x448 input (not VD-sized: the
ratio then mostly shows the fixed pre/post-processing cost).
"""

import argparse
import os
import sys
import tempfile
import threading
import time

from bench.ros_session import OutputRecorder, ROOT, start_node, stop_node
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Header

from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel
from vd_ros.replay import frame_messages, load_frames, SAMPLE_DIR

SHARED = os.environ.get('VD_ROS_SHARED', os.path.join(ROOT, '..', 'shared'))
OUTPUTS = ('segmentation', 'segmentation/color', 'depth', 'features', 'features/pca')


def default_model(folder: str) -> str:
    """Build the tiny contract model at 336x448 (test helper) and return its path."""
    sys.path.insert(0, os.path.join(ROOT, 'test'))
    from contract_model import build_contract_model, tiny_contract

    path = os.path.join(folder, 'contract_336x448.onnx')
    build_contract_model(path, tiny_contract(336, 448, channels=32, feature_dim=64))
    return path


def bare_model_ms(model: VDModel, frame, repeats: int = 20) -> float:
    """Return the median time in ms of one ORT call with every output, on a real frame."""
    rgb_in, pde, _ = prepare_inputs(frame.rgb, frame.depth_m, model.contract)
    model.run(rgb_in, pde)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.run(rgb_in, pde)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main():
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', help='ONNX model (default: tiny contract model)')
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--providers', default='cpu')
    args = parser.parse_args()
    os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 200))
    kitchen = os.path.join(SHARED, 'data', '7scenes_redkitchen')
    source = kitchen if os.path.isdir(kitchen) else SAMPLE_DIR
    frames = load_frames(source, count=30, step=5 if source == kitchen else 1)
    providers = args.providers.split(',')
    with tempfile.TemporaryDirectory() as folder:
        model_path = args.model or default_model(folder)
        model = VDModel(model_path, providers)
        bare_ms = bare_model_ms(model, frames[0])
        del model  # free its threads before the node runs
        rclpy.init()
        recorder = OutputRecorder(OUTPUTS)
        executor = SingleThreadedExecutor()
        executor.add_node(recorder)
        threading.Thread(target=executor.spin, daemon=True).start()
        process = start_node(model_path, providers, os.path.join(folder, 'node.log'))
        try:
            recorder.wait_ready(process)
            messages = [frame_messages(f, Header(frame_id='camera')) for f in frames]
            sent, period = [], 1.0 / args.rate
            start = time.monotonic()
            while time.monotonic() - start < args.seconds:
                rgb, depth, info = messages[len(sent) % len(messages)]
                recorder.frames.publish(rgb, depth, info)
                sent.append(((rgb.header.stamp.sec, rgb.header.stamp.nanosec),
                             rgb.header.stamp.sec + rgb.header.stamp.nanosec * 1e-9))
                time.sleep(max(0.0, start + len(sent) * period - time.monotonic()))
            time.sleep(3.0)
            diagnostics = dict(recorder.diagnostics)
        finally:
            code = stop_node(process)
            executor.shutdown(timeout_sec=2.0)
            recorder.destroy_node()
            rclpy.try_shutdown()
    depth = recorder.received['depth']
    latencies = np.array([depth[s][1] - t for s, t in sent if s in depth]) * 1e3
    done = sorted(received for _, received in depth.values())
    rate = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 else 0.0
    node_ms = float(diagnostics.get('latency_p50_ms', 'nan'))
    print(f'model: {model_path if args.model else "tiny contract model 336x448 (test helper)"}'
          f', providers {providers}, node exit code {code}')
    print(f'frames sent: {len(sent)} at {args.rate:.0f} Hz over {args.seconds:.0f} s; '
          f'outputs received: {len(latencies)}')
    if latencies.size:
        print(f'end-to-end latency (stamp -> ~/depth received): p50 '
              f'{np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms')
    print(f'sustained output rate: {rate:.2f} Hz; node drops: ' + ', '.join(
        f'{k[6:]} {v}' for k, v in diagnostics.items() if k.startswith('drops.') and v != '0'))
    print(f'bare ORT call (all outputs): {bare_ms:.1f} ms; node time per frame p50 '
          f'{node_ms:.1f} ms (its ORT call p50 {float(diagnostics.get("model_p50_ms", "nan")):.1f}'
          f' ms); ratio node / bare = {node_ms / bare_ms:.2f} '
          f'(overhead {100 * (node_ms / bare_ms - 1):.0f} %, target < 15 %)')


if __name__ == '__main__':
    main()
