"""Docstring style (pep257, google convention) of the runtime package, with ament_pep257."""

import os

from ament_pep257.main import main
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    paths = [os.path.join(ROOT, p) for p in ('vd_ros', 'training', 'launch', 'bench', 'tools')
             if os.path.exists(os.path.join(ROOT, p))]
    rc = main(argv=['--convention', 'google', *paths])
    assert rc == 0, 'Found code style errors / warnings'
