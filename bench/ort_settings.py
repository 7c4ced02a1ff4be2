"""ONNX Runtime CPU settings, measured on the bench model: the figures behind the node's choice.

Times the bare ``session.run`` (every output, one real 7-Scenes frame through the node's
preprocessing) for intra-op threads x graph optimisation level x thread-pool spinning, the
session load time with and without an optimised model saved at first load, the fp16 export
against fp32, and the static int8 (QDQ) file of ``training.export.quantize`` against fp32 at 1
and 2 threads when that file exists (ratios printed last). Sessions are timed round-robin, one
call each per round, so a change of the machine's load hits every row alike. Prints wall time
p50 / p90 and CPU time per call (all threads of this process). A figure-printing script, not a
test.

The fp16 rows need the random export (the shipped model has no fp16 twin): run with
``--model models/vd_cpu_random_126x168.onnx`` for them.

Usage: python -m bench.ort_settings [--model M.onnx] [--int8 M_int8.onnx] [--rounds 15]
    [--no-fp16]
"""

import argparse
import hashlib
import json
import os
import tempfile
import time

from bench.ros_session import bench_frames
from bench.vd_export import bench_model, export_random_vd_model, random_export_path
import numpy as np
import onnxruntime as ort

from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INT8_PATH = os.path.join(ROOT, 'models', 'vd_cpu_int8.onnx')
LEVELS = {'disabled': ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
          'basic': ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          'extended': ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          'all': ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session(path: str, threads: int, level: str = 'all', spinning: bool = False,
            save_to: str = None) -> tuple:
    """Open a CPU session, its pool not spinning as in the node; return it and its load time."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = LEVELS[level]
    options.add_session_config_entry('session.intra_op.allow_spinning', '1' if spinning else '0')
    if save_to:
        options.optimized_model_filepath = save_to
    start = time.perf_counter()
    opened = ort.InferenceSession(path, sess_options=options, providers=['CPUExecutionProvider'])
    return opened, time.perf_counter() - start


def int8_parent_note(int8_path: str, path: str) -> str:
    """Return '' when ``int8_path`` was quantised from ``path``, else a warning line."""
    meta = VDModel(int8_path, ['cpu']).contract.training.get('quantization', {})
    with open(path, 'rb') as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()
    if meta.get('parent_sha256') == digest:
        return ''
    return (f'WARNING: {int8_path} was not quantised from {path} (parent SHA-256 '
            f'{json.dumps(meta.get("parent_sha256"))}): re-run python -m '
            'training.export.quantize')


def time_round_robin(sessions: dict, feeds: dict, rounds: int) -> dict:
    """Call every session once per round; return name -> (wall ms, CPU ms) arrays."""
    for opened in sessions.values():
        opened.run(None, feeds)  # warm-up
    times = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, opened in sessions.items():
            wall, cpu = time.perf_counter(), time.process_time()
            opened.run(None, feeds)
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: np.array(values) * 1e3 for name, values in times.items()}


def main():
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', help='ONNX model (default: the bench model, see vd_export)')
    parser.add_argument('--int8', default=INT8_PATH,
                        help='static int8 file of training.export.quantize (rows skipped '
                        'when it does not exist)')
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--no-fp16', action='store_true', help='skip the fp16 export')
    args = parser.parse_args()
    path, described = (args.model, args.model) if args.model else bench_model()
    frame = bench_frames(1)[0]
    contract = VDModel(path, ['cpu']).contract
    rgb_in, pde, _ = prepare_inputs(frame.rgb, frame.depth_m, contract)
    feeds = {'rgb': rgb_in, 'pde': pde}
    sessions, loads = {}, {}
    for threads in (1, 2):
        for level in LEVELS:
            name = f'{threads} thread{"s" if threads > 1 else ""}, {level}'
            sessions[name], loads[name] = session(path, threads, level)
    # Timed on its own after the others: a spinning pool keeps burning CPU after its call,
    # which slowed (and, in this process's CPU time, charged) whichever session ran next.
    spinning = {'2 threads, all, pool spinning': session(path, 2, spinning=True)[0]}
    int8 = os.path.isfile(args.int8)
    if int8:
        for threads in (1, 2):
            name = f'{threads} thread{"s" if threads > 1 else ""}, all, int8'
            sessions[name], loads[name] = session(args.int8, threads)
    with tempfile.TemporaryDirectory() as folder:
        saved = os.path.join(folder, 'optimised.onnx')
        _, first_load = session(path, 1, save_to=saved)
        sessions['1 thread, saved optimised model'], saved_load = session(saved, 1, 'disabled')
        loads['1 thread, saved optimised model'] = saved_load
        if not args.no_fp16 and os.path.abspath(path) == random_export_path():
            fp16_path = export_random_vd_model(
                os.path.join(os.path.dirname(path), 'vd_cpu_random_126x168_fp16.onnx'),
                fp16=True)
            for threads in (1, 2):
                name = f'{threads} thread{"s" if threads > 1 else ""}, all, fp16 export'
                sessions[name], loads[name] = session(fp16_path, threads)
        load_before = os.getloadavg()[0]
        times = time_round_robin(sessions, feeds, args.rounds)
        times.update(time_round_robin(spinning, feeds, args.rounds))
    print(f'model: {described}')
    print(f'ONNX Runtime {ort.__version__}, CPU execution provider, {os.cpu_count()} cores, '
          f'load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; '
          f'{args.rounds} calls per row, round-robin (the spinning pool after the others)')
    print(f'{"setting":<36}{"load ms":>9}{"wall p50":>10}{"wall p90":>10}{"CPU p50":>9}')
    for name, values in times.items():
        load = f'{1e3 * loads[name]:.0f}' if name in loads else '-'
        print(f'{name:<36}{load:>9}{np.median(values[:, 0]):>10.1f}'
              f'{np.percentile(values[:, 0], 90):>10.1f}{np.median(values[:, 1]):>9.1f}')
    print(f'first load at level all, writing the optimised model: {1e3 * first_load:.0f} ms')
    if not int8:
        print(f'int8: {args.int8} not found (make it with python -m training.export.quantize)')
        return
    note = int8_parent_note(args.int8, path)
    print(f'int8 file: {args.int8}' + (f'\n{note}' if note else ' (quantised from this model)'))
    for threads in ('1 thread', '2 threads'):
        fp32, quantised = times[f'{threads}, all'], times[f'{threads}, all, int8']
        ours, theirs = np.median(quantised, axis=0), np.median(fp32, axis=0)  # (wall, CPU) ms
        print(f'int8 / fp32 wall p50 at {threads}: {ours[0]:.1f} / {theirs[0]:.1f} ms = '
              f'{ours[0] / theirs[0]:.2f} (CPU time {ours[1] / theirs[1]:.2f})')


if __name__ == '__main__':
    main()
