"""End-to-end latency and throughput of the perception node, against the bare model call.

Replays real 7-Scenes 640x480 frames at 30 Hz (``vd_ros_replay`` in its own process, as a
camera driver is) through the node (another process) over real DDS with every output
subscribed (``~/depth/confidence`` too for a model with ``depth_uncertainty``, unless
``--confidence off``, and ``~/descriptors`` with ``~/descriptors/pca`` for a model with
``descriptors``), once without
and once with ``~/points``, and prints for each run: the sustained
output rate, the end-to-end latency (input stamp to ``~/depth`` received) p50/p99 (and both
for the first and the second half of the run: a queue would make them grow) and to the last
output of each frame (every subscribed topic received), the drops by cause, the CPU each
process used while the camera sent (node, camera, this recorder: cores busy), the
node's time per frame split into the model call and everything else (non-model work: its wall
time, and its CPU time, which leaves out the waits for a core and for the GIL) with the
p50 of every stage (from ``/diagnostics``), and the node's peak resident memory. The same
figures for the bare ONNX Runtime call on the same frame, with the node's thread settings,
come first. Latency is measured on the stamps: the replayer stamps every frame with the time
it publishes it (one clock on one machine). The gap to the camera: frames answered (a
``~/depth`` received) of frames sent, and the node's output rate over the input rate. A summary
table for the README ends it.

Usage: python -m bench.node_latency [--model M.onnx ...] [--seconds 20] [--rate 30]
    [--providers cpu] [--points off,on] [--confidence on|off|off,on] [--rounds 1]
    [--param NAME=VALUE ...]

Without ``--model`` it measures the shipped ``models/vd_cpu.onnx``, else a random-init export
of the CPU preset (``bench/vd_export.py``, made by ``python -m training.export_onnx`` in a
subprocess, so no torch is imported here). Comparisons on a shared machine: give several
``--model`` files, ``--confidence off,on`` (a model with ``depth_uncertainty`` runs once
without and once with ``~/depth/confidence`` subscribed; the node then neither computes nor
publishes it) and ``--rounds N``: every variant (model x confidence x points) runs in turn,
N times over, the bare call of each model before its node runs in every round, and a last
table gives each variant's rates per round and their mean against the first variant's; then
the models' bare calls are made in turn (A, B, A, B, ...), which is robust to a changing load,
with the per-pair ratio of their wall and CPU times.
"""

import argparse
import os
import tempfile
import time

from bench.process_cpu import CpuWindow
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


def paired_bare_ms(paths: list, providers, threads: int, frame, pairs: int = 40) -> dict:
    """Call the models in turn on one frame (A, B, A, B, ...): wall and CPU ms per call.

    On a shared machine the load changes between two blocks of calls; calls in turn see the
    same load, so the per-pair ratio of two files' times is their cost ratio. The CPU time
    (``time.thread_time`` of this thread) counts ONNX Runtime's work only with one intra-op
    thread (it then runs in the calling thread).

    Returns:
        path -> ``(wall ms, CPU ms)`` arrays of ``pairs`` calls each.
    """
    models = [VDModel(path, providers, intra_op_threads=threads) for path in paths]
    inputs = [prepare_inputs(frame.rgb, frame.depth_m, model.contract)[:2] for model in models]
    for model, (rgb_in, pde) in zip(models, inputs):
        model.run(rgb_in, pde)  # warm-up
    times = {path: ([], []) for path in paths}
    for _ in range(pairs):
        for path, model, (rgb_in, pde) in zip(paths, models, inputs):
            start, start_cpu = time.perf_counter(), time.thread_time()
            model.run(rgb_in, pde)
            times[path][0].append(time.perf_counter() - start)
            times[path][1].append(time.thread_time() - start_cpu)
    return {path: (np.array(wall) * 1e3, np.array(cpu) * 1e3)
            for path, (wall, cpu) in times.items()}


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


