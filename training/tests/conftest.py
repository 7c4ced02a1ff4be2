"""Fixtures for the model tests: tiny ViTs that run in milliseconds on 2 CPU cores."""

import pytest
import torch

from training.models import build_model

TINY_VIT = {'depth': 4, 'embed_dim': 64, 'num_heads': 2}


@pytest.fixture
def tiny_vit_kwargs():
    """Return timm overrides for a 4-block, 64-wide ViT (a fresh dict per test)."""
    return dict(TINY_VIT)


@pytest.fixture(autouse=True)
def _few_threads():
    """Run single-threaded: on the shared 2-core machine two threads were ~7x slower per step.

    Measured for one tiny-model training step at 112x112 under a load average of ~11:
    0.16-0.24 s with one thread, 1.5-1.8 s with two (OpenMP threads spin against each other).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_model(tiny_vit_kwargs):
    """Build a 4-block, 64-wide DINOv2-style VanishingDepth model with decoder (random weights)."""
    torch.manual_seed(0)
    return build_model({'img_size': [112, 112], 'timm_kwargs': tiny_vit_kwargs})
