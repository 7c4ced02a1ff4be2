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


@pytest.fixture(scope='session')
def randomise_weights():
    """Return ``fill(module, seed)``: distinct random weights everywhere, BatchNorm variances > 0.

    ``training.onnx_recover`` matches weights by value, and the exporter merges initial weights
    that are equal (zero biases, constant layer scales): a test that recovers a file draws
    every weight anew, zero-initialised layers included.
    """
    import torch

    def fill(module, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, tensor in module.state_dict().items():
                if tensor.is_floating_point():
                    noise = torch.rand(tensor.shape, generator=generator)
                    tensor.copy_(noise + 0.5 if name.endswith('running_var')
                                 else 0.2 * noise - 0.1)
    return fill
