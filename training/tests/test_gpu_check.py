"""tools/gpu_check.py: a CPU dry run of the whole script; its config loading without omegaconf."""

import importlib.util
import math
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def gpu_check():
    """Import tools/gpu_check.py as a module."""
    spec = importlib.util.spec_from_file_location(
        'gpu_check', os.path.join(ROOT, 'tools', 'gpu_check.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(text: str, heading: str) -> list:
    """Return the data rows of the markdown table under ``heading`` as lists of cells."""
    lines = text.split(heading, 1)[1].split('\n## ', 1)[0].splitlines()
    rows = [line.strip('|').split('|') for line in lines if line.startswith('| ')]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # header dropped


def test_dry_run_measures_every_item(gpu_check, tmp_path):
    out = tmp_path / 'gpu.md'
    try:
        assert gpu_check.main(['--dry-run', '--out', str(out)]) == 0
    finally:
        torch.compiler.reset()
    text = out.read_text()
    assert text.startswith('# DRY RUN on CPU') and 'Skipped' not in text
    inference = _table(text, '## Inference latency')
    assert sorted((row[0], row[2]) for row in inference) == sorted(
        (model, mode) for model in ('VD-S', 'CPU preset')
        for mode in ('eager fp32', 'eager bf16', 'torch.compile bf16'))
    assert all(float(row[3]) > 0 for row in inference)
    training = _table(text, '## Pretraining throughput')
    assert sorted((row[0], row[3]) for row in training) == sorted(
        (model, compiled) for model in ('VD-S', 'CPU preset') for compiled in ('off', 'on'))
    for row in training:
        assert 0 < float(row[4]) < math.inf  # images/s
        assert float(row[6]) > 0  # GFLOP per image, measured
        assert row[7] == 'n/a'  # no MFU without a GPU peak


def test_config_sections_without_omegaconf(gpu_check, monkeypatch):
    # The GPU machine may lack omegaconf: the PyYAML fallback must give the same sections.
    with_omegaconf = gpu_check.load_sections([os.path.join(gpu_check.CONFIGS, 'cpu.yaml')])
    monkeypatch.setitem(sys.modules, 'training.engine.config', None)  # import fails
    plain = gpu_check.load_sections([os.path.join(gpu_check.CONFIGS, 'cpu.yaml')])
    for section in ('model', 'masking', 'depth', 'loss', 'optim', 'train'):
        assert plain[section] == with_omegaconf[section], section
    assert plain['data']['transform']['size'] == [126, 168]
    assert plain['depth']['max_depth_m'] == plain['model']['pde']['max_depth_m']
