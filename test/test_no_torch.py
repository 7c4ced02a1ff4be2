"""The runtime package must never import torch (robots run it without PyTorch)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import importlib, pkgutil, sys
import vd_ros
names = [m.name for m in pkgutil.walk_packages(vd_ros.__path__, 'vd_ros.')]
for name in names:
    importlib.import_module(name)
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm'))
print(len(names), ' '.join(heavy))
"""


def run_probe(code: str) -> str:
    """Run ``code`` in a fresh interpreter at the repository root; return what it printed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_every_runtime_module_never_imports_torch():
    count, *heavy = run_probe(PROBE).split()
    assert int(count) >= 2, f'only {count} vd_ros modules found'
    assert heavy == [], f'vd_ros imports {heavy}'


def test_the_matching_helpers_a_robot_may_use_never_import_torch():
    # The README points users of ~/descriptors at these two modules.
    probe = ('import sys, training.eval.feature_matching, training.eval.correlation_refinement\n'
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')))")
    assert run_probe(probe).split() == []