def run_node(model_path: str, providers, args, folder: str, points: bool,
             segmentation: bool = True, confidence: bool = False, label: str = '',
             descriptors: bool = False) -> dict:
    """Start the node, replay, and return the figures of the run.

    ``segmentation`` / ``confidence`` / ``descriptors``: subscribe those topics (the model has
    the outputs).
    """
    topics = [topic for topic in OUTPUTS if points or topic != 'points']
    if not segmentation:
        topics = [topic for topic in topics if not topic.startswith('segmentation')]
    if confidence:
        topics.append('depth/confidence')
    if descriptors:
        topics += ['descriptors', 'descriptors/pca']
    parameters = {'outputs.points': str(points).lower(),
                  **dict(p.split('=', 1) for p in args.param)}
    loops = max(1, round(args.seconds * args.rate / FRAMES))
    name = f'{label}{points}'
    with NodeSession(model_path, providers, os.path.join(folder, f'node_{name}.log'), topics,
                     parameters, topics, timeout=120.0, keep_messages=False) as session:
        camera = start_replay(args.rate, loops, FRAMES,
                              os.path.join(folder, f'replay_{name}.log'))
        cpu = CpuWindow({'node': session.process.pid, 'camera': camera.pid,
                         'recorder': os.getpid()})
        deadline = time.monotonic() + 3 * args.seconds + 60
        while camera.poll() is None and time.monotonic() < deadline:
            if not cpu.started and session.recorder.received['depth']:
                cpu.start()  # from the first answer to the camera's last frame
            cpu.sample()
            time.sleep(0.1)
        camera.wait(timeout=max(deadline - time.monotonic(), 1.0))
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
    return {'points': points, 'confidence': confidence, 'model': model_path,
            'exit_code': session.exit_code, 'sent': loops * FRAMES, 'answered': len(depth),
            'camera_exit_code': camera.returncode,
            'received': {topic: len(messages)
                         for topic, messages in session.recorder.received.items()},
            'latencies': latencies, 'last_output': last_output, 'stages': stages,
            'rss_mb': rss, 'cpu_cores': cpu.cores(),
            'rate': (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 else 0.0,
            'drops': {key[len('drops.'):]: int(value) for key, value in diagnostics.items()
                      if key.startswith('drops.') and value != '0'}}


def main():
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', action='append', default=[],
                        help='ONNX model (default: see above; repeatable: run in turn)')
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--providers', default='cpu')
    parser.add_argument('--points', default='off,on',
                        help='runs: off (every output but ~/points), on (with it) or both')
    parser.add_argument('--confidence', default='on',
                        help='~/depth/confidence subscribed for a model with depth_uncertainty: '
                        'on, off or off,on (both runs)')
    parser.add_argument('--rounds', type=int, default=1,
                        help='run every variant in turn this many times')
    parser.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                        help='extra node parameter, e.g. intra_op_threads=2 (repeatable)')
    args = parser.parse_args()
    choices = {'on': True, 'off': False}
    confidence = args.confidence.split(',')
    if any(value not in choices for value in confidence) or args.rounds < 1:
        parser.error(f'--confidence takes on, off or off,on (got {args.confidence!r}); '
                     f'--rounds at least 1 (got {args.rounds})')
    use_large_image_transport()
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 200))
    models = [(path, path) for path in args.model] or [bench_model()]
    if len({path for path, _ in models}) < len(models):
        parser.error('a --model is given twice: the variants are told apart by their files')
    frames = bench_frames(FRAMES)
    providers = args.providers.split(',')
    threads = int(dict(p.split('=', 1) for p in args.param).get('intra_op_threads', 0))
    load_before = os.getloadavg()
    bare, runs = {}, []
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(args.rounds):
            for model_index, (model_path, _) in enumerate(models):
                model = VDModel(model_path, providers, intra_op_threads=threads)
                outputs = model.output_names
                bare.setdefault(model_path, []).append(
                    (bare_model_ms(model, frames[0]), model.intra_op_threads))
                del model  # free its threads before the node runs
                subscribe = sorted({choices[value] and 'depth_uncertainty' in outputs
                                    for value in confidence})
                for wanted in subscribe:
                    for points in args.points.split(','):
                        run = run_node(model_path, providers, args, folder, points == 'on',
                                       'seg_logits' in outputs, wanted,
                                       f'{round_index}_{model_index}_{wanted}_',
                                       'descriptors' in outputs)
                        run['round'], run['variant'] = round_index, (model_index, wanted)
                        runs.append(run)
    paired = paired_bare_ms([path for path, _ in models], providers, threads, frames[0]) \
        if len(models) > 1 else None
    load_after = os.getloadavg()
    for model_path, described in models:
        print(f'model: {described}')
    print(f'providers {providers}, {os.cpu_count()} cores, load average (1/5/15 min) '
          f'{"/".join(f"{v:.1f}" for v in load_before)} before, '
          f'{"/".join(f"{v:.1f}" for v in load_after)} after (shared machine)')
    for model_path, described in models:
        for times, bare_threads in bare[model_path]:
            print(f'\nbare ONNX Runtime call of {os.path.basename(described)} (all outputs, '
                  f'{bare_threads} intra-op thread(s), {times.size} calls): p50 '
                  f'{np.median(times):.1f} ms, p99 {np.percentile(times, 99):.1f} ms, at most '
                  f'{1e3 / np.median(times):.1f} Hz back to back')
    for run in runs:
        report(run, args)
    if len(models) == 1 and len({r['confidence'] for r in runs}) == 1 and args.rounds == 1:
        summary(bare[models[0][0]][0][0], runs, args.rate)
    else:
        comparison(runs, bare, dict(models), paired)


