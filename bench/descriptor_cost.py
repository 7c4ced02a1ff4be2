"""What the descriptor head costs: the model call with and without it, against a baseline model.

Times the bare ``VDModel.run`` call (CPU provider, sub-graph of the requested outputs) of a
baseline model (the shipped one, no descriptor head) and of exports with a descriptor head,
for every output and for every output but ``descriptors``, alternated call by call on one real
frame through the node's preprocessing. Prints CPU and wall ms per call (median) and the ratio
of each to the baseline's call for all its outputs.

Usage: python -m bench.descriptor_cost --models BASE.onnx WITH_HEAD.onnx [...] [--calls 40]
    [--threads 1]
"""

import argparse
import os
import time

from bench.ros_session import bench_frames
import numpy as np

from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel


def output_sets(model: VDModel) -> dict:
    """Return the timed output sets of a model: all, and all but descriptors if it has them."""
    names = list(model.output_names)
    sets = {'all outputs': names}
    if 'descriptors' in names:
        sets['all but descriptors'] = [name for name in names if name != 'descriptors']
    return sets


def main() -> None:
    """Time every model and output set, alternated, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', required=True,
                        help='ONNX files; the first is the baseline')
    parser.add_argument('--calls', type=int, default=40)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    models = [VDModel(path, ['cpu'], intra_op_threads=args.threads) for path in args.models]
    frame = bench_frames(1)[0]
    inputs = [prepare_inputs(frame.rgb, frame.depth_m, model.contract)[:2] for model in models]
    runs = [(index, name, outputs) for index, model in enumerate(models)
            for name, outputs in output_sets(model).items()]
    for index, _, outputs in runs:
        models[index].run(*inputs[index], outputs)
    for model in models:
        model.wait_for_sub_sessions()
    cpu = {run[:2]: [] for run in runs}
    wall = {run[:2]: [] for run in runs}
    for _ in range(args.calls):
        for index, name, outputs in runs:
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            models[index].run(*inputs[index], outputs)
            cpu[index, name].append(1e3 * (time.process_time() - start_cpu))
            wall[index, name].append(1e3 * (time.perf_counter() - start_wall))
    base_cpu = np.median(cpu[0, 'all outputs'])
    base_wall = np.median(wall[0, 'all outputs'])
    print(f'{args.threads} intra-op thread(s), {args.calls} calls each, alternated; ms per '
          'call, median; ratio to the first model, all outputs')
    print('| model | outputs | CPU ms | ratio | wall ms | ratio |\n|---|---|---:|---:|---:|---:|')
    for index, name, outputs in runs:
        cpu_ms, wall_ms = np.median(cpu[index, name]), np.median(wall[index, name])
        print(f'| {os.path.basename(args.models[index])} | {name} ({len(outputs)}) | '
              f'{cpu_ms:.1f} | {cpu_ms / base_cpu:.3f} | {wall_ms:.1f} | '
              f'{wall_ms / base_wall:.3f} |')


if __name__ == '__main__':
    main()
