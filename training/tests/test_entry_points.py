"""Every ``python -m training.X`` command the docs name answers ``--help`` (exit code 0)."""

import runpy
import sys

import pytest

COMMANDS = ('train', 'train_completion', 'train_heads', 'adapt', 'evaluate', 'export_onnx',
            'onnx_recover', 'weights_checkpoint', 'pack_data', 'export.quantize')


# Other tests import the scripts first; running one again as __main__ is what -m does anyway.
@pytest.mark.filterwarnings('ignore:.*found in sys.modules after import:RuntimeWarning')
@pytest.mark.parametrize('name', COMMANDS)
def test_command_answers_help(name, monkeypatch, capsys):
    """Check: ``python -m training.NAME --help`` prints its usage and exits 0."""
    monkeypatch.setattr(sys, 'argv', [f'training.{name}', '--help'])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module(f'training.{name}', run_name='__main__', alter_sys=True)
    assert stop.value.code == 0
    assert 'usage:' in capsys.readouterr().out