def variant_name(run: dict, described: dict) -> str:
    """Return a variant's label: model (number and file), confidence subscription, points."""
    return (f'{run["variant"][0] + 1}: {os.path.basename(described[run["model"]])}, '
            '~/depth/confidence '
            f'{"subscribed" if run["confidence"] else "not subscribed"}, '
            f'{"with" if run["points"] else "no"} points')


def comparison(runs: list, bare: dict, described: dict, paired: dict = None) -> None:
    """Print each variant's output rate per round, the mean and the ratio to the first one.

    ``paired``: :func:`paired_bare_ms` of the models, or None.
    """
    variants = {}
    for run in runs:
        variants.setdefault(variant_name(run, described), []).append(run)
    rounds = max(run['round'] for run in runs) + 1
    print('\n| variant | ' + ' | '.join(f'round {i + 1} [Hz]' for i in range(rounds)) +
          ' | mean [Hz] | vs first | non-model CPU p50 [ms] | model call p50 [ms] |')
    print('|---|' + '---:|' * (rounds + 4))
    first = None
    for name, group in variants.items():
        mean = float(np.mean([run['rate'] for run in group]))
        first = mean if first is None else first
        cpu = np.mean([run['stages'].get('non_model_cpu', np.nan) for run in group])
        model = np.mean([run['stages'].get('model', np.nan) for run in group])
        print(f'| {name} | ' + ' | '.join(f'{run["rate"]:.2f}' for run in group) +
              f' | {mean:.2f} | {mean / first - 1.0:+.1%} | {cpu:.1f} | {model:.1f} |')
    print('\n| model | bare call p50 per round [ms] | mean [ms] |')
    print('|---|---|---:|')
    for path, entries in bare.items():
        medians = [float(np.median(times)) for times, _ in entries]
        print(f'| {os.path.basename(described[path])} | '
              + ' / '.join(f'{value:.1f}' for value in medians)
              + f' | {np.mean(medians):.1f} |')
    if not paired:
        return
    first = next(iter(paired))
    print(f'\nbare calls in turn ({len(paired[first][0])} per model): p50 wall / CPU [ms], and '
          'the p50 of the per-pair ratio to the first model')
    print('| model | wall p50 [ms] | CPU p50 [ms] | wall ratio p50 | CPU ratio p50 |')
    print('|---|---:|---:|---:|---:|')
    for path, (wall, cpu) in paired.items():
        print(f'| {os.path.basename(described[path])} | {np.median(wall):.1f} | '
              f'{np.median(cpu):.1f} | {np.median(wall / paired[first][0]):.3f} | '
              f'{np.median(cpu / paired[first][1]):.3f} |')


