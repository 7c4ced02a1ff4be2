"""Per-frame latency of the exported model in ONNX Runtime against eager torch (CPU).

Builds the Vanishing Depth model (random init, ViT-S/14 by default) with a linear YCB-Video
head, exports it at the contract size (336 x 448), then times one frame (a real 7-Scenes frame
through the node's preprocessing) in eager torch (fp32, ``inference_mode``) and in ORT
(CPU execution provider, fp32 and optionally the fp16 export), and prints the median and p90
in ms and the ratio to eager torch. A figure-printing script, not a test.

Usage: python -m bench.export_latency [--repeats 10] [--input-size 336 448] [--threads 2]
    [--fp16] [key=value model overrides, e.g. 'model.timm_kwargs={depth: 2}']
GPU execution providers are not timed here: the machine this was written on has no GPU.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

from training.data.label_layouts import YCBV_CLASSES
from training.engine.config import load_config, to_plain
from training.export.exporter import export_onnx
from training.models import build_model
from training.models.heads import build_seg_head
from vd_ros.core.depth_codec import read_depth, read_rgb
from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('VD_ROS_SHARED', os.path.join(ROOT, '..', 'shared'))


def timed(function, repeats: int) -> np.ndarray:
    """Call ``function`` once to warm up, then ``repeats`` times; return the times in ms."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(1e3 * (time.perf_counter() - start))
    return np.array(times)


def main(argv=None) -> int:
    """Export, time and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--input-size', type=int, nargs=2, default=[336, 448])
    parser.add_argument('--threads', type=int, default=2, help='torch and ORT intra-op threads')
    parser.add_argument('--fp16', action='store_true', help='also time the fp16 export')
    parser.add_argument('overrides', nargs='*')
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(to_plain(load_config((), args.overrides))['model']).eval()
    head = build_seg_head('linear', model.feature_dim, len(YCBV_CLASSES)).eval()
    stem = os.path.join(SHARED, 'data', '7scenes_redkitchen', 'frame-000120')
    rgb, depth = read_rgb(stem + '.color.jpg'), read_depth(stem + '.depth.png', '7scenes')
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        runtimes = {}
        for precision in ['fp32'] + (['fp16'] if args.fp16 else []):
            path = os.path.join(folder, f'vd_{precision}.onnx')
            start = time.perf_counter()
            export_onnx(model, head, path, args.input_size, YCBV_CLASSES,
                        fp16=precision == 'fp16')
            print(f'export {precision}: {time.perf_counter() - start:.1f} s, '
                  f'{os.path.getsize(path) / 1e6:.0f} MB')
            runtimes[precision] = VDModel(path, providers=['cpu'],
                                          intra_op_threads=args.threads)
        rgb_in, pde, _ = prepare_inputs(rgb, depth, runtimes['fp32'].contract)
        tensors = (torch.from_numpy(rgb_in), torch.from_numpy(pde))

        def eager():
            with torch.inference_mode():
                features = model.encode(*tensors)
                model.decoder(features.maps, tuple(args.input_size))
                head(features.maps)

        rows.append(('eager torch fp32', timed(eager, args.repeats)))
        for precision, runtime in runtimes.items():
            rows.append((f'ORT CPU EP {precision}',
                         timed(lambda r=runtime: r.run(rgb_in, pde), args.repeats)))
    base = np.median(rows[0][1])
    print(f'\n{model.encoder_name} {args.input_size[0]}x{args.input_size[1]}, random init, '
          f'{args.threads} threads, {args.repeats} frames (all outputs)')
    print(f'{"runtime":<22}{"median ms":>11}{"p90 ms":>9}{"vs eager":>10}')
    for name, times in rows:
        print(f'{name:<22}{np.median(times):>11.1f}{np.percentile(times, 90):>9.1f}'
              f'{np.median(times) / base:>10.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
