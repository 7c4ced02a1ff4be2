"""What a subscriber set costs: the model call for some outputs, sub-graph against full graph.

The node computes only the outputs behind subscribed topics; on the CPU provider
``VDModel.run`` runs them on the sub-graph that feeds them (``vd_ros.graph_prune``), since ONNX
Runtime would otherwise run every node whatever it is asked for. For the output sets users
subscribe (depth with confidence, depth alone, segmentation, features, everything) this times
the call on the sub-graph and on the full graph, alternated call by call on one real frame
through the node's preprocessing, and prints CPU ms per call (median) and the ratio.

Usage: python -m bench.output_subgraphs [--model M.onnx] [--calls 30] [--threads 1]
"""

import argparse
import time

from bench.ros_session import bench_frames
from bench.vd_export import bench_model
import numpy as np

from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel

SETS = {'depth + confidence': ('completed_depth', 'depth_uncertainty'),
        'depth': ('completed_depth',), 'segmentation': ('seg_logits',),
        'features': ('features',), 'descriptors': ('descriptors',)}


def main() -> None:
    """Time each output set on both graphs and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', help='default: the shipped model')
    parser.add_argument('--calls', type=int, default=30)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    path, described = (args.model, args.model) if args.model else bench_model()
    pruned = VDModel(path, ['cpu'], intra_op_threads=args.threads)
    full = VDModel(path, ['cpu'], intra_op_threads=args.threads, prune=False)
    frame = bench_frames(1)[0]
    rgb, pde, _ = prepare_inputs(frame.rgb, frame.depth_m, pruned.contract)
    sets = {name: [o for o in outputs if o in pruned.output_names]
            for name, outputs in SETS.items()}
    sets = {name: outputs for name, outputs in sets.items() if outputs}
    sets['everything'] = list(pruned.output_names)
    for outputs in sets.values():
        pruned.run(rgb, pde, outputs)
    pruned.wait_for_sub_sessions()
    times = {(name, kind): [] for name in sets for kind in ('sub-graph', 'full graph')}
    for _ in range(args.calls):
        for name, outputs in sets.items():
            for kind, model in (('sub-graph', pruned), ('full graph', full)):
                start = time.process_time()
                model.run(rgb, pde, outputs)
                times[(name, kind)].append(1e3 * (time.process_time() - start))
    print(f'model {described}; {args.threads} intra-op thread(s), {args.calls} calls each, '
          'alternated; CPU ms per call, median')
    print('| outputs | sub-graph | full graph | ratio |\n|---|---:|---:|---:|')
    for name, outputs in sets.items():
        sub, whole = (np.median(times[(name, kind)]) for kind in ('sub-graph', 'full graph'))
        print(f'| {name} ({", ".join(outputs)}) | {sub:.1f} | {whole:.1f} | {sub / whole:.2f} |')


if __name__ == '__main__':
    main()