def report(run: dict, args) -> None:
    """Print the figures of one node run."""
    latencies, stages = run['latencies'], run['stages']
    print(f'\nnode ({os.path.basename(run["model"])}, round {run.get("round", 0) + 1}), '
          f'every output subscribed{" (~/depth/confidence too)" if run["confidence"] else ""} '
          f'{"with" if run["points"] else "except"} ~/points '
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
        first, second = halves(latencies)
        print(f'  end-to-end latency (stamp -> ~/depth received) p50 '
              f'{np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} '
              f'ms; first half p50 / p99 {np.median(first):.1f} / '
              f'{np.percentile(first, 99):.1f} ms, second half '
              f'{np.median(second):.1f} / {np.percentile(second, 99):.1f} ms')
    if run['last_output'].size:
        print(f'  latency to the last output of a frame p50 '
              f'{np.percentile(run["last_output"], 50):.1f} ms, p99 '
              f'{np.percentile(run["last_output"], 99):.1f} ms')
    print(f'  per frame p50: model {stages.get("model", np.nan):.1f} ms, non-model '
          f'{non_model_ms(stages):.1f} ms wall ({stages.get("non_model_cpu", np.nan):.1f} ms '
          f'CPU); peak RSS {run["rss_mb"]:.0f} MB')
    print('  CPU while the camera sent [cores]: ' + cpu_text(run['cpu_cores'])
          + f' (of {os.cpu_count()})')
    print('  stages p50 ms: ' + ', '.join(
        f'{name} {value:.1f}' for name, value in stages.items()))


def cpu_text(cores: dict) -> str:
    """Return 'node 1.10, camera 0.20, ...; all 1.45' for :meth:`CpuWindow.cores`."""
    return (', '.join(f'{name} {value:.2f}' for name, value in cores.items())
            + f'; all {sum(cores.values()):.2f}')


def non_model_ms(stages: dict) -> float:
    """Return the node's non-model time per frame (its own stage, else process - model)."""
    if 'non_model' in stages:
        return stages['non_model']
    return stages.get('process', np.nan) - stages.get('model', np.nan)


def halves(latencies: np.ndarray) -> tuple:
    """Return the first and the second half of a run's latencies (one value: it in both)."""
    half = latencies.size // 2
    return latencies[:max(half, 1)], latencies[half:]


def half_p99_text(latencies: np.ndarray) -> str:
    """Return 'p99 of the first half / p99 of the second' of a run's latencies, or '-'."""
    if latencies.size < 2:
        return '-'
    first, second = halves(latencies)
    return f'{np.percentile(first, 99):.0f} / {np.percentile(second, 99):.0f}'


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
            ('latency p99, first / second half [ms]', ['-'] + [
                half_p99_text(r['latencies']) for r in runs]),
            ('CPU while the camera sent [cores]', ['-'] + [
                cpu_text(r['cpu_cores']) for r in runs]),
            ('peak RSS [MB]', ['-'] + [f'{r["rss_mb"]:.0f}' for r in runs])]
    print('\n| figure | ' + ' | '.join(names) + ' |')
    print('|---|' + '---:|' * len(names))
    for label, values in rows:
        print(f'| {label} | ' + ' | '.join(values) + ' |')


if __name__ == '__main__':
    main()
