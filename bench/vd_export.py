"""Obtain the model that ``make bench`` (and ``make demo`` without a trained model) runs.

The shipped CPU model ``models/vd_cpu.onnx`` when it exists; else a random-initialised export
of the same shape: the CPU preset ``training/configs/cpu.yaml`` (two ViT branches of 6 blocks x
192 at 126x168) with an untrained linear YCB-Video head, so every node output is exercised
(none of them is meaningful). ``vd_s=True`` exports VD-S instead (ViT-S/14 branches at
336x448). ``python -m training.export_onnx`` runs in a subprocess, so neither the demo nor the
bench imports torch in the process that talks to the node.
"""

import os
import subprocess
import sys

from bench.ros_session import ROOT

SHIPPED_PATH = os.path.join(ROOT, 'models', 'vd_cpu.onnx')
CPU_PRESET = os.path.join('training', 'configs', 'cpu.yaml')
CPU_PRESET_SIZE = (126, 168)
VD_S_SIZE = (336, 448)


def random_export_path(vd_s: bool = False) -> str:
    """Return where the random-init export of the preset (or of VD-S) is kept."""
    name = 'vd_s_random_336x448.onnx' if vd_s else 'vd_cpu_random_126x168.onnx'
    return os.path.join(ROOT, 'models', name)


def export_random_vd_model(path: str = None, vd_s: bool = False, fp16: bool = False) -> str:
    """Export a random-init model of the CPU preset (or VD-S) unless ``path`` exists.

    Args:
        path: Output file (default :func:`random_export_path`).
        vd_s: Export VD-S (ViT-S/14 branches, 336x448) instead of the CPU preset.
        fp16: float16 weights and compute inside the graph (I/O stays float32).

    Returns:
        ``path``.

    Raises:
        RuntimeError: The export failed; the message holds the end of its error output.
    """
    path = path or random_export_path(vd_s)
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    print(f'exporting a random-init {"VD-S" if vd_s else "CPU-preset"} model to {path}...',
          flush=True)
    size = VD_S_SIZE if vd_s else CPU_PRESET_SIZE
    command = [sys.executable, '-m', 'training.export_onnx', '--output', path,
               '--input-size', *map(str, size), '--untrained-head', 'ycbv']
    command += [] if vd_s else ['--config', CPU_PRESET]
    command += ['--fp16'] if fp16 else []
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0 or not os.path.isfile(path):
        raise RuntimeError(f'python -m training.export_onnx exited {result.returncode}:\n'
                           f'{result.stderr[-2000:]}')
    return path


def bench_model() -> tuple:
    """Return (path, description) of the model to measure: the shipped one, else the export."""
    if os.path.isfile(SHIPPED_PATH):
        return SHIPPED_PATH, f'{SHIPPED_PATH} (the shipped CPU model)'
    return export_random_vd_model(), (
        f'{random_export_path()}: random-init CPU preset ({CPU_PRESET}: 2 x ViT 6 x 192, '
        '126x168, untrained linear head: timing only)')
