"""Fixtures for the model tests: tiny ViTs that run in milliseconds on 2 CPU cores."""

import pytest
import torch

from training.models import build_model

TINY_VIT = {'depth': 4, 'embed_dim': 64, 'num_heads': 2}


@pytest.fixture(autouse=True)
def _few_threads():
    """Share the 2 CPU cores of the test machine politely."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_model():
    """Build a 4-block, 64-wide DINOv2-style VanishingDepth model with decoder (random weights)."""
    torch.manual_seed(0)
    return build_model({'img_size': [112, 112], 'timm_kwargs': dict(TINY_VIT)})
