"""Pytest set-up shared by test/ and training/tests/: import paths and the shared data."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get('VD_ROS_SHARED', os.path.join(ROOT, '..', 'shared'))
SHARED_DATA = os.path.join(SHARED, 'data')

sys.path.insert(0, ROOT)


@pytest.fixture(scope='session')
def shared_data():
    """Path of ../shared/data; skips the test with a clear message when it is absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f'real RGB-D sample data not found at {SHARED_DATA} '
                    '(set VD_ROS_SHARED to the folder holding data/)')
    return SHARED_DATA
