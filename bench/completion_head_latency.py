"""What the completion head adds to a bare ONNX Runtime call of the CPU preset.

Exports the CPU preset (``training/configs/cpu.yaml``, random weights: the time does not depend
on them) at 126x168 twice, without and with a completion head (``completed_depth``), and times
``session.run`` of every output on one real frame, one ORT thread as the node runs, the two
sessions round-robin so that a change of the machine's load hits both alike. Prints wall time
p50 / p90 and CPU time per call, and the head's share. A figure-printing script, not a test.

Usage: python -m bench.completion_head_latency [--rounds 30]
"""

import argparse
import os
import tempfile

from bench.ort_settings import session, time_round_robin
from bench.ros_session import bench_frames
from bench.vd_export import CPU_PRESET, CPU_PRESET_SIZE
import numpy as np
import torch

from training.engine.config import load_config, to_plain
from training.export.exporter import export_onnx
from training.models import build_model
from training.models.completion_head import build_completion_head
from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel


def main():
    """Export both models, time them and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(to_plain(load_config([CPU_PRESET]))['model']).eval()
    head = build_completion_head(model).eval()
    with tempfile.TemporaryDirectory() as folder:
        paths = {'without head': os.path.join(folder, 'plain.onnx'),
                 'with completion head': os.path.join(folder, 'head.onnx')}
        export_onnx(model, None, paths['without head'], CPU_PRESET_SIZE)
        export_onnx(model, None, paths['with completion head'], CPU_PRESET_SIZE,
                    completion_head=head)
        frame = bench_frames(1)[0]
        contract = VDModel(paths['with completion head'], ['cpu']).contract
        rgb_in, pde, _ = prepare_inputs(frame.rgb, frame.depth_m, contract)
        sessions = {name: session(path, 1)[0] for name, path in paths.items()}
        load_before = os.getloadavg()[0]
        times = time_round_robin(sessions, {'rgb': rgb_in, 'pde': pde}, args.rounds)
    print(f'CPU preset {CPU_PRESET_SIZE[0]}x{CPU_PRESET_SIZE[1]}, ONNX Runtime CPU, 1 thread, '
          f'{args.rounds} calls per row round-robin; load average {load_before:.1f} before, '
          f'{os.getloadavg()[0]:.1f} after; completion head '
          f'{sum(p.numel() for p in head.parameters()) / 1e3:.1f} k parameters')
    print(f'{"model":<24}{"wall p50":>10}{"wall p90":>10}{"CPU p50":>9}')
    for name, values in times.items():
        print(f'{name:<24}{np.median(values[:, 0]):>10.1f}{np.percentile(values[:, 0], 90):>10.1f}'
              f'{np.median(values[:, 1]):>9.1f}')
    added = np.median(times['with completion head'][:, 1]) - np.median(
        times['without head'][:, 1])
    print(f'completion head adds {added:.1f} ms CPU per call (p50 difference)')


if __name__ == '__main__':
    main()
