"""The prepared GPU run (docs/gpu_run.md) on CPU, end to end and without ROS.

tools/gpu_prepare.sh on a few frames, the dry run of tools/gpu_train.sh, tools/gpu_join.sh.
"""

import glob
import os
import re
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.checkpoint.files import load_checkpoint
from training.checkpoint.model import read_model_checkpoint
from training.data.datasets import build_source
from training.engine.config import load_config, to_plain
from vd_ros.core.depth_codec import read_depth

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILE_LIMIT = 16 * 1024 * 1024  # what the run tool brings back: 8 files, 16 MiB each
# Two frames per source: the packing path of every reader the GPU run uses, in seconds.
TINY_CONFIG = """
data:
  sources:
    - {type: 7scenes, root: 7scenes_redkitchen, select: [0, 2], weight: 1.0}
    - {type: tum, root: tum_fr1_rpy, select: [1, 3], weight: 1.0}
    - {type: ycbv, root: ycbv/frames/0000, select: [0, 2], weight: 0.5}
val:
  sources:
    - {type: 7scenes, root: 7scenes_redkitchen, select: [250, 252]}
holdout:
  sources:
    - {type: 7scenes, root: 7scenes_redkitchen, select: [350, 352]}
"""
# The GPU machine has no ROS and no rosbags: the dry run must not need them.
NO_ROS = """
import importlib.abc, sys
class _NoRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'rclpy', 'sensor_msgs', 'std_msgs', 'rosbags'}:
            raise ModuleNotFoundError(f'No module named {name!r} (no ROS on the GPU machine)')
sys.meta_path.insert(0, _NoRos())
"""


def _run(script, env):
    """Run a tools/ script; fail with its output when it fails."""
    done = subprocess.run(['bash', os.path.join(ROOT, 'tools', script)], env=env, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]
    return done.stdout


@pytest.mark.slow
def test_prepared_gpu_run_works_on_cpu(shared_data, tmp_path):
    """Pack, recover, dry-run, export, join: every file comes back within the limits."""
    (tmp_path / 'tiny.yaml').write_text(TINY_CONFIG)
    (tmp_path / 'no_ros').mkdir()
    (tmp_path / 'no_ros' / 'sitecustomize.py').write_text(NO_ROS)
    pack, out, run = tmp_path / 'pack', tmp_path / 'out', tmp_path / 'run'
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1',
               VD_ROS_SHARED=os.path.dirname(shared_data), GPU_PACK=str(pack),
               GPU_PACK_CONFIG=str(tmp_path / 'tiny.yaml'), GPU_WHEELS='0')
    _run('gpu_prepare.sh', env)

    cfg = to_plain(load_config([os.path.join(ROOT, 'training', 'configs', 'cpu.yaml'),
                                str(pack / 'pack.yaml')]))
    assert [s['type'] for s in cfg['data']['sources']] == ['folder'] * 3
    assert [s['weight'] for s in cfg['data']['sources']] == [1.0, 1.0, 0.5]
    # Validation and test read the pack too, each its own frames.
    assert [s['root'] for s in cfg['val']['sources']] == ['val/00_7scenes']
    assert [s['root'] for s in cfg['holdout']['sources']] == ['holdout/00_7scenes']
    packed = build_source(cfg['data']['sources'][0], base_dir=str(pack))
    original = build_source({'type': '7scenes', 'root': '7scenes_redkitchen',
                             'select': [0, 2]}, base_dir=shared_data)
    assert len(packed) == 2 and packed[0]['rgb'].shape == (180, 240, 3)
    # Depth is shrunk by nearest neighbour: every packed value is a measured one (in mm).
    measured = np.round(1000 * read_depth(original.frames[0].depth_path, '7scenes'))
    values = np.round(1000 * packed[0]['depth'][packed[0]['valid']])
    assert values.size > 0.5 * packed[0]['depth'].size
    assert np.isin(values, measured).all()

    env = dict(env, PYTHONPATH=f'{tmp_path / "no_ros"}:{env.get("PYTHONPATH", "")}', OUT=str(out),
               GPU_TRAIN_DRY_RUN='1', GPU_TRAIN_RUN_DIR=str(run), GPU_PART_BYTES='8M')
    log = _run('gpu_train.sh', env)
    assert 'pretraining: 3 of 3 steps' in log and '(fits)' in log
    names = sorted(os.listdir(out))
    assert names == ['completion_head.pt', 'gpu_train.log', 'pretrain_metrics.csv',
                     'pretrain_weights.pt.part00', 'pretrain_weights.pt.part01',
                     'pretrain_weights.pt.sha256', 'vd_gpu.onnx']
    assert all(re.fullmatch(r'[A-Za-z0-9._-]+', name) for name in names)
    assert all(os.path.getsize(out / name) < FILE_LIMIT for name in names)

    session = ort.InferenceSession(str(out / 'vd_gpu.onnx'), providers=['CPUExecutionProvider'])
    inputs = {i.name: np.random.default_rng(0).random(i.shape, dtype=np.float32)
              for i in session.get_inputs()}
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
    assert {'features', 'depth', 'seg_logits', 'completed_depth'} <= set(outputs)
    assert all(np.isfinite(v).all() for v in outputs.values())

    subprocess.run(['bash', os.path.join(ROOT, 'tools', 'gpu_join.sh'), str(out),
                    str(tmp_path / 'joined.pt')], check=True, stdout=subprocess.PIPE)
    assert (tmp_path / 'joined.pt').read_bytes() == (run / 'pretrain_weights.pt').read_bytes()
    joined = read_model_checkpoint(str(tmp_path / 'joined.pt'))
    last = glob.glob(str(run / 'pretrain' / 'checkpoints' / 'step_*.pt'))
    full = load_checkpoint(sorted(last)[-1])
    assert joined.step == full['step'] == 3
    assert all(torch.equal(joined.state_dict[k], v.half() if v.is_floating_point() else v)
               for k, v in full['model'].items())
