"""training.evaluate end to end on the baselines: files, provenance and table numbers."""

import json
import os
import re

import pytest

from training.data.datasets import build_source
from training.data.shared_paths import report_path
from training.eval.completion_protocol import (baseline_methods, InputPattern,
                                               run_completion_protocol, summarize_completion)
from training.eval.frames import completion_frames, holdout_frames
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


HOLDOUT = [{'type': '7scenes', 'root': '7scenes_redkitchen', 'select': [300, 400]},
           {'type': 'tum', 'root': 'tum_fr1_rpy', 'select': [0, None, 10]},
           {'type': 'ycbv', 'root': 'ycbv/frames/0002', 'select': [10, 20]}]


def test_holdout_frames_are_the_selected_frames_per_source(shared_data):
    """Evenly spaced frames of each held-out range, named relative to ../shared."""
    frames = holdout_frames(HOLDOUT, shared_data, 2)
    tum = build_source({'type': 'tum', 'root': 'tum_fr1_rpy'}, base_dir=shared_data).frames
    assert len(tum) == 232  # every 10th: indices 0, 10, ..., 230; ends 0 and 230
    assert [frame.name for frame in frames] == [
        'data/7scenes_redkitchen/frame-000300.depth.png',
        'data/7scenes_redkitchen/frame-000399.depth.png',
        report_path(tum[0].name), report_path(tum[230].name),
        'data/ycbv/frames/0002/000011-depth.png', 'data/ycbv/frames/0002/000020-depth.png']
    assert [frame.dataset for frame in frames] == ['7scenes'] * 2 + ['tum'] * 2 + ['ycbv'] * 2
    ycbv = frames[4]
    assert ycbv.intrinsics.fx == pytest.approx(1066.778) and frames[2].intrinsics is None
    assert ycbv.depth_m.dtype.name == 'float32' and ycbv.rgb.shape == (480, 640, 3)
    everything = holdout_frames(HOLDOUT[2:], shared_data, 0)
    assert [frame.name[-16:] for frame in everything] == [
        f'{i:06d}-depth.png' for i in range(11, 21)]
    with pytest.raises(ValueError, match='>= 0'):
        holdout_frames(HOLDOUT, shared_data, -1)


@pytest.mark.slow
def test_cli_completion_scores_the_configs_holdout_split(shared_data, tmp_path):
    """A config with holdout.sources: one section per source, its frames, relative paths."""
    config = tmp_path / 'holdout.yaml'
    config.write_text(json.dumps({'holdout': {'sources': HOLDOUT}}))  # JSON is YAML
    out = str(tmp_path / 'results')
    assert main(['--task', 'completion', '--data', shared_data, '--config', str(config),
                 '--frames', '1', '--points', '150', '--perlin', '--out', out]) == 0
    with open(os.path.join(out, 'completion.md')) as stream:
        markdown = stream.read()
    assert [line.split()[1] for line in markdown.splitlines() if line.startswith('## ')][:3] \
        == ['7scenes', 'tum', 'ycbv']
    assert 'data/tum_fr1_rpy select [0, null, 10]' in markdown
    assert 'data/ycbv/frames/0002/000011-depth.png' in markdown and shared_data not in markdown
    rows = summarize_completion(run_completion_protocol(
        holdout_frames(HOLDOUT, shared_data, 1), baseline_methods(),
        (InputPattern('points', 150),)))
    expected = next(r for r in rows if r['dataset'] == 'tum' and r['method'] == 'linear')
    mae = re.sub(r'\*', '', _row(markdown.split('## tum')[1], '150 pts', 'linear')[2])
    assert float(mae) == round(expected['mae_mm'], 1)
