"""Docstring style (pep257, google convention) of the library code, with ament_pep257.

Test modules are left out: their function names say what they check (as in ros2 packages,
whose 'ament' convention does not ask tests for docstrings either).
"""

import glob
import os

from ament_pep257.main import main
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ('vd_ros', 'training', 'launch', 'bench', 'tools')
TESTS = os.path.join(ROOT, 'training', 'tests')


def library_files():
    files = []
    for source in SOURCES:
        files += glob.glob(os.path.join(ROOT, source, '**', '*.py'), recursive=True)
    return sorted(f for f in files if not f.startswith(TESTS + os.sep))


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    files = library_files()
    assert len(files) > 50, f'only {len(files)} library files found'
    rc = main(argv=['--convention', 'google', *files])
    assert rc == 0, 'Found code style errors / warnings'
