"""Obtain the VD-sized model that ``make demo`` and ``make bench`` run.

``python -m training.export_onnx`` runs in a subprocess, so neither the demo nor the bench
imports torch in the process that talks to the node. The export is a random-initialised
ViT-S/14 RGB + depth model at 336x448 with an untrained linear YCB-Video head (every node
output is exercised; none of them is meaningful until a pretraining checkpoint is exported).
"""

import os
import subprocess
import sys

from bench.ros_session import ROOT

DEFAULT_PATH = os.path.join(ROOT, 'models', 'vd_random_336x448.onnx')


def export_random_vd_model(path: str = DEFAULT_PATH) -> str:
    """Export the random-init VD model to ``path`` unless it exists; return ``path``.

    Raises:
        RuntimeError: The export failed; the message holds the end of its error output.
    """
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    print(f'exporting a random-init VD model to {path} (about a minute on 2 CPU cores)...',
          flush=True)
    result = subprocess.run(
        [sys.executable, '-m', 'training.export_onnx', '--output', path,
         '--input-size', '336', '448', '--untrained-head', 'ycbv'],
        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0 or not os.path.isfile(path):
        raise RuntimeError(f'python -m training.export_onnx exited {result.returncode}:\n'
                           f'{result.stderr[-2000:]}')
    return path
