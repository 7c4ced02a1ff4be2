"""training.evaluate end to end on the baselines: files, provenance and table numbers."""

import os
import re

import pytest

from training.eval.completion_protocol import (baseline_methods, InputPattern,
                                               run_completion_protocol, summarize_completion)
from training.eval.frames import completion_frames
from training.evaluate import main


def _row(markdown: str, *labels: str) -> list[str]:
    """Return the cells of the first table row starting with ``labels``."""
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        if cells[:len(labels)] == list(labels):
            return cells
    raise AssertionError(f'no row {labels} in:\n{markdown}')


@pytest.mark.slow
def test_cli_completion_table_matches_the_protocol(shared_data, tmp_path):
    """completion.md reports the protocol's numbers, the provenance and small figures."""
    out = str(tmp_path)
    assert main(['--task', 'completion', '--data', shared_data, '--frames', '1',
                 '--points', '150', '--perlin', '--out', out]) == 0
    with open(os.path.join(out, 'completion.md')) as stream:
        markdown = stream.read()
    assert 'Model (rows `vd*`): none (baselines only)' in markdown
    rows = summarize_completion(run_completion_protocol(
        completion_frames(shared_data, 1), baseline_methods(), (InputPattern('points', 150),)))
    expected = next(r for r in rows if r['dataset'] == 'ycbv' and r['method'] == 'linear')
    mae = re.sub(r'\*', '', _row(markdown.split('## ycbv')[1], '150 pts', 'linear')[2])
    assert float(mae) == round(expected['mae_mm'], 1)
    for name in ('completion_rmse.png', 'completion_example_7scenes.png',
                 'completion_example_ycbv.png'):
        assert 0 < os.path.getsize(os.path.join(out, name)) < 300_000
        assert f']({name})' in markdown


@pytest.mark.slow
def test_cli_pose_table(shared_data, tmp_path):
    """pose.md lists ORB and SIFT per gap with sane rotation errors on real pairs."""
    out = str(tmp_path)
    assert main(['--task', 'pose', '--data', shared_data, '--pairs', '1', '--gaps', '5',
                 '--out', out]) == 0
    with open(os.path.join(out, 'pose.md')) as stream:
        markdown = stream.read()
    for method in ('orb', 'sift'):
        cells = _row(markdown, '5', method)
        assert float(cells[4].strip('*')) < 2.0  # median rotation error in degrees
    assert os.path.getsize(os.path.join(out, 'pose_by_gap.png')) < 300_000
