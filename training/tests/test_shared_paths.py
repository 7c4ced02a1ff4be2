"""Data paths in reports: relative to ../shared, never absolute paths of this machine."""

import os

from training.data.shared_paths import (command_text, REPO_ROOT, report_path, shared_dir,
                                        source_text)


def test_report_path_is_relative_to_shared_or_the_repository(tmp_path):
    """Data relative to ../shared, repository files relative to the repository, else as is."""
    assert report_path(os.path.join(shared_dir(), 'data', 'ycbv', 'frames', '0002')) == \
        'data/ycbv/frames/0002'
    assert report_path(os.path.abspath(__file__)) == 'training/tests/test_shared_paths.py'
    assert report_path(str(tmp_path / 'x.pt')) == str(tmp_path / 'x.pt')


def test_command_text_runs_from_the_repository_root(shared_data, tmp_path):
    """Existing paths become ../shared/... or repository-relative; other arguments stay."""
    data = shared_data
    config = os.path.join(REPO_ROOT, 'training', 'configs', 'heads.yaml')
    assert command_text('python -m x', ['--data', data, '--config', config, 'a=[1, 2]',
                                        str(tmp_path)]) == \
        f"python -m x --data ../shared/data --config training/configs/heads.yaml 'a=[1, 2]' " \
        f'{tmp_path}'


def test_source_text_names_root_and_ranges():
    """A source reads as its shared-relative root and its select / exclude ranges."""
    base = os.path.join(shared_dir(), 'data')
    assert source_text({'type': 'tum', 'root': 'tum_fr1_rpy', 'select': [0, None, 10]},
                       base) == 'data/tum_fr1_rpy select [0, null, 10]'
    assert source_text({'type': 'ycbv', 'root': 'ycbv/frames/0000', 'exclude': [[0, 5]]},
                       base) == 'data/ycbv/frames/0000 exclude [[0, 5]]'
