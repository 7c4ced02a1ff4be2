"""Print the closing summary of ``tools/gpu_train.sh``: pretraining, completion head, ONNX file.

Usage (the script calls it last)::

    python tools/gpu_summary.py --pretrain-dir runs/gpu_train/pretrain \
        --completion-head runs/gpu_train/completion/checkpoints/step_00000100.pt \
        --onnx OUT/vd_gpu.onnx --seconds 431

It reads the run's ``metrics.csv`` (steps, images/s, MFU, validation loss first -> last), the
head checkpoint's validation history (set-aside RMSE of the head and of the linear fill, first
-> last) and loads the exported file with ``vd_ros.inference.VDModel`` (its contract checks).
"""

import argparse
import csv
import math
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from training.checkpoint.formats import COMPLETION, load_checked  # noqa: E402
from vd_ros.inference import VDModel  # noqa: E402
import yaml  # noqa: E402

FILE_LIMIT = 16 * 1024 * 1024  # bytes per file that comes back from the GPU machine


def _floats(rows, key):
    """Return the finite values of column ``key``."""
    values = [float(row[key]) for row in rows if row.get(key) not in (None, '')]
    return [v for v in values if math.isfinite(v)]


def pretraining_lines(run_dir: str):
    """Describe the pretraining run from its metrics.csv and config."""
    with open(os.path.join(run_dir, 'metrics.csv'), newline='', encoding='utf-8') as stream:
        rows = list(csv.DictReader(stream))
    steps = int(rows[-1]['step']) if rows else 0
    val = _floats(rows, 'val_loss')
    speed = _floats(rows, 'images_per_s')[1:]  # the first row includes the warm-up
    mfu = _floats(rows, 'mfu')
    with open(os.path.join(run_dir, 'config.yaml'), encoding='utf-8') as stream:
        max_steps = int(yaml.safe_load(stream)['train']['max_steps'])
    ended = 'at train.max_steps' if steps >= max_steps else 'by the time budget'
    lines = [f'pretraining: {steps} of {max_steps} steps (ended {ended})',
             f'  images/s (median of logged steps): {statistics.median(speed):.0f}' if speed
             else '  images/s: not logged',
             f'  val loss (held-out split): {val[0]:.4f} -> {val[-1]:.4f} ({len(val)} checks)'
             if val else '  val loss: none']
    if mfu:
        lines.append(f'  MFU (median): {100 * statistics.median(mfu):.1f} %')
    return lines


def completion_lines(path: str):
    """Describe the head from its checkpoint's validation history."""
    state = load_checked(path, COMPLETION)
    history = state.get('val_history') or []
    lines = [f'completion head: {state["step"]} steps ({os.path.basename(path)})']
    if history:
        first, last = history[0], history[-1]
        for key in sorted(k for k in last if k.endswith(' head')):
            pattern = key[:-len(' head')]
            lines.append(f'  set-aside RMSE mm, {pattern}: head {first[key]:.1f} (step '
                         f'{first["step"]}) -> {last[key]:.1f} (step {last["step"]}); '
                         f'linear fill {last.get(pattern + " linear fill", math.nan):.1f}')
    return lines


def onnx_lines(path: str):
    """Load the export with the node's contract checks and give its size."""
    size = os.path.getsize(path)
    model = VDModel(path, providers=['cpu'])
    verdict = 'fits' if size < FILE_LIMIT else 'TOO LARGE: it will not come back'
    return [f'onnx: {os.path.basename(path)} {size / 2 ** 20:.2f} MiB ({verdict}), outputs '
            f'{list(model.contract.outputs)}, input {list(model.contract.input_size)}']


def main(argv=None) -> int:
    """Print the summary; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pretrain-dir', required=True)
    parser.add_argument('--completion-head', required=True)
    parser.add_argument('--onnx', required=True)
    parser.add_argument('--seconds', type=float, help='wall time of the whole script')
    args = parser.parse_args(argv)
    lines = ['=== summary'] + pretraining_lines(args.pretrain_dir)
    lines += completion_lines(args.completion_head) + onnx_lines(args.onnx)
    if args.seconds is not None:
        lines.append(f'wall time: {args.seconds:.0f} s')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
