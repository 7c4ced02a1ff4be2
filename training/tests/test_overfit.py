"""Overfit one real 7-Scenes frame with a tiny model: the whole pretraining step must learn."""

import os
import time

import cv2
import numpy as np
import pytest
import torch

from training.data.masking import sample_masks
from training.losses import MultiScaleSILogLoss
from training.models import build_model, positional_depth_encoding

SIZE = 112
STEPS = 60


def _frame(shared_data):
    """RGB in [0, 1] (1, 3, S, S) and depth in metres (1, S, S) of redkitchen frame 0."""
    folder = os.path.join(shared_data, '7scenes_redkitchen')
    bgr = cv2.imread(os.path.join(folder, 'frame-000000.color.jpg'), cv2.IMREAD_COLOR)
    raw = cv2.imread(os.path.join(folder, 'frame-000000.depth.png'), cv2.IMREAD_UNCHANGED)
    assert bgr is not None and raw is not None and raw.dtype == np.uint16
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (SIZE, SIZE),
                     interpolation=cv2.INTER_AREA)
    raw = cv2.resize(raw, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    depth = np.where((raw == 0) | (raw == 65535), 0.0, raw / 1000.0).astype(np.float32)
    return (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0,
            torch.from_numpy(depth)[None])


@pytest.mark.slow
def test_tiny_model_overfits_one_real_frame(shared_data, tiny_vit_kwargs):
    rgb, target = _frame(shared_data)
    valid = target > 0
    assert 0.5 < valid.float().mean().item() <= 1.0
    assert 0.3 < target[valid].min().item() and target.max().item() < 6.0  # a kitchen, metres
    generator = torch.Generator().manual_seed(0)
    removed = sample_masks(valid, torch.tensor([0.3]), generator)  # (1, S, S)
    pde = positional_depth_encoding(torch.where(removed, torch.zeros_like(target), target))
    torch.manual_seed(0)
    model = build_model({'img_size': [SIZE, SIZE], 'timm_kwargs': tiny_vit_kwargs})
    model.train()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=2e-3, weight_decay=0.0)
    loss_fn = MultiScaleSILogLoss()
    losses, start = [], time.perf_counter()
    for _ in range(STEPS):
        out = loss_fn(model(rgb, pde)['depths'], target, removed)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    elapsed = time.perf_counter() - start
    first, last = np.mean(losses[:3]), np.mean(losses[-5:])
    assert last * 5 < first, f'loss {first:.3f} -> {last:.3f} in {STEPS} steps ({elapsed:.1f} s)'
