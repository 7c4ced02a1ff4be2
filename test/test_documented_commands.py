"""Every command the documents tell a user to run exists and answers ``--help``.

The commands are read from the documents themselves (``python -m training.X``, ``bench.X``,
``tools.X`` and the console scripts), so a module that moves without its documents being
updated fails here, as does a document naming a command that is gone.
"""

import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = ['README.md', os.path.join('training', 'README.md'),
             os.path.join('models', 'MODEL_CARD.md'),
             *glob.glob(os.path.join('docs', '**', '*.md'), recursive=True)]
MODULE = re.compile(r'python3? -m ((?:training|bench|tools)(?:\.\w+)+)')
SCRIPTS = {'vd_ros_adapt': 'training.adapt', 'vd_ros_replay': 'vd_ros.replay'}


def documented_modules():
    """Return every module a document runs with ``python -m``, and those of console scripts."""
    found = set()
    for document in DOCUMENTS:
        with open(os.path.join(ROOT, document), encoding='utf-8') as stream:
            text = stream.read()
        found.update(MODULE.findall(text))
        found.update(module for script, module in SCRIPTS.items() if script in text)
    return sorted(found)


def test_documents_name_the_main_commands():
    modules = documented_modules()
    for expected in ('training.train', 'training.export_onnx', 'training.adapt',
                     'vd_ros.replay'):
        assert expected in modules, f'{expected} is no longer documented: {modules}'


@pytest.mark.parametrize('module', documented_modules())
def test_documented_command_answers_help(module):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, *filter(None, [os.environ.get('PYTHONPATH')])]))
    result = subprocess.run([sys.executable, '-m', module, '--help'], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f'{module} --help: {result.stdout}\n{result.stderr}'
    assert 'usage' in result.stdout.lower(), f'{module} --help printed no usage'
